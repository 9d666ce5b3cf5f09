//! The bench's rows ([`OpRow`]), the whole [`Report`] and its fixed-width table.

use serde::Serialize;

use super::Ceilings;
use crate::backend::cuda::{DiagLstmLayout, Variants};
use crate::backend::{Precision, Recurrence};
use crate::parity;

/// One timed (or refused) row.
#[derive(Clone, Debug, Serialize)]
pub struct OpRow {
    /// `op`, `step` or `ceiling`.
    pub kind: &'static str,
    /// `masked_conv2d fwd`, `row-lstm train step`, `copy`...
    pub name: String,
    /// Config name (`mnist`...), or empty for ceilings.
    pub config: String,
    /// Shapes in words: `7x7 mask A 1->32 on 16x28x28`.
    pub shape: String,
    /// `v1`, `v2`... (CUDA), `cpu`, and for recurrences `fused`/`unfused`/`persistent` too;
    /// a training step in the Diagonal LSTM's materialised layout adds `/materialised`
    /// (`fused/materialised`; op rows carry the layout in [`OpRow::layout`] only).
    pub variant: String,
    /// Recurrence variant of LSTM ops and recurrent steps.
    pub recurrence: Option<String>,
    /// Layout of the Diagonal LSTM rows on a backend that has several (CUDA): `folded` (the
    /// skew folded into the kernels' indexing) or `materialised` (skewed maps); `None`
    /// elsewhere.
    pub layout: Option<String>,
    /// `ok`, `WRONG` (result differs from the CPU backend: no time), `error` (the op failed),
    /// `skipped` (a GPU-only kernel on the emulator).
    pub status: String,
    /// Relative error against the CPU backend (`None` when the CPU backend itself is timed).
    pub rel_err: Option<f64>,
    /// Tolerance of the check.
    pub tol: f64,
    /// Median time of one call, ms.
    pub ms: Option<f64>,
    /// Fastest call, ms.
    pub ms_min: Option<f64>,
    /// Timed calls.
    pub iters: usize,
    /// Bytes moved per call (the op case's formula, [`super::OpCase::bytes`]).
    pub bytes: Option<f64>,
    /// FLOPs per call.
    pub flops: Option<f64>,
    /// Achieved GB/s (1e9 bytes per second).
    pub gb_per_s: Option<f64>,
    /// Achieved GFLOP/s.
    pub gflop_per_s: Option<f64>,
    /// GB/s over the measured copy bandwidth.
    pub frac_copy_bw: Option<f64>,
    /// The precision the row ran at (`fp32`, `tf32`, `bf16`): its GEMM operands' rounding,
    /// and the compute ceiling its `frac_peak` is set against.
    pub precision: Precision,
    /// The ceiling `frac_peak` uses: `fp32` (the FP32 FMA rate, `peak_fma_v1` / the CPU's
    /// sgemm), `tf32` or `bf16` (the tensor-core rate of that precision, `peak_mma_*_v1`).
    pub peak: &'static str,
    /// GFLOP/s over the ceiling named by `peak` ([`Ceilings::gflop_per_s`] of the row's
    /// precision); `None` where that ceiling is absent (the CPU has no tensor cores, the
    /// emulator measures none).
    pub frac_peak: Option<f64>,
    /// Recurrent rows: time of the unfused row of the same op and size over this row's.
    pub speedup_vs_unfused: Option<f64>,
    /// Error text, or what the row means.
    pub note: String,
    /// The CUDA kernel variants in force while the row ran (`None` on the CPU), read inside
    /// the timed scope: what the tests check. Not in the JSON: `variant` and `layout` say it.
    #[serde(skip)]
    pub variants: Option<Variants>,
}

impl OpRow {
    /// A row with status `ok`, the fp32 tolerance, precision fp32 and nothing measured yet.
    pub fn new(
        kind: &'static str,
        name: String,
        config: &str,
        shape: String,
        variant: String,
    ) -> Self {
        OpRow {
            kind,
            name,
            config: config.to_string(),
            shape,
            variant,
            recurrence: None,
            layout: None,
            status: "ok".into(),
            rel_err: None,
            tol: parity::FP32_REL_TOL,
            ms: None,
            ms_min: None,
            iters: 0,
            bytes: None,
            flops: None,
            gb_per_s: None,
            gflop_per_s: None,
            frac_copy_bw: None,
            precision: Precision::Fp32,
            peak: Precision::Fp32.name(),
            frac_peak: None,
            speedup_vs_unfused: None,
            note: String::new(),
            variants: None,
        }
    }

    /// Sets the row's precision, and with it the ceiling its compute fraction is set against.
    pub fn set_precision(&mut self, p: Precision) {
        self.precision = p;
        self.peak = p.name();
    }

    /// Sets the median and minimum of `times` (ms) and the rates against `ceilings`: the copy
    /// bandwidth, and the compute ceiling of the row's precision ([`OpRow::set_precision`]).
    pub fn set_times(&mut self, times: &mut [f64], ceilings: &Ceilings) {
        if times.is_empty() {
            return;
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        self.iters = times.len();
        self.ms = Some(median);
        self.ms_min = Some(times[0]);
        let secs = median / 1e3;
        if secs > 0.0 {
            self.gb_per_s = self.bytes.map(|b| b / secs / 1e9);
            self.gflop_per_s = self.flops.map(|f| f / secs / 1e9);
        }
        self.frac_copy_bw = self
            .gb_per_s
            .zip(ceilings.copy_gb_per_s)
            .map(|(a, b)| a / b);
        self.peak = self.precision.name();
        self.frac_peak = self
            .gflop_per_s
            .zip(ceilings.gflop_per_s(self.precision))
            .map(|(a, b)| a / b);
    }
}

/// Everything one bench run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The backend's name (`cpu (16 threads)`, `cuda:0 NVIDIA H200`).
    pub device: String,
    /// How calls were timed.
    pub timer: String,
    /// Run on the emulator: times are meaningless.
    pub emulated: bool,
    /// Seconds since the Unix epoch at the start.
    pub unix_time: u64,
    /// UTC date and time of the start.
    pub date: String,
    /// Warm-up calls per row.
    pub warmup: usize,
    /// The CUDA kernel versions in force at the start, every family's (the defaults, or what
    /// `pixelrnn bench --kernels` named); `None` on the CPU. The step rows run them; an op row
    /// that sweeps a family runs each version of it on top of them.
    pub kernels: Option<String>,
    /// Whether every row was run: false in the copies written while the bench runs
    /// (`pixelrnn bench --json` rewrites its file after every row), true in the final one.
    pub complete: bool,
    /// The measured ceilings.
    pub ceilings: Ceilings,
    /// Every row, ceilings first.
    pub rows: Vec<OpRow>,
}

/// Sets `speedup_vs_unfused` on every recurrent row that has an unfused twin (same name,
/// config, shape, kernel version and layout).
pub(crate) fn fill_speedups(rows: &mut [OpRow]) {
    let unfused_name = rec_name(Recurrence::Unfused);
    let base: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.recurrence.as_deref() == Some(unfused_name.as_str()))
        .filter_map(|r| Some((speedup_key(r), r.ms?)))
        .collect();
    for r in rows.iter_mut().filter(|r| r.recurrence.is_some()) {
        let key = speedup_key(r);
        if let (Some((_, b)), Some(ms)) = (base.iter().find(|(k, _)| *k == key), r.ms) {
            r.speedup_vs_unfused = Some(b / ms);
        }
    }
}

fn speedup_key(r: &OpRow) -> String {
    let v = if r.kind == "step" {
        ""
    } else {
        r.variant.as_str()
    };
    let layout = r.layout.as_deref().unwrap_or("");
    format!("{}|{}|{}|{}|{layout}", r.name, r.config, r.shape, v)
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (civil-from-days, proleptic Gregorian).
pub fn utc_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// The report as a fixed-width table, one line per row: [`table_header`], then
/// [`table_row`] for each row.
pub fn table(r: &Report) -> String {
    let mut s = table_header(r);
    for row in &r.rows {
        s.push_str(&table_row(row));
    }
    s
}

/// The table's first lines: device, date, timer, ceilings and the column names.
pub fn table_header(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "pixelrnn bench on {} ({}), {}; timer: {}\n",
        r.device,
        if r.emulated { "EMULATED" } else { "measured" },
        r.date,
        r.timer
    ));
    if let Some(k) = &r.kernels {
        s.push_str(&format!("kernels: {k}\n"));
    }
    let c = &r.ceilings;
    s.push_str(&format!(
        "ceilings: copy {} GB/s, fp32 {} GFLOP/s, tf32 {} GFLOP/s, bf16 {} GFLOP/s ({})\n",
        fmt_opt(c.copy_gb_per_s, |v| format!("{v:.1}")),
        fmt_opt(c.fp32_gflop_per_s, |v| format!("{v:.1}")),
        fmt_opt(c.tf32_gflop_per_s, |v| format!("{v:.1}")),
        fmt_opt(c.bf16_gflop_per_s, |v| format!("{v:.1}")),
        c.how
    ));
    s.push_str(
        "%peak: GFLOP/s over the ceiling named after it (fp32 rows: the fp32 FMA rate; tf32 and \
         bf16 rows: the tensor-core rate of their precision; '-' where it is absent)\n",
    );
    s.push_str(&format!(
        "{:<22} {:<11} {:<34} {:<26} {:>10} {:>9} {:>9} {:>6} {:>10} {:>7} {:>9}  {}\n",
        "row",
        "config",
        "shape",
        "variant",
        "ms",
        "GB/s",
        "GFLOP/s",
        "%bw",
        "%peak",
        "vs unf",
        "rel err",
        "status"
    ));
    s
}

/// One row of the table, newline included.
pub fn table_row(row: &OpRow) -> String {
    let variant = match (&row.recurrence, row.kind) {
        (Some(rec), "op") => match row.layout.as_deref() {
            Some(l) if l != DiagLstmLayout::Folded.name() => {
                format!("{}/{rec}/{l}", row.variant)
            }
            _ => format!("{}/{rec}", row.variant),
        },
        _ => row.variant.clone(),
    };
    format!(
        "{:<22} {:<11} {:<34} {:<26} {:>10} {:>9} {:>9} {:>6} {:>10} {:>7} {:>9}  {}{}\n",
        row.name,
        row.config,
        truncate(&row.shape, 34),
        variant,
        fmt_opt(row.ms, |v| format!("{v:.4}")),
        fmt_opt(row.gb_per_s, |v| format!("{v:.1}")),
        fmt_opt(row.gflop_per_s, |v| format!("{v:.1}")),
        fmt_opt(row.frac_copy_bw, |v| format!("{:.0}%", v * 100.0)),
        peak_cell(row),
        fmt_opt(row.speedup_vs_unfused, |v| format!("{v:.2}x")),
        fmt_opt(row.rel_err, |v| format!("{v:.1e}")),
        row.status,
        if row.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", row.note)
        }
    )
}

/// The `%peak` cell: the fraction and the ceiling it uses (`41% bf16`), `-` without one.
fn peak_cell(row: &OpRow) -> String {
    fmt_opt(row.frac_peak, |v| format!("{:.0}% {}", v * 100.0, row.peak))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}~")
    }
}

/// The command-line name of a recurrence (`fused`, `unfused`, `persistent`), as in the rows.
pub(crate) fn rec_name(r: Recurrence) -> String {
    use clap::ValueEnum;
    r.to_possible_value()
        .map_or_else(|| format!("{r:?}"), |p| p.get_name().to_string())
}

/// An error message on one line, for a row's note.
pub(crate) fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}

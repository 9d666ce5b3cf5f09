//! A profiled step as a fixed-width table (the terminal) or a Markdown table (docs/).

use std::fmt::Write as _;

use super::{KernelProfile, StepProfile};

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "-".to_string(), f)
}

/// Columns of the table.
const COLUMNS: usize = 17;

/// One warp's barriers per launch in the latency model's chain: block barriers, and `+Nc` its
/// cluster barriers where it has any (`-` without a chain).
fn barriers_per_warp(k: &KernelProfile) -> String {
    let Some(c) = k.chain else {
        return "-".into();
    };
    let n = k.launches.max(1) as f64;
    if c.cluster_barriers > 0.0 {
        format!("{:.0}+{:.0}c", c.barriers / n, c.cluster_barriers / n)
    } else {
        format!("{:.0}", c.barriers / n)
    }
}

/// The cells of one kernel's row.
fn cells(k: &KernelProfile, step_s: f64) -> [String; COLUMNS] {
    let global = k.global_requests > 0;
    [
        k.kernel.clone(),
        k.launches.to_string(),
        if k.flops > 0 {
            format!("{:.3}", k.flops as f64 / 1e9)
        } else {
            "-".into()
        },
        format!("{:.2}", k.compulsory_bytes as f64 / 1e6),
        format!("{:.3}", k.sector_bytes as f64 / 1e9),
        if global {
            format!("{:.1}", k.sectors_per_request)
        } else {
            "-".into()
        },
        if global {
            pct(k.efficiency)
        } else {
            "-".into()
        },
        k.worst.as_ref().map_or_else(
            || "-".into(),
            |w| format!("{} ({:.0} s/r)", pct(w.efficiency), w.sectors_per_request),
        ),
        match (k.shared_conflict, k.shared_conflict_max) {
            (Some(m), Some(x)) => format!("{m:.2} ({x:.1})"),
            _ => "-".into(),
        },
        opt(k.flops_per_shared_word(), |x| format!("{x:.1}")),
        opt(k.warps_per_sm, |w| format!("{w:.1}")),
        format!("{:.1}", k.estimate_s * 1e6),
        pct(if step_s > 0.0 {
            k.estimate_s / step_s
        } else {
            0.0
        }),
        k.bound.name().to_string(),
        barriers_per_warp(k),
        opt(k.latency_s, |t| format!("{:.1}", t * 1e6)),
        format!("{:.1}", k.modelled_s * 1e6),
    ]
}

const HEADERS: [&str; COLUMNS] = [
    "kernel",
    "launches",
    "GFLOP",
    "comp. MB",
    "sector GB",
    "sect/req",
    "eff",
    "worst site",
    "shared conf (max)",
    "FLOP/sh word",
    "warps/SM",
    "est. µs",
    "share",
    "bound",
    "bar/warp",
    "latency µs",
    "model µs",
];

/// The `bound` column, left-aligned like the first.
const BOUND: usize = 13;

/// The summary line of a step: launches, host synchronisations, floors and the estimate.
pub fn summary_line(p: &StepProfile) -> String {
    let sectors: u64 = p.kernels.iter().map(|k| k.sector_bytes).sum();
    format!(
        "{} launches, {} host syncs, {:.2} GFLOP, {:.1} MB compulsory, {:.2} GB of sectors \
         requested; {} warps per SM (of 64, estimate-weighted); estimate {:.0} µs \
         (each launch at its own bound plus its launch; step floors: FLOPs {:.0} µs, DRAM \
         {:.0} µs, launches {:.0} µs); modelled {:.0} µs (each launch at the larger of its \
         bound and one warp's chain: {:.0} ns per load round, {:.0} per shared request, {:.2} \
         per FMA, {:.0} per barrier, {:.0} per cluster barrier, {:.0} per warp operation)",
        p.launches,
        p.host_syncs,
        p.flops as f64 / 1e9,
        p.compulsory_bytes as f64 / 1e6,
        sectors as f64 / 1e9,
        opt(p.warps_per_sm(), |w| format!("{w:.1}")),
        p.estimate_s * 1e6,
        p.flop_floor_s() * 1e6,
        p.memory_floor_s() * 1e6,
        p.launch_floor_s() * 1e6,
        p.modelled_s * 1e6,
        p.latency.load_s * 1e9,
        p.latency.shared_s * 1e9,
        p.latency.fma_s * 1e9,
        p.latency.barrier_s * 1e9,
        p.latency.cluster_s * 1e9,
        p.latency.warp_op_s * 1e9,
    )
}

fn title(p: &StepProfile) -> String {
    let sampled = p.sample_blocks.map_or_else(
        || "every block counted".to_string(),
        |b| format!("{b} blocks per launch sampled, counts scaled to the grid"),
    );
    format!(
        "{} train step, {} ({}), {sampled}; {} roofline ({:.1} TB/s, {:.0} TFLOP/s fp32, \
         {:.1} µs/launch)",
        p.target,
        p.config,
        p.shape,
        p.roofline.name,
        p.roofline.bytes_per_s / 1e12,
        p.roofline.flops_per_s / 1e12,
        p.roofline.launch_s * 1e6
    )
}

/// The fixed-width table of a profiled step, kernels by descending estimate, then the
/// summary line.
pub fn table(p: &StepProfile) -> String {
    let rows: Vec<[String; COLUMNS]> = p.kernels.iter().map(|k| cells(k, p.estimate_s)).collect();
    let mut w = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i == 0 || i == BOUND {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "{}{c}", " ".repeat(pad));
            }
            s.push_str(if i + 1 < cells.len() { "  " } else { "\n" });
        }
        s
    };
    let mut s = format!("{}\n", title(p));
    s.push_str(&line(&HEADERS.map(String::from)));
    for r in &rows {
        s.push_str(&line(r));
    }
    let _ = writeln!(s, "{}", summary_line(p));
    s
}

/// The Markdown table of a profiled step (for docs/kernels.md), with its title and summary.
pub fn markdown(p: &StepProfile) -> String {
    let mut s = format!("**{}**\n\n", title(p));
    let _ = writeln!(s, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(
        s,
        "|{}",
        HEADERS
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 || i == BOUND {
                "---|"
            } else {
                "---:|"
            })
            .collect::<String>()
    );
    for k in &p.kernels {
        let _ = writeln!(s, "| {} |", cells(k, p.estimate_s).join(" | "));
    }
    let _ = writeln!(s, "\n{}\n", summary_line(p));
    s
}

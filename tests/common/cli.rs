//! Running the `pixelrnn` binary and judging what it printed: a bad input ends with one clear
//! line on stderr and a non-zero exit, never a panic or a backtrace.

use std::path::{Path, PathBuf};
use std::process::Command;

use pixelrnn::data::{load_npy, save_npy_u8, Images};

/// What one run of the binary did.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub cmd: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole transcript unless the command exited 0.
    pub fn expect_ok(self) -> Out {
        assert!(
            self.ok(),
            "`{}` failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.cmd,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `pixelrnn args...` in `cwd`, with RUST_BACKTRACE=1 so that a panic, or an error
/// printed with its backtrace, cannot go unnoticed.
pub fn pixelrnn_in(cwd: &Path, args: &[&str]) -> Out {
    let output = Command::new(env!("CARGO_BIN_EXE_pixelrnn"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .expect("the pixelrnn binary starts");
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        cmd: format!("pixelrnn {}", args.join(" ")),
    }
}

pub fn pixelrnn(args: &[&str]) -> Out {
    pixelrnn_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// `pixelrnn sample --checkpoint RUN ARGS... --out DIR/NAME.png --npy DIR/NAME.npy`, which must
/// succeed: what it printed and the drawn images read back from the `.npy` (the PNG grid is
/// written beside it).
pub fn sample_npy(run: &Path, dir: &Path, name: &str, args: &[&str]) -> (Out, Images) {
    let png = dir.join(format!("{name}.png"));
    let npy = dir.join(format!("{name}.npy"));
    let mut all = vec!["sample", "--checkpoint", s(run)];
    all.extend_from_slice(args);
    all.extend(["--out", s(&png), "--npy", s(&npy)]);
    let out = pixelrnn(&all).expect_ok();
    assert!(png.is_file(), "{}: no {}", out.cmd, png.display());
    let images = load_npy(&npy).unwrap_or_else(|e| panic!("{}: {}: {e}", out.cmd, npy.display()));
    (out, images)
}

/// No trace of a panic or a backtrace in `stderr`.
pub fn check_no_panic(out: &Out) -> Result<(), String> {
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        if out.stderr.contains(bad) {
            return Err(format!(
                "`{}`: stderr mentions {bad:?}:\n{}",
                out.cmd, out.stderr
            ));
        }
    }
    Ok(())
}

/// Whether this build has compiled kernels (the emulator and `--device cuda` need them); when
/// it has none, says on stderr that the calling test is skipped.
pub fn has_kernels() -> bool {
    if !pixelrnn::kernels::KERNELS_COMPILED {
        eprintln!("skipped: this build has no kernels");
    }
    pixelrnn::kernels::KERNELS_COMPILED
}

pub fn assert_no_panic(out: &Out) {
    if let Err(e) = check_no_panic(out) {
        panic!("{e}");
    }
}

/// A bad input: non-zero exit, exactly one non-empty line on stderr that contains every
/// string of `mentions`, and no panic or backtrace.
pub fn check_clean_error(out: &Out, mentions: &[&str]) -> Result<(), String> {
    if out.code.is_none_or(|c| c == 0) {
        return Err(format!(
            "`{}` should fail, exited with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.cmd, out.code, out.stdout, out.stderr
        ));
    }
    check_no_panic(out)?;
    let text = out.stderr.strip_suffix('\n').unwrap_or(&out.stderr);
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() != 1 || lines[0].trim().is_empty() {
        return Err(format!(
            "`{}`: stderr should be exactly one non-empty line, got {} line(s):\n{}",
            out.cmd,
            lines.len(),
            out.stderr
        ));
    }
    for m in mentions {
        if !lines[0].contains(m) {
            return Err(format!(
                "`{}`: the error should mention {m:?}: {}",
                out.cmd, lines[0]
            ));
        }
    }
    Ok(())
}

pub fn assert_clean_error(out: &Out, mentions: &[&str]) {
    if let Err(e) = check_clean_error(out, mentions) {
        panic!("{e}");
    }
}

/// A temporary path as the `&str` a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Flags of a tiny, fast model on the CPU; `--data`, `--steps` and `--out` are the caller's.
pub const TINY: [&str; 12] = [
    "--layers",
    "1",
    "--hidden",
    "4",
    "--head",
    "8",
    "--batch",
    "4",
    "--eval-images",
    "16",
    "--device",
    "cpu",
];

/// A deterministic byte stream (64-bit LCG), so the generated files are the same every run.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(6364136223846793005);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

/// Writes `n` uint8 images of `h x w x c` drawn by [`bytes`] from `seed` to `dir/name` (NHWC
/// .npy) and returns its path.
pub fn write_npy_images(
    dir: &Path,
    name: &str,
    (n, h, w, c): (usize, usize, usize, usize),
    seed: u64,
) -> PathBuf {
    let images = Images::new(n, h, w, c, false, bytes(n * h * w * c, seed)).expect("valid images");
    let path = dir.join(name);
    save_npy_u8(&path, &images).expect("writes the .npy");
    path
}

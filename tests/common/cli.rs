//! Running the `pixelrnn` binary and judging what it printed: a bad input ends with one clear
//! line on stderr and a non-zero exit, never a panic or a backtrace.

use std::path::Path;
use std::process::Command;

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

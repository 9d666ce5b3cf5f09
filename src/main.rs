//! The `pixelrnn` binary: train, eval, sample, bench and info from one command line.
//! Errors end the process with one line on stderr and exit code 1 (2 for a bad command line).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_sigpipe();
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                eprint!("{e}");
                return ExitCode::from(2);
            }
            if let Some(message) = negative_value(&e) {
                eprintln!("error: {message} (see --help)");
                return ExitCode::from(2);
            }
            // clap's message is several lines (the error, its details, a usage block); keep the
            // error and its details on one line.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let message = if message.is_empty() {
                "invalid command line".to_string()
            } else {
                message.join(" ")
            };
            eprintln!("{message} (see --help)");
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// A negative number given to a flag that takes none (`--hidden -1`): clap reads `-1` as an
/// unknown short flag ("unexpected argument '-1'"); say instead which flag got what.
fn negative_value(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(value)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    // clap names the first short-flag cluster only: '-1' for `-10`, '-2' for `-2.5`.
    let args: Vec<String> = std::env::args().collect();
    let at = args
        .iter()
        .position(|a| a.starts_with(value.as_str()) && a.parse::<f64>().is_ok())?;
    let (flag, value) = (
        args[..at].last().filter(|f| f.starts_with("--"))?,
        &args[at],
    );
    Some(format!("{flag} {value}: must not be negative"))
}

/// Lets a closed pipe end the process quietly (`pixelrnn info | head`), as it does for other
/// command-line tools: Rust ignores SIGPIPE, which turns every later `println!` into a panic.
fn restore_sigpipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: std::ffi::c_int, handler: usize) -> usize;
        }
        const SIGPIPE: std::ffi::c_int = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: restores the default disposition of one signal before any thread starts.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}

/// The error and its causes, joined on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

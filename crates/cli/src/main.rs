//! `coffer`, the command line. Local mode: it drives the engine directly on a
//! vault location. Errors print as one line plus a hint; exit codes are
//! documented in the README and in [`exit`].

mod cli;
mod exit;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = <cli::Cli as clap::Parser>::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if args.verbose { "info" } else { "warn" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            let (code, hint) = exit::classify(&err);
            eprintln!("error: {}", output::one_line(&err));
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            code.into()
        }
    }
}

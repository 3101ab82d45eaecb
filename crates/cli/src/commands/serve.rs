//! `coffer serve`: the backup service (REST API, console, scheduler and
//! job runner) on the settings of its data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// State, service secret and cache (default $COFFER_DATA_DIR, else
    /// ~/.local/share/coffer).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Settings file (default: coffer.toml in the data directory, when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8420; also COFFER_LISTEN).
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<std::net::SocketAddr>,
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    let ServeArgs {
        data_dir,
        config,
        listen,
    } = args;
    let mut config = coffer_server::ServiceConfig::load(data_dir.as_deref(), config.as_deref())?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    coffer_server::serve(config)?;
    Ok(ExitCode::SUCCESS)
}

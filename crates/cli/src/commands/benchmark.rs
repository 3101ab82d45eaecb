//! `coffer benchmark`: this machine's single-core speed for each stage of
//! the pipeline, and the storage speed of a location.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::ctx::Ctx;
use crate::output::print_json;

#[derive(Args)]
pub(crate) struct BenchmarkArgs {
    /// Where to measure storage speed (a path or URL); default: the temp directory.
    #[arg(long, value_name = "LOC")]
    location: Option<String>,
    /// Seconds to spend on each stage.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    seconds: f64,
}

pub(crate) fn run(ctx: &Ctx, args: BenchmarkArgs) -> Result<ExitCode> {
    let BenchmarkArgs { location, seconds } = args;
    if !(seconds > 0.0 && seconds <= 600.0) {
        bail!("--seconds takes a duration above 0 and at most 600, not {seconds}");
    }
    let budget = std::time::Duration::from_secs_f64(seconds);
    let location = match location {
        Some(l) => l,
        None => std::env::temp_dir().to_string_lossy().into_owned(),
    };
    let storage = ctx
        .storage(&location)
        .with_context(|| format!("cannot open {location} to measure storage speed"))?;
    let mut stages = coffer_engine::speed::cpu_stages(budget);
    stages.extend(
        coffer_engine::speed::storage_stages(&storage, budget)
            .with_context(|| format!("storage probe at {location} failed"))?,
    );
    if ctx.json {
        let rows: Vec<_> = stages
            .iter()
            .map(|s| json!({"stage": s.stage, "what": s.what, "bytes": s.bytes, "seconds": s.seconds, "mib_per_second": s.mib_per_second()}))
            .collect();
        print_json(&json!({"location": storage.display(), "stages": rows}));
    } else {
        println!(
            "single-core speed on this machine (storage: {})",
            storage.display()
        );
        for s in &stages {
            println!(
                "{:<18} {:>6.0} MiB/s   {}",
                s.stage,
                s.mib_per_second(),
                s.what
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

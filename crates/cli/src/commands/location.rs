//! `coffer location test`: whether a location works for a vault, step
//! by step, each failure classified with the steps that fix it.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use crate::ctx::Ctx;
use crate::exit;
use crate::output::print_json;

#[derive(Subcommand)]
pub(crate) enum LocationCommand {
    /// Check that a location works for a vault: connect, authenticate,
    /// write, read back and delete a probe object, and report free
    /// capacity. Each failure is classified with the steps that fix it.
    ///
    /// Secrets come from the environment or --credentials FILE:
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (s3://);
    /// AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN (azblob://);
    /// GOOGLE_APPLICATION_CREDENTIALS or COFFER_GCS_TOKEN (gcs://);
    /// COFFER_SFTP_KEY_FILE (sftp://); COFFER_WEBDAV_USERNAME,
    /// COFFER_WEBDAV_PASSWORD or COFFER_WEBDAV_TOKEN (webdav://).
    Test {
        /// The location: a path, or s3://bucket/prefix?endpoint=…&region=…,
        /// azblob://container/prefix?account=…&endpoint=…, gcs://bucket/prefix,
        /// sftp://user@host:port/path, webdav://host/path (webdav+http:// for
        /// plain HTTP).
        #[arg(value_name = "LOC")]
        location: String,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: LocationCommand) -> Result<ExitCode> {
    match cmd {
        LocationCommand::Test { location } => test(ctx, location),
    }
}

fn test(ctx: &Ctx, location: String) -> Result<ExitCode> {
    let storage = ctx.storage(&location)?;
    let report = coffer_engine::probe::run(&storage);
    if ctx.json {
        let steps: Vec<_> = report
            .steps
            .iter()
            .map(|s| json!({"step": s.name, "ok": s.ok, "detail": s.detail, "millis": s.millis}))
            .collect();
        print_json(&json!({
            "location": report.location,
            "kind": report.kind,
            "ok": report.ok(),
            "failure": report.failure.map(|f| f.to_string()),
            "remedy": report.failure.map(|f| f.remedy()),
            "free_bytes": report.free_bytes,
            "holds_vault": report.holds_vault,
            "steps": steps,
        }));
    } else {
        println!("{} ({})", report.location, report.kind);
        for s in &report.steps {
            let mark = if s.ok { "ok  " } else { "FAIL" };
            println!("  {mark} {:<26} {} ({} ms)", s.name, s.detail, s.millis);
        }
    }
    match report.failure {
        None => {
            if !ctx.json {
                println!("the location works for a vault");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(failure) => {
            eprintln!("error: location test failed: {failure}");
            eprintln!("hint: {}", failure.remedy());
            Ok(ExitCode::from(exit::ERROR))
        }
    }
}

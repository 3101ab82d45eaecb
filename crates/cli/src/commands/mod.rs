//! One module per command (or group of subcommands): its clap arguments
//! beside the code that runs it, so a command is read in one place. Each
//! takes the [`Ctx`](crate::ctx::Ctx) of the global options and answers with
//! the exit code; errors go up to `main`, which prints them with their hint.

pub(crate) mod agent;
pub(crate) mod backup;
pub(crate) mod benchmark;
pub(crate) mod check;
pub(crate) mod disk;
pub(crate) mod item;
pub(crate) mod key;
pub(crate) mod location;
pub(crate) mod ls;
pub(crate) mod points;
pub(crate) mod policy;
pub(crate) mod prune;
pub(crate) mod recover;
pub(crate) mod replica;
pub(crate) mod restore;
pub(crate) mod serve;
pub(crate) mod tier;
pub(crate) mod vault;

use anyhow::{Context, Result};

/// Parses an RFC 3339 time (`2026-01-31T22:00:00Z`).
fn parse_time(text: &str) -> Result<coffer_engine::tree::Timestamp> {
    let ts: jiff::Timestamp = text.parse().with_context(|| {
        format!("--time {text:?}: expected an RFC 3339 time like 2026-01-31T22:00:00Z")
    })?;
    Ok(coffer_engine::tree::Timestamp {
        secs: ts.as_second(),
        nanos: ts.subsec_nanosecond().max(0) as u32,
    })
}

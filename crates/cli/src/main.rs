//! `coffer`, the command line. Local mode: it drives the engine directly on a
//! vault location. Remote mode (`--server URL` or `COFFER_SERVER`): it
//! manages a running service through its API ([`remote`]). `coffer serve`
//! runs that service. Errors print as one line plus a hint; exit codes are
//! documented in the README and in [`exit`].

// `deny`, not `forbid`: jemalloc's options symbol below needs the one
// exception, allowed where it stands with the reason it is sound.
#![deny(unsafe_code)]

mod cli;
mod commands;
mod ctx;
mod exit;
mod grammar;
mod output;
mod remote;

use std::process::ExitCode;

fn main() -> ExitCode {
    if remote::requested() {
        init_logging(false);
        return match remote::run() {
            Ok(code) => code,
            Err(err) => {
                // The service's message, then its hint on a line of its own,
                // and the exit code local mode gives the same error.
                eprintln!("error: {err:#}");
                let service = err
                    .chain()
                    .find_map(|e| e.downcast_ref::<remote::ServiceError>());
                match service {
                    Some(e) => {
                        if let Some(hint) = &e.hint {
                            eprintln!("hint: {hint}");
                        }
                        ExitCode::from(e.code.exit_code())
                    }
                    None => exit::classify(&err).0.into(),
                }
            }
        };
    }
    let args = match <cli::Cli as clap::Parser>::try_parse() {
        Ok(args) => args,
        Err(err) => {
            use clap::CommandFactory;
            let other = remote::RemoteCli::command();
            match grammar::other_mode(&err, &cli::Cli::command(), &other, true) {
                Some(line) => {
                    eprintln!("error: {line}");
                    return ExitCode::from(2);
                }
                None => err.exit(),
            }
        }
    };
    init_logging(args.verbose);
    coffer_engine::fsmeta::raise_open_file_limit();
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

fn init_logging(verbose: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if verbose {
            "info"
        } else {
            // Other crates warn about what Coffer reports itself (a storage
            // client's failed credential lookup, with a backtrace).
            "error,coffer=warn,coffer_engine=warn,coffer_server=info"
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

// Backup and restore pass every byte through short-lived multi-megabyte
// buffers on many threads. glibc's per-thread arenas keep those freed buffers
// resident (measured: 220 MB peak for a backup holding about 60 MB live);
// jemalloc, told to return freed pages soon, stays near the live size for a
// few percent of system time. One arena for all threads: a buffer freed by an
// uploader is reused by a reader instead of lying idle in another arena
// (peak 98-104 MB with two arenas, 93-97 MB with one; the same time).
// docs/PERFORMANCE.md has the measurements.
// `--features system-alloc` keeps glibc's malloc, for heap profilers
// (valgrind's massif) that only see malloc.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start-up (the `_rjem_`
/// prefix is how tikv-jemallocator names jemalloc's `malloc_conf`); the
/// `_RJEM_MALLOC_CONF` environment variable still overrides it.
///
/// Sound: jemalloc only reads the symbol, once, as a `const char *` during
/// its initialisation; the static is a reference, laid out as that pointer,
/// to an immutable, NUL-terminated `'static` byte string that nothing
/// writes, and no other object in the binary
/// defines `_rjem_malloc_conf` (the jemalloc built by tikv-jemalloc-sys
/// declares it weak, for the program to define).
#[cfg(not(feature = "system-alloc"))]
#[allow(unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static JEMALLOC_OPTIONS: &[u8; 46] = b"narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0\0";

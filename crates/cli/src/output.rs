//! Formatting helpers shared by the commands: times, sizes, JSON, and the
//! live progress display (a bar on a terminal, JSON lines with `--json`,
//! nothing otherwise).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_engine::tree::Timestamp;

/// An error chain as one line.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// RFC 3339 in UTC to the second; the nanoseconds (always positive, after
/// the second `secs` names) do not change the second shown.
pub fn time(t: Timestamp) -> String {
    jiff::Timestamp::from_second(t.secs)
        .map(|d| d.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| format!("@{}", t.secs))
}

pub fn time_secs(secs: i64) -> String {
    time(Timestamp { secs, nanos: 0 })
}

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One value as one line of JSON (for streams such as a job's log).
pub fn print_json_line<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: the answer cannot be written as JSON: {e}"),
    }
}

/// Prints `value` as pretty JSON: every `--json` answer, local or remote,
/// goes through here, from the shared types where there is one.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Only a map with keys that are not strings fails; none of ours has one.
        Err(e) => eprintln!("error: the answer cannot be written as JSON: {e}"),
    }
}

/// One sample of a running operation's counters.
pub struct Sample {
    pub files: u64,
    pub bytes: u64,
    pub total_bytes: Option<u64>,
}

/// Shows progress until dropped.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    pub fn start(
        json: bool,
        label: &'static str,
        sample: impl Fn() -> Sample + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        let handle = (json || terminal).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let bar = (!json).then(|| {
                    let bar = indicatif::ProgressBar::new_spinner();
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                let mut last_json = Instant::now();
                let mut first = true;
                loop {
                    // One last sample after the stop, so JSON readers always get one.
                    let stopping = stop.load(Ordering::Relaxed);
                    let s = sample();
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    let rate = s.bytes as f64 / secs;
                    let eta = s.total_bytes.filter(|t| *t > s.bytes && rate > 0.0).map(|t| (t - s.bytes) as f64 / rate);
                    if let Some(bar) = &bar {
                        let mut msg = format!("{label}: {} files, {}, {}/s", s.files, size(s.bytes), size(rate as u64));
                        if let Some(t) = s.total_bytes {
                            msg.push_str(&format!(" of {}", size(t)));
                        }
                        if let Some(eta) = eta {
                            msg.push_str(&format!(", ETA {}s", eta.round() as u64));
                        }
                        bar.set_message(msg);
                    } else if first || stopping || last_json.elapsed() >= Duration::from_secs(1) {
                        first = false;
                        last_json = Instant::now();
                        println!(
                            "{}",
                            serde_json::json!({"type": "progress", "operation": label, "files": s.files, "bytes": s.bytes,
                                "total_bytes": s.total_bytes, "bytes_per_second": rate as u64, "eta_seconds": eta.map(|e| e.round() as u64),
                                "elapsed_seconds": secs})
                        );
                    }
                    if stopping {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
            })
        });
        Ticker { stop, handle }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The current time in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A duration in seconds as people say it: `45 s`, `12 min`, `3 h 20 min`,
/// `2 d 4 h`.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_utc_to_the_second_on_both_sides_of_1970() {
        assert_eq!(
            time(Timestamp {
                secs: 1_767_434_400,
                nanos: 999_999_999
            }),
            "2026-01-03T10:00:00Z"
        );
        assert_eq!(
            time(Timestamp { secs: -1, nanos: 5 }),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(time_secs(i64::MAX), format!("@{}", i64::MAX));
    }
}

//! Agents' uploads under bandwidth limits: an agent's own rate, the rate
//! of all agents together, and the work-hours schedule that picks between
//! two rates, all set through the real command line and API of a real
//! `coffer serve`, with real `coffer agent run` processes sending.

mod agent_harness;
mod common;
mod service_harness;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use agent_harness::*;
use common::*;
use service_harness::*;

const KIB: usize = 1 << 10;

/// Registers `name`, gives it an item over its own source directory and
/// starts it; the source directory.
fn agent_with_item(
    server: &Server,
    api: &Api,
    dir: &Path,
    name: &str,
    running: &mut Vec<AgentProcess>,
) -> PathBuf {
    let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
    let state = dir.join(format!("state-{name}"));
    ok(register(
        server,
        token["text"].as_str().unwrap(),
        name,
        &state,
    ));
    let src = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(&src).unwrap();
    api.post(
        "/items",
        json!({"name": name, "vault": "v", "agent": name, "paths": [src.to_str().unwrap()], "retry_attempts": 0}),
        StatusCode::CREATED,
    );
    running.push(AgentProcess::start(&state));
    src
}

/// A backup of `item` after `len` bytes of new, incompressible data; how
/// long it took, start to end.
fn timed_backup(api: &Api, item: &str, src: &Path, len: usize, seed: u8) -> Duration {
    random_file(&src.join(format!("new-{seed}")), len, seed);
    let started = Instant::now();
    let done = back_up(api, item);
    assert_eq!(done["state"], "Succeeded", "{done}");
    started.elapsed()
}

fn cli_bandwidth(server: &Server, api: &Api, fingerprint: &str, args: &[&str]) -> Output {
    let url = service_url(server);
    let mut all = vec![
        "--server",
        &url,
        "--server-fingerprint",
        fingerprint,
        "--json",
        "agent",
        "bandwidth",
    ];
    all.extend_from_slice(args);
    coffer(&all, &[("COFFER_TOKEN", api.token.as_str())])
}

#[test]
fn agents_uploads_keep_to_their_own_and_the_overall_rate_and_follow_work_hours() {
    let dir = scratch();
    let server = tls_service(dir.path());
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let mut running = Vec::new();
    let slow = agent_with_item(&server, &api, dir.path(), "slow", &mut running);
    let fast = agent_with_item(&server, &api, dir.path(), "fast", &mut running);
    let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
    let fingerprint = token["text"]
        .as_str()
        .unwrap()
        .split(':')
        .nth(3)
        .unwrap()
        .to_string();

    // One agent's own rate, through the command line: 256 KiB/s at all hours.
    let shown: Value = serde_json::from_str(&ok(cli_bandwidth(
        &server,
        &api,
        &fingerprint,
        &["--agent", "slow", "--rates", "256K"],
    )))
    .unwrap();
    assert_eq!(shown["agents"][0]["agent"], "slow", "{shown}");
    assert_eq!(shown["agents"][0]["rates"]["work_hours"], 256 * KIB);
    assert_eq!(shown["agents"][0]["rates"]["other_hours"], 256 * KIB);
    // Bad limits are refused with what is wrong, and change nothing.
    let refused = cli_bandwidth(
        &server,
        &api,
        &fingerprint,
        &["--work-hours", "18:00-08:00"],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("must come after"), "{said}");
    assert_eq!(api.get("/agents/bandwidth")["work_start"], "08:00");

    // 2 MiB at 256 KiB/s, a second's worth allowed at once: at least 7 s.
    // The other agent is not held back.
    let slow_took = timed_backup(&api, "slow", &slow, 2048 * KIB, 1);
    let fast_took = timed_backup(&api, "fast", &fast, 2048 * KIB, 2);
    assert!(slow_took >= Duration::from_millis(6500), "{slow_took:?}");
    assert!(fast_took < slow_took / 2, "{fast_took:?} vs {slow_took:?}");

    // All agents together at 256 KiB/s, none alone: two backups of 1 MiB
    // at once share the rate, so the later ends at least 7 s after both began.
    let limits = json!({
        "work_days": [], "work_start": "08:00", "work_end": "18:00", "time_zone": "UTC",
        "per_agent": {"work_hours": null, "other_hours": null},
        "overall": {"work_hours": 256 * KIB, "other_hours": 256 * KIB},
        "agents": [],
    });
    let (status, _) = api.call("PUT", "/agents/bandwidth", Some(limits));
    assert_eq!(status, StatusCode::OK);
    random_file(&slow.join("new-3"), 1024 * KIB, 3);
    random_file(&fast.join("new-4"), 1024 * KIB, 4);
    let started = Instant::now();
    let jobs: Vec<i64> = ["slow", "fast"]
        .iter()
        .map(|item| {
            api.post(
                &format!("/items/{item}/backup"),
                json!({}),
                StatusCode::ACCEPTED,
            )["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    for job in jobs {
        let done = api.wait_job(job);
        assert_eq!(done["state"], "Succeeded", "{done}");
    }
    let both_took = started.elapsed();
    assert!(both_took >= Duration::from_millis(6500), "{both_took:?}");

    // Work hours on no day: only the other hours' rate applies, and here it
    // is unlimited, however low the work hours' rate.
    let limits = json!({
        "work_days": [], "work_start": "08:00", "work_end": "18:00", "time_zone": "Europe/Stockholm",
        "per_agent": {"work_hours": 8 * KIB, "other_hours": null},
        "overall": {"work_hours": 8 * KIB, "other_hours": null},
        "agents": [],
    });
    let (status, _) = api.call("PUT", "/agents/bandwidth", Some(limits));
    assert_eq!(status, StatusCode::OK);
    let off_hours = timed_backup(&api, "slow", &slow, 2048 * KIB, 5);
    assert!(off_hours < slow_took / 2, "{off_hours:?} vs {slow_took:?}");
    // Everything arrived whole.
    vault_checks_whole(&api);
}

/// Every object under `folder` of the vault at `vault`: (path in the
/// vault, bytes), as an eavesdropper on the host would have seen them sent.
fn captured(vault: &Path, folder: &str) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut dirs = vec![vault.join(folder)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p.strip_prefix(vault).unwrap().to_str().unwrap().to_string();
                found.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    found
}

#[test]
fn an_old_upload_replayed_by_an_intruder_is_refused_or_changes_nothing() {
    let dir = scratch();
    let server = tls_service(dir.path());
    let api = server.admin();
    let vault = dir.path().join("vault");
    api.create_vault("v", &vault);
    let mut running = Vec::new();
    let src = agent_with_item(&server, &api, dir.path(), "host", &mut running);
    random_file(&src.join("first"), 100 * KIB, 1);
    let first = back_up(&api, "host");
    assert_eq!(first["state"], "Succeeded", "{first}");
    let old_point = first["result"]["point"].as_str().unwrap().to_string();

    // What the intruder holds: the host's state directory, and what the
    // host sent before.
    let intruder = Intruder::from_state(&server, &dir.path().join("state-host"));
    let slot = slot_of(&api, "host");
    let (point_path, point_bytes) = captured(&vault, "points").remove(0);
    assert!(point_path.ends_with(&old_point), "{point_path}");
    let packs = captured(&vault, "packs");
    let indexes = captured(&vault, &format!("index/{slot}"));
    let put = |path: &str, bytes: &[u8]| {
        intruder.send(
            reqwest::Method::PUT,
            &format!("/agent/objects/{path}"),
            Some(bytes.to_vec()),
        )
    };

    // Outside a job nothing is taken.
    for (path, bytes) in [(&point_path, &point_bytes), (&packs[0].0, &packs[0].1)] {
        let (status, body) = put(path, bytes);
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body.contains("no job running"), "{body}");
    }

    // During a job of the host (held back to 128 KiB/s so the intruder
    // has time, though what it sends counts against the same rate): the old point is refused as a replay; old packs and index
    // files are content-named, so sending them again changes no byte.
    api.call(
        "PUT",
        "/agents/bandwidth",
        Some(json!({
            "work_days": [], "work_start": "08:00", "work_end": "18:00", "time_zone": "UTC",
            "per_agent": {"work_hours": null, "other_hours": null},
            "overall": {"work_hours": null, "other_hours": null},
            "agents": [{"agent": "host", "rates": {"work_hours": 128 * KIB, "other_hours": 128 * KIB}}],
        })),
    );
    random_file(&src.join("second"), 1024 * KIB, 2);
    let job = api.post("/items/host/backup", json!({}), StatusCode::ACCEPTED)["id"]
        .as_i64()
        .unwrap();
    wait_running_with_bytes(&api, job);
    let (status, body) = put(&point_path, &point_bytes);
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("replayed upload"), "{body}");
    for (path, bytes) in packs.iter().chain(&indexes) {
        let (status, body) = put(path, bytes);
        assert!(status.is_success(), "{path}: {status} {body}");
        assert_eq!(std::fs::read(vault.join(path)).unwrap(), *bytes, "{path}");
    }
    // A point made up from the old one does not hash to its name.
    let mut forged = point_bytes.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let (status, body) = put(&point_path, &forged);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The job ends with a point of its own, and the vault is whole.
    let done = api.wait_job(job);
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert_ne!(done["result"]["point"], old_point.as_str(), "{done}");
    assert_eq!(captured(&vault, "points").len(), 2);
    vault_checks_whole(&api);
}

//! Agents end to end: the real `coffer serve` with a certificate it made
//! itself, three real `coffer agent run` processes, each with its own state
//! directory and source data, registering with one-time tokens, backing
//! their items up through the service's append-only store, and an attacker
//! holding one agent's state directory.

mod agent_harness;
mod common;
mod service_harness;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use agent_harness::*;
use common::*;
use service_harness::*;

#[test]
fn three_agents_back_up_their_hosts_through_the_service_and_cannot_touch_each_other() {
    let dir = scratch();
    let server = tls_service(dir.path());
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));

    // The first token through the API: its text names the certificate.
    let first = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
    let first_text = first["text"].as_str().unwrap().to_string();
    let fingerprint = first_text.split(':').nth(3).unwrap().to_string();
    assert_eq!(fingerprint.len(), 64, "{first_text}");
    // The others through the remote command line, which trusts the
    // service by that same fingerprint.
    let admin_env = [("COFFER_TOKEN", api.token.as_str())];
    let mut texts = vec![first_text.clone()];
    for _ in 0..2 {
        let out = ok(coffer(
            &[
                "--server",
                &service_url(&server),
                "--server-fingerprint",
                &fingerprint,
                "--json",
                "agent",
                "token",
                "create",
                "--vault",
                "v",
                "--expires",
                "1h",
            ],
            &admin_env,
        ));
        let made: Value = serde_json::from_str(&out).unwrap();
        texts.push(made["text"].as_str().unwrap().to_string());
    }

    // A token whose fingerprint is not the service's is refused before
    // anything is sent, and stays unused.
    let spare = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
    let spare_text = spare["text"].as_str().unwrap();
    let forged = spare_text.replace(&fingerprint, &"0".repeat(64));
    let refused = register(&server, &forged, "evil", &dir.path().join("evil"));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("not the one the registration token names"),
        "{said}"
    );
    assert!(!dir.path().join("evil/agent.json").exists());

    // Three hosts: one with the torture tree, two with files of their own.
    let names = ["host-a", "host-b", "host-c"];
    let mut sources = Vec::new();
    let mut states = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let src = dir.path().join(format!("src-{name}"));
        if i == 0 {
            torture(&["make", src.to_str().unwrap()]);
        } else {
            for f in 0..20 {
                random_file(
                    &src.join(format!("d{}/f{f}", f % 3)),
                    1000 + f * 7919,
                    (i * 40 + f) as u8,
                );
            }
        }
        let state = dir.path().join(format!("state-{name}"));
        ok(register(&server, &texts[i], name, &state));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(state.join("agent.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        sources.push(src);
        states.push(state);
    }
    // A token is used once.
    let again = register(&server, &first_text, "host-d", &dir.path().join("state-d"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("used already"));
    let tokens = api.get("/agents/tokens");
    let used: Vec<&Value> = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["used_by"].is_null())
        .collect();
    assert_eq!(used.len(), 3, "{tokens}");

    let mut agents: Vec<AgentProcess> = states.iter().map(|s| AgentProcess::start(s)).collect();
    let listed = api.get("/agents");
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed[0]["host"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(listed[0]["unreachable"], false);

    // Files changed less than 2 s before a backup are read again next time.
    std::thread::sleep(Duration::from_millis(2100));
    let mut points = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let item = format!("item-{name}");
        api.post(
            "/items",
            json!({"name": item, "vault": "v", "agent": name, "paths": [sources[i].to_str().unwrap()], "retry_attempts": 0}),
            StatusCode::CREATED,
        );
        let done = back_up(&api, &item);
        assert_eq!(done["state"], "Succeeded", "{done}");
        assert_eq!(done["result"]["item"], item.as_str());
        points.push(done["result"]["point"].as_str().unwrap().to_string());
    }
    let listed = api.get("/vaults/v/points");
    for p in listed.as_array().unwrap() {
        assert!(!p["written_by"].is_null(), "{p}");
    }
    // The second backup of a host reads nothing that did not change.
    let second = back_up(&api, "item-host-b");
    assert_eq!(second["result"]["stats"]["bytes_read"], 0, "{second}");

    for (i, name) in names.iter().enumerate() {
        let target = dir.path().join(format!("restored-{name}"));
        restore(&api, &format!("item-{name}"), &points[i], &target);
        let report = torture(&[
            "compare",
            sources[i].to_str().unwrap(),
            under(&target, &sources[i]).to_str().unwrap(),
        ]);
        assert!(report.contains(" 0 differences"), "{name}: {report}");
    }

    // Restores onto the hosts themselves: host-a's tree back onto host-a,
    // host-b's onto host-c, each under a target of the host.
    for (i, host) in [(0usize, "host-a"), (1, "host-c")] {
        let target = dir.path().join(format!("onto-{host}"));
        let job = api.post(
            "/vaults/v/restore",
            json!({"point": points[i], "target": target.to_str().unwrap(), "host": host}),
            StatusCode::ACCEPTED,
        );
        let done = api.wait_job(job["id"].as_i64().unwrap());
        assert_eq!(done["state"], "Succeeded", "{done}");
        assert!(done["result"]["files"].as_u64().unwrap() > 0, "{done}");
        let report = torture(&[
            "compare",
            sources[i].to_str().unwrap(),
            under(&target, &sources[i]).to_str().unwrap(),
        ]);
        assert!(report.contains(" 0 differences"), "onto {host}: {report}");
    }

    // An attacker with host-a's state directory.
    let intruder = Intruder::from_state(&server, &states[0]);
    let other_slot = slot_of(&api, "host-b");
    let own_slot = slot_of(&api, "host-a");
    let get = reqwest::Method::GET;
    for path in [
        format!("/agent/list/index/{other_slot}/"),
        "/agent/list/points/".to_string(),
        "/agent/list/packs/".to_string(),
        format!("/agent/objects/points/{}", points[1]),
        format!("/agent/objects/keys/{other_slot}"),
        "/agent/objects/journal/".to_string(),
        // Trees and chunks are served only to a restore job of this agent.
        format!("/agent/restore/1/tree/{}", "00".repeat(32)),
        // Encoded, so that no client normalises it away.
        format!("/agent/objects/index/{own_slot}/%2E%2E%2F%2E%2E%2Fjournal"),
    ] {
        let (status, body) = intruder.send(get.clone(), &path, None);
        assert!(
            status == StatusCode::FORBIDDEN
                || status == StatusCode::BAD_REQUEST
                || status == StatusCode::NOT_FOUND,
            "{path}: {status} {body}"
        );
    }
    // Another host's point reads as absent; its own as present.
    let (_, other) = intruder.send(
        get.clone(),
        &format!("/agent/size/points/{}", points[1]),
        None,
    );
    assert_eq!(other, r#"{"size":null}"#);
    let (_, own) = intruder.send(
        get.clone(),
        &format!("/agent/size/points/{}", points[0]),
        None,
    );
    assert!(own.contains("\"size\":") && !own.contains("null"), "{own}");
    // Nothing can be deleted, and nothing added outside a job.
    let (status, body) = intruder.send(
        reqwest::Method::DELETE,
        &format!("/agent/objects/points/{}", points[1]),
        None,
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = intruder.send(
        reqwest::Method::PUT,
        &format!("/agent/objects/points/{}", points[1]),
        Some(b"x".to_vec()),
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("no job running"), "{body}");
    // The agent's secret is no user's token.
    let (status, _) = intruder.send(get.clone(), "/vaults", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Its credential opens nothing from the storage either.
    let identity: Value =
        serde_json::from_slice(&std::fs::read(states[0].join("agent.json")).unwrap()).unwrap();
    let cred = dir.path().join("stolen-credential");
    std::fs::write(&cred, identity["credential"].as_str().unwrap()).unwrap();
    let listing = coffer(
        &[
            "ls",
            "--vault",
            dir.path().join("vault").to_str().unwrap(),
            "--key-file",
            cred.to_str().unwrap(),
            &points[1],
        ],
        &[],
    );
    assert!(!listing.status.success());

    // A disabled agent is refused and its item's job fails with an alert.
    api.post(
        "/agents/host-c",
        json!({"action": "disable"}),
        StatusCode::OK,
    );
    let failed = back_up(&api, "item-host-c");
    assert_eq!(failed["state"], "Failed", "{failed}");
    assert_eq!(failed["cause"], "agent_unreachable", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("disabled"),
        "{failed}"
    );
    let alerts = api.get("/alerts");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["cause"] == "agent_unreachable"),
        "{alerts}"
    );
    api.post(
        "/agents/host-c",
        json!({"action": "enable"}),
        StatusCode::OK,
    );
    let back = back_up(&api, "item-host-c");
    assert_eq!(back["state"], "Succeeded", "{back}");

    // Re-keying hands out a new secret that the agent keeps and uses.
    let before = identity["secret"].as_str().unwrap().to_string();
    api.post("/agents/host-a", json!({"action": "rekey"}), StatusCode::OK);
    let started = Instant::now();
    loop {
        let now: Value =
            serde_json::from_slice(&std::fs::read(states[0].join("agent.json")).unwrap()).unwrap();
        if now["secret"] != before.as_str() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent was not re-keyed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rekeyed = back_up(&api, "item-host-a");
    assert_eq!(rekeyed["state"], "Succeeded", "{rekeyed}");
    let (status, _) = intruder.send(get.clone(), "/agent/size/vault", None);
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old secret still works"
    );

    // A removed agent stops with the service's word, and its credential is
    // revoked in the vault.
    let (status, body) = api.call("DELETE", "/agents/host-b", None);
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = api.call("DELETE", "/items/item-host-b", None);
    assert!(status.is_success());
    let (status, body) = api.call("DELETE", "/agents/host-b", None);
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let stopped = agents.remove(1).wait_exit(Duration::from_secs(60));
    assert!(stopped.contains("not registered"), "{stopped}");
    let revoked = dir
        .path()
        .join("vault/keys")
        .join(format!("{other_slot}.revoked"));
    assert!(revoked.exists());

    // The vault is whole.
    vault_checks_whole(&api);
    drop(agents);
}

#[test]
fn a_set_spans_agents_and_a_host_that_is_down_makes_it_partial_then_catches_up() {
    let dir = scratch();
    let data = tls_data(
        dir.path(),
        "agent_claim_secs = 10\nagent_unreachable_secs = 4\nscheduler_tick_secs = 1\n",
    );
    let server = Server::start(&data);
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let names = ["site-a", "site-b", "site-c"];
    let mut states = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
        let state = dir.path().join(format!("state-{name}"));
        ok(register(
            &server,
            token["text"].as_str().unwrap(),
            name,
            &state,
        ));
        let src = dir.path().join(format!("src-{name}"));
        small_tree(&src, i as u8 * 50);
        api.post(
            "/items",
            json!({"name": format!("item-{name}"), "vault": "v", "agent": name, "paths": [src.to_str().unwrap()], "retry_attempts": 0}),
            StatusCode::CREATED,
        );
        states.push(state);
    }
    let mut agents: Vec<AgentProcess> = states.iter().map(|s| AgentProcess::start(s)).collect();
    api.post(
        "/sets",
        json!({"name": "fleet", "vault": "v", "items": ["item-site-a", "item-site-b", "item-site-c"]}),
        StatusCode::CREATED,
    );

    // One coordinated set point over three hosts, with each host's status.
    let job = api.post("/sets/fleet/backup", json!({}), StatusCode::ACCEPTED);
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(done["state"], "Succeeded", "{done}");
    let points = api.get("/vaults/v/set-points");
    let point = &points[0];
    assert_eq!(point["ready_for_cloud_recovery"], true, "{point}");
    for (status, name) in point["items"].as_array().unwrap().iter().zip(names) {
        assert_eq!(status["host"], name, "{status}");
        assert_eq!(status["status"], "Succeeded", "{status}");
    }
    // Its drill restores every host's item on the service and checks it.
    let drill = api.post("/sets/fleet/drill", json!({}), StatusCode::ACCEPTED);
    let drill = api.wait_job(drill["id"].as_i64().unwrap());
    assert_eq!(drill["state"], "Succeeded", "{drill}");

    // A host that is down: the set point is partial, the others are in it.
    drop(agents.remove(2));
    wait_for("site-c unreachable", Duration::from_secs(40), || {
        api.get("/agents/site-c")["unreachable"] == true
    });
    let started = Instant::now();
    let job = api.post("/sets/fleet/backup", json!({}), StatusCode::ACCEPTED);
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the set waited for the host"
    );
    assert_eq!(done["state"], "PartialSucceeded", "{done}");
    let points = api.get("/vaults/v/set-points");
    let latest = points
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|p| p["time"].as_i64())
        .unwrap();
    assert_eq!(latest["ready_for_cloud_recovery"], false, "{latest}");
    let c = latest["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["host"] == "site-c")
        .unwrap();
    assert_eq!(c["status"], "Failed", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("not been in contact"),
        "{c}"
    );
    // The fleet alert names the host, with what to do.
    wait_for("the fleet alert", Duration::from_secs(20), || {
        api.get("/alerts").as_array().unwrap().iter().any(|a| {
            a["cause"] == "agent_unreachable"
                && a["item"].is_null()
                && a["detail"].as_str().unwrap_or("").contains("site-c")
        })
    });
    let alert = api
        .get("/alerts")
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["cause"] == "agent_unreachable" && a["item"].is_null())
        .cloned()
        .unwrap();
    assert!(
        !alert["remediation"].as_array().unwrap().is_empty(),
        "{alert}"
    );

    // Back in contact: the missed backup runs once, and the alert resolves.
    agents.push(AgentProcess::start(&states[2]));
    wait_for("the missed backup", Duration::from_secs(60), || {
        let jobs = api.get("/jobs?item=item-site-c");
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["trigger"] == "missed" && j["state"] == "Succeeded")
    });
    wait_for("the alert resolved", Duration::from_secs(20), || {
        !api.get("/alerts")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["cause"] == "agent_unreachable" && a["item"].is_null())
    });
}

#[test]
fn an_agent_or_the_service_killed_mid_backup_commits_nothing_half_and_the_next_run_completes() {
    let dir = scratch();
    let data = tls_data(
        dir.path(),
        "agent_claim_secs = 20\nagent_silence_secs = 4\n",
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start_on(&data, &listen, &[]);
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
    let state = dir.path().join("state");
    ok(register(
        &server,
        token["text"].as_str().unwrap(),
        "big-host",
        &state,
    ));
    // A backup that takes a while: 288 MiB at 32 MiB/s.
    let src = dir.path().join("src");
    for f in 0..12usize {
        random_file(&src.join(format!("f{f}")), 24 << 20, f as u8);
    }
    let (status, _) = api.call(
        "PUT",
        "/agents/bandwidth",
        Some(json!({
            "work_days": [], "work_start": "08:00", "work_end": "18:00", "time_zone": "UTC",
            "per_agent": {"work_hours": 32 << 20, "other_hours": 32 << 20},
            "overall": {"work_hours": null, "other_hours": null},
        })),
    );
    assert_eq!(status, StatusCode::OK);
    api.post(
        "/items",
        json!({"name": "big", "vault": "v", "agent": "big-host", "paths": [src.to_str().unwrap()], "retry_attempts": 3, "retry_delay_secs": 0}),
        StatusCode::CREATED,
    );
    let agent = AgentProcess::start(&state);

    // The agent dies mid-backup: the job fails once it stops reporting,
    // and no point is committed.
    let job = api.post("/items/big/backup", json!({}), StatusCode::ACCEPTED);
    let id = job["id"].as_i64().unwrap();
    wait_running_with_bytes(&api, id);
    drop(agent);
    let failed = api.wait_job(id);
    assert_eq!(failed["state"], "Failed", "{failed}");
    assert_eq!(failed["cause"], "agent_unreachable", "{failed}");
    assert_eq!(api.get("/vaults/v/points").as_array().unwrap().len(), 0);

    // The service dies mid-upload and comes back on the same address: the
    // interrupted job is failed at start and tried again, and completes.
    // The first failure's retry runs as soon as the agent is back.
    let _agent = AgentProcess::start(&state);
    let running = {
        let started = Instant::now();
        loop {
            let jobs = api.get("/jobs?item=big");
            if let Some(j) = jobs.as_array().unwrap().iter().find(|j| {
                j["state"] == "Running" && j["progress"]["bytes_read"].as_u64().unwrap_or(0) > 0
            }) {
                break j["id"].as_i64().unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no backup under way: {jobs}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let data = server.kill();
    assert_eq!(
        std::fs::read_dir(dir.path().join("vault/points")).map_or(0, |d| d.count()),
        0,
        "a point was committed by a backup whose service died"
    );
    let server = Server::start_on(&data, &listen, &[]);
    let api = server.admin();
    let interrupted = api.get(&format!("/jobs/{running}"));
    assert_eq!(interrupted["state"], "Failed", "{interrupted}");
    wait_for("a backup that completes", Duration::from_secs(180), || {
        let jobs = api.get("/jobs?item=big");
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["state"] == "Succeeded")
    });
    let points = api.get("/vaults/v/points");
    assert_eq!(points.as_array().unwrap().len(), 1, "{points}");
    let target = dir.path().join("restored");
    restore(&api, "big", points[0]["id"].as_str().unwrap(), &target);
    assert_same_tree(&src, &under(&target, &src));
    vault_checks_whole(&api);
}

#[test]
fn a_recovered_service_keeps_its_agents_and_their_cross_host_set_point() {
    let dir = scratch();
    let config = "agent_claim_secs = 20\n";
    let data = tls_data(dir.path(), config);
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start_on(&data, &listen, &[]);
    let api = server.admin();
    let vault = dir.path().join("vault");
    let key = api.create_vault("v", &vault)["generated_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut states = Vec::new();
    let mut sources = Vec::new();
    for (i, name) in ["east", "west"].iter().enumerate() {
        let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
        let state = dir.path().join(format!("state-{name}"));
        ok(register(
            &server,
            token["text"].as_str().unwrap(),
            name,
            &state,
        ));
        let src = dir.path().join(format!("src-{name}"));
        small_tree(&src, 90 + i as u8);
        api.post(
            "/items",
            json!({"name": format!("files-{name}"), "vault": "v", "agent": name, "paths": [src.to_str().unwrap()], "retry_attempts": 0}),
            StatusCode::CREATED,
        );
        states.push(state);
        sources.push(src);
    }
    let agents: Vec<AgentProcess> = states.iter().map(|s| AgentProcess::start(s)).collect();
    api.post(
        "/sets",
        json!({"name": "both", "vault": "v", "items": ["files-east", "files-west"]}),
        StatusCode::CREATED,
    );
    // Bandwidth limits are part of the configuration a set point keeps.
    let limits = json!({
        "work_days": ["mon", "fri"], "work_start": "07:30", "work_end": "19:00",
        "time_zone": "Europe/Stockholm",
        "per_agent": {"work_hours": 4 << 20, "other_hours": null},
        "overall": {"work_hours": 20 << 20, "other_hours": 100 << 20},
        "agents": [{"agent": "east", "rates": {"work_hours": 1 << 20, "other_hours": null}}],
    });
    let (status, _) = api.call("PUT", "/agents/bandwidth", Some(limits.clone()));
    assert_eq!(status, StatusCode::OK);
    let job = api.post("/sets/both/backup", json!({}), StatusCode::ACCEPTED);
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(done["state"], "Succeeded", "{done}");
    let set_point = done["result"]["set_point"].as_str().unwrap().to_string();

    // The disaster: the service and its data directory are gone; the
    // agents keep running and retrying.
    drop(api);
    server.kill();
    std::fs::remove_dir_all(&data).unwrap();

    // A fresh data directory from the location and the key: a drill of
    // the cross-host set point, then the recovery.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let recover = |args: &[&str]| {
        Command::new(BIN)
            .arg("recover")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("COFFER_KEY", &key)
            .output()
            .unwrap()
    };
    let location = vault.to_str().unwrap();
    let drill = ok(recover(&[
        "--location",
        location,
        "--point",
        &set_point,
        "--verify",
    ]));
    assert!(drill.contains("restored and checked"), "{drill}");
    tls_data(dir.path(), config);
    let recovered = ok(recover(&[
        "--location",
        location,
        "--point",
        &set_point,
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    assert!(recovered.contains("lives on agent east"), "{recovered}");
    assert!(recovered.contains("certificate"), "{recovered}");

    // The agents reconnect as they are: no registration, same certificate.
    let server = Server::start_on(&data, &listen, &[]);
    let api = server.admin();
    let listed = api.get("/agents");
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(api.get("/agents/bandwidth"), limits);
    wait_for(
        "the agents back in contact",
        Duration::from_secs(90),
        || {
            api.get("/agents")
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["unreachable"] == false && a["last_contact"].as_i64().is_some())
        },
    );
    std::fs::write(sources[0].join("d0/new"), b"written after the recovery").unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let job = api.post("/sets/both/backup", json!({}), StatusCode::ACCEPTED);
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(done["state"], "Succeeded", "{done}");
    let target = dir.path().join("restored");
    let east = done["result"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["item"] == "files-east")
        .unwrap()["point"]
        .as_str()
        .unwrap()
        .to_string();
    restore(&api, "files-east", &east, &target);
    assert_same_tree(&sources[0], &under(&target, &sources[0]));
    drop(agents);
}

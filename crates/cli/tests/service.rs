//! The backup service end to end: the real `coffer serve` on 127.0.0.1 with
//! its own data directory, driven over HTTP.

mod common;
mod service_harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{random_file, BIN};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_harness::{scratch, Api, Server, ADMIN_PASSWORD};

#[test]
fn an_item_is_backed_up_on_demand_through_the_api_and_secrets_stay_sealed() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("a.bin"), 300_000, 1);
    std::fs::write(source.join("notes.txt"), "hello service\n".repeat(100)).unwrap();

    let created = api.create_vault("main", &dir.path().join("vault"));
    let key = created["generated_key"].as_str().unwrap().to_string();
    assert!(key.len() >= 40);
    let info = api.get("/vaults/main");
    assert!(info.get("generated_key").is_none() && info.get("key").is_none());
    assert!(!info.to_string().contains(&key));
    // Neither the database nor anything else in the data directory holds the key.
    for entry in std::fs::read_dir(&server.data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "{} holds the vault key",
                path.display()
            );
        }
    }

    api.create_item("docs", "main", &source, 0);
    let job = api.post("/items/docs/backup", json!({}), StatusCode::ACCEPTED);
    let id = job["id"].as_i64().unwrap();
    assert!(
        ["Queued", "Running"].contains(&job["state"].as_str().unwrap()),
        "{job}"
    );
    let job = api.wait_job(id);
    assert_eq!(job["state"], "Succeeded", "{job}");
    assert_eq!(job["result"]["stats"]["files"], 2);
    assert_eq!(job["result"]["item"], "docs", "{job}");
    assert_eq!(job["result"]["packs_adopted"], 0, "{job}");
    assert!(job["progress"]["bytes_read"].as_u64().unwrap() >= 300_000);
    let logs = api.get(&format!("/jobs/{id}/logs"));
    let text = logs.to_string();
    assert!(text.contains("committed"), "{text}");
    let points = api.get("/vaults/main/points");
    assert_eq!(points.as_array().unwrap().len(), 1);
    assert_eq!(points[0]["item"], "docs");

    // Restore, check and prune are jobs too.
    let target = dir.path().join("restored");
    let job = api.post(
        "/vaults/main/restore",
        json!({"point": "latest", "target": target.to_str().unwrap()}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    assert_eq!(job["item"], "docs");
    common::assert_same_tree(&source, &common::under(&target, &source));
    let job = api.post(
        "/vaults/main/check",
        json!({"read_data_percent": 100}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    assert!(
        job["result"]["blobs_verified"].as_u64().unwrap() > 0,
        "{job}"
    );
    let job = api.post("/vaults/main/prune", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    let (s, v) = api.call(
        "POST",
        "/vaults/main/restore",
        Some(json!({"point": "latest", "target": "relative/dir"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "target");

    // The generated key opens the vault from the command line too.
    let out = Command::new(BIN)
        .args(["points", "list", "--vault"])
        .arg(dir.path().join("vault"))
        .env("COFFER_KEY", &key)
        .env("COFFER_CACHE_DIR", dir.path().join("cli-cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("docs"));

    // Validation errors name the field.
    let (s, v) = api.call(
        "POST",
        "/items",
        Some(json!({"name": "rel", "vault": "main", "paths": ["relative/path"]})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "paths", "{v}");
    let (s, v) = api.call(
        "POST",
        "/vaults",
        Some(json!({"name": "bad name!", "location": "/tmp/x"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "name", "{v}");
    // Without credentials: 401 with a hint.
    let r = Client::new().get(server.url("/vaults")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Prometheus metrics, for an authenticated scraper.
    let root = server.base.trim_end_matches("/api/v1").to_string();
    let r = Client::new()
        .get(format!("{root}/metrics"))
        .bearer_auth(&api.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let metrics = r.text().unwrap();
    assert!(
        metrics.contains("coffer_jobs{kind=\"backup\",state=\"Succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coffer_vault_size_bytes{vault=\"main\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("coffer_item_last_success_timestamp_seconds{item=\"docs\",vault=\"main\"}"),
        "{metrics}"
    );
    let r = Client::new().get(format!("{root}/metrics")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The OpenAPI document lists the routes that exist.
    let doc = api.get("/openapi.json");
    for path in [
        "/vaults",
        "/items/{name}/backup",
        "/jobs/{id}/cancel",
        "/alerts",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[test]
fn a_failed_backup_raises_one_alert_with_remediation_and_the_next_success_resolves_it() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("f"), 10_000, 2);
    let vault = dir.path().join("vault");
    api.create_vault("v", &vault);
    api.create_item("it", "v", &source, 0);
    let moved = dir.path().join("vault-away");
    std::fs::rename(&vault, &moved).unwrap();
    for _ in 0..2 {
        let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
        let job = api.wait_job(job["id"].as_i64().unwrap());
        assert_eq!(job["state"], "Failed", "{job}");
        assert_eq!(job["cause"], "path_not_found", "{job}");
    }
    let alerts = api.get("/alerts");
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["cause"], "path_not_found");
    assert_eq!(alerts[0]["occurrences"], 2);
    assert!(!alerts[0]["remediation"].as_array().unwrap().is_empty());

    // Opening the missing location left its empty directories behind.
    let _ = std::fs::remove_dir_all(&vault);
    std::fs::rename(&moved, &vault).unwrap();
    let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    assert!(api.get("/alerts").as_array().unwrap().is_empty());
    let all = api.get("/alerts?open=false");
    assert_eq!(all[0]["resolved_by"], "automatic");
}

#[test]
fn a_job_interrupted_by_a_crash_is_failed_at_restart_and_retried() {
    let dir = scratch();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("big"), 400 << 20, 3);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("big", "v", &source, 1);
    let job = api.post("/items/big/backup", json!({}), StatusCode::ACCEPTED);
    let id = job["id"].as_i64().unwrap();
    let started = Instant::now();
    loop {
        let j = api.get(&format!("/jobs/{id}"));
        if j["state"] == "Running" && j["progress"]["bytes_read"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert_ne!(j["state"], "Succeeded", "the backup ended before the crash");
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(10));
    }
    let data = server.kill();

    let server = Server::start(&data);
    let api = server.admin();
    let job = api.get(&format!("/jobs/{id}"));
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("service stopped"),
        "{job}"
    );
    // The retry may already have resolved it: look at every alert.
    let alerts = api.get("/alerts?open=false");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["cause"] == "general_fault"
                && a["detail"].as_str().unwrap().contains("service stopped")),
        "{alerts}"
    );
    let retries = api.get("/jobs?item=big");
    let retry = retries
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["attempt"] == 2)
        .unwrap_or_else(|| panic!("no retry queued: {retries}"))
        .clone();
    assert_eq!(retry["trigger"], "retry");
    let retry = api.wait_job(retry["id"].as_i64().unwrap());
    assert_eq!(retry["state"], "Succeeded", "{retry}");
    assert!(api.get("/alerts").as_array().unwrap().is_empty());
}

#[test]
fn a_running_backup_can_be_cancelled() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("big"), 400 << 20, 4);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("big", "v", &source, 3);
    let job = api.post("/items/big/backup", json!({}), StatusCode::ACCEPTED);
    let id = job["id"].as_i64().unwrap();
    // One job per item: a second request is refused while this one is active.
    let (s, v) = api.call("POST", "/items/big/backup", Some(json!({})));
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let started = Instant::now();
    while api.get(&format!("/jobs/{id}"))["state"] != "Running" {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(10));
    }
    api.post(
        &format!("/jobs/{id}/cancel"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(id);
    assert_eq!(job["state"], "Cancelled", "{job}");
    // Cancelled on request: no alert, no retry, no point.
    assert!(api.get("/alerts").as_array().unwrap().is_empty());
    assert_eq!(api.get("/jobs?item=big").as_array().unwrap().len(), 1);
    assert!(api.get("/vaults/v/points").as_array().unwrap().is_empty());
}

#[test]
fn every_role_is_refused_what_it_may_not_do() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let admin = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("f"), 1000, 5);
    admin.create_vault("v", &dir.path().join("vault"));
    admin.create_vault("other", &dir.path().join("vault2"));
    admin.create_item("it", "v", &source, 0);
    let password = "a password of some length";
    for (user, role) in [
        ("owner", "owner"),
        ("contrib", "contributor"),
        ("operator", "backup_operator"),
        ("reader", "reader"),
    ] {
        admin.post(
            "/users",
            json!({"name": user, "password": password}),
            StatusCode::CREATED,
        );
        admin.post(
            "/roles",
            json!({"user": user, "vault": "v", "role": role}),
            StatusCode::CREATED,
        );
    }
    admin.post(
        "/users",
        json!({"name": "nobody", "password": password}),
        StatusCode::CREATED,
    );

    let item_body = || json!({"name": "new-item", "vault": "v", "paths": ["/var/tmp"]});
    let role_body = || json!({"user": "nobody", "vault": "v", "role": "reader"});
    // (user, method, path, body, expected status)
    let cases: Vec<(&str, &str, &str, Option<Value>, u16)> = vec![
        ("reader", "GET", "/vaults/v", None, 200),
        ("reader", "GET", "/items/it", None, 200),
        ("reader", "POST", "/items/it/backup", Some(json!({})), 403),
        ("reader", "POST", "/items", Some(item_body()), 403),
        ("reader", "DELETE", "/items/it", None, 403),
        (
            "reader",
            "POST",
            "/vaults/v/key/rotate",
            Some(json!({})),
            403,
        ),
        ("reader", "POST", "/roles", Some(role_body()), 403),
        ("reader", "GET", "/users", None, 403),
        ("operator", "POST", "/items", Some(item_body()), 403),
        (
            "operator",
            "PATCH",
            "/items/it",
            Some(json!({"enabled": false})),
            403,
        ),
        ("operator", "DELETE", "/items/it", None, 403),
        ("operator", "DELETE", "/vaults/v", None, 403),
        ("operator", "POST", "/roles", Some(role_body()), 403),
        ("contrib", "POST", "/roles", Some(role_body()), 403),
        (
            "contrib",
            "POST",
            "/vaults",
            Some(json!({"name": "x", "location": "/var/tmp/x"})),
            403,
        ),
        ("contrib", "GET", "/users", None, 403),
        ("nobody", "GET", "/vaults/v", None, 404),
        ("nobody", "GET", "/items/it", None, 404),
        ("nobody", "POST", "/items/it/backup", Some(json!({})), 404),
        ("owner", "GET", "/vaults/other", None, 404),
        (
            "owner",
            "POST",
            "/roles",
            Some(json!({"user": "nobody", "vault": "other", "role": "reader"})),
            404,
        ),
        // What each role may do.
        (
            "contrib",
            "PATCH",
            "/items/it",
            Some(json!({"retry_attempts": 1})),
            200,
        ),
        ("owner", "POST", "/roles", Some(role_body()), 201),
    ];
    let mut apis = std::collections::HashMap::new();
    for (user, method, path, body, expected) in cases {
        let api = apis
            .entry(user)
            .or_insert_with(|| server.login(user, password));
        let (s, v) = api.call(method, path, body);
        assert_eq!(s.as_u16(), expected, "{user} {method} {path}: {v}");
        if expected == 403 {
            assert_eq!(v["error"]["code"], "forbidden");
        }
    }
    // Lists show only what the caller may see.
    let reader = server.login("reader", password);
    let vaults = reader.get("/vaults");
    assert_eq!(vaults.as_array().unwrap().len(), 1);
    let nobody = server.login("nobody", password);
    assert_eq!(
        nobody.get("/vaults").as_array().unwrap().len(),
        1,
        "nobody was made a reader"
    );
    // An operator backs up; the job is visible to the reader.
    let operator = server.login("operator", password);
    let job = operator.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    let job = reader.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded");
    let (s, _) = reader.call(
        "POST",
        &format!("/jobs/{}/cancel", job["id"]),
        Some(json!({})),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[test]
fn failed_logins_are_rate_limited_and_raise_a_security_alert() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("coffer.toml"),
        "login_max_failures = 3\nlogin_alert_threshold = 3\n",
    )
    .unwrap();
    let server = Server::start(&data);
    let http = Client::new();
    let attempt = |name: &str, password: &str| {
        http.post(server.url("/auth/login"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .unwrap()
            .status()
    };
    let admin = server.admin();
    let password = "the victim's long password";
    admin.post(
        "/users",
        json!({"name": "victim", "password": password}),
        StatusCode::CREATED,
    );
    for _ in 0..3 {
        assert_eq!(attempt("victim", "wrong"), StatusCode::UNAUTHORIZED);
    }
    // Locked for the window, even with the right password.
    assert_eq!(attempt("victim", password), StatusCode::TOO_MANY_REQUESTS);
    // Other names are not locked; the threshold raised a security alert.
    assert_eq!(attempt("admin", ADMIN_PASSWORD), StatusCode::OK);
    let alerts = admin.get("/alerts");
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["cause"], "login_failures");
    assert_eq!(alerts[0]["category"], "security");
    assert_eq!(alerts[0]["severity"], "critical");
}

#[test]
fn the_command_line_manages_the_service_remotely() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("f"), 5000, 6);
    let root = server.base.trim_end_matches("/api/v1").to_string();
    let remote = |args: &[&str]| {
        Command::new(BIN)
            .args(["--server", &root])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COFFER_TOKEN", &api.token)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = remote(args);
        assert!(
            out.status.success(),
            "coffer --server {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let vault = dir.path().join("vault");
    let out = ok(&[
        "vault",
        "create",
        "rv",
        "--location",
        vault.to_str().unwrap(),
    ]);
    assert!(out.contains("shown once"), "{out}");
    ok(&[
        "policy",
        "create",
        "nightly",
        "--vault",
        "rv",
        "--schedule",
        "daily 01:30",
        "--daily",
        "14",
    ]);
    ok(&[
        "item",
        "add",
        "files",
        "--vault",
        "rv",
        "--path",
        source.to_str().unwrap(),
        "--policy",
        "nightly",
    ]);
    let out = ok(&["item", "show", "files"]);
    assert!(out.contains("policy nightly: daily at 01:30"), "{out}");
    let out = ok(&["backup-now", "files", "--wait"]);
    assert!(out.contains("Succeeded"), "{out}");
    let out = ok(&["job", "list", "--item", "files"]);
    assert!(out.contains("Succeeded"), "{out}");
    let out = ok(&["--json", "policy", "list", "--vault", "rv"]);
    let policies: Value = serde_json::from_str(&out).unwrap();
    let nightly = policies
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nightly")
        .unwrap();
    assert_eq!(nightly["items"][0], "files");
    // Shortening the retention raises a security alert, listed with its steps.
    ok(&[
        "policy",
        "set",
        "nightly",
        "--vault",
        "rv",
        "--schedule",
        "daily 01:30",
        "--daily",
        "7",
    ]);
    let out = ok(&["alert", "list"]);
    assert!(
        out.contains("retention was shortened") && out.contains("1. "),
        "{out}"
    );
    let id = {
        let jobs: Value =
            serde_json::from_str(&ok(&["--json", "job", "list", "--item", "files"])).unwrap();
        jobs[0]["id"].as_i64().unwrap().to_string()
    };
    let out = ok(&["job", "logs", &id]);
    assert!(out.contains("committed"), "{out}");
    let out = ok(&["job", "show", &id]);
    assert!(out.contains("Succeeded"), "{out}");
    let alerts: Value = serde_json::from_str(&ok(&["--json", "alert", "list"])).unwrap();
    // Moving the item from DefaultPolicy (30 days) to nightly (14) and
    // then shortening nightly raised one alert each.
    assert_eq!(alerts.as_array().unwrap().len(), 2, "{alerts}");
    for a in alerts.as_array().unwrap() {
        ok(&["alert", "resolve", &a["id"].to_string()]);
    }
    assert!(ok(&["alert", "list"]).trim().is_empty());
    assert!(ok(&["alert", "list", "--all"]).contains("resolved"));
    let out = ok(&["vault", "list"]);
    assert!(
        out.contains("rv") && out.contains(vault.to_str().unwrap()),
        "{out}"
    );
    let out = ok(&["vault", "rotate-key", "rv"]);
    assert!(out.contains("shown once"), "{out}");
    let out = ok(&["token", "create", "ci"]);
    assert!(out.contains("cft_"), "{out}");
    assert!(ok(&["token", "list"]).contains("ci"));
    ok(&["item", "remove", "files"]);
    assert!(!ok(&["item", "list"]).contains("files"));
    // Errors carry the service's message and field.
    let out = remote(&["item", "add", "bad", "--vault", "rv", "--path", "relative"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("field paths") && err.contains("absolute"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["--server", &root, "item", "list"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COFFER_TOKEN"));
}

#[test]
fn alerts_and_job_ends_are_sent_to_a_signed_webhook_and_by_starttls_mail() {
    use coffer_testservers::{HttpReceiver, SmtpServer};
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    // The receiver fails the first delivery: it must be retried.
    let hook = HttpReceiver::start(&[503]);
    let smtp = SmtpServer::start();
    let secret = "a webhook signing secret";
    api.post(
        "/notifications/targets",
        json!({"name": "hook", "destination": {"kind": "webhook", "url": hook.url("/coffer")},
               "secret": secret, "min_severity": "warning"}),
        StatusCode::CREATED,
    );
    api.post(
        "/notifications/targets",
        json!({"name": "mail", "destination": {"kind": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
               "security": "starttls", "ca_file": smtp.ca_file.to_str().unwrap(),
               "from": "coffer@example.org", "to": ["ops@example.org"]},
               "min_severity": "error", "events": ["alert_raised"]}),
        StatusCode::CREATED,
    );
    // Validation: a webhook without a secret is refused, naming the field.
    let (s, v) = api.call(
        "POST",
        "/notifications/targets",
        Some(json!({"name": "weak", "destination": {"kind": "webhook", "url": hook.url("/")}})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "secret");

    let source = dir.path().join("src");
    random_file(&source.join("f"), 1000, 7);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &dir.path().join("missing"), 0);
    let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Failed", "{job}");

    // The webhook gets the job failure and the alert (after one retry of the
    // first delivery: 30 s later is too long for a test, so the retry is
    // checked in the deliveries list instead).
    let started = Instant::now();
    let targets = api.get("/notifications/targets");
    let hook_id = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "hook")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        seen = hook.received();
        let events: Vec<String> = seen
            .iter()
            .filter_map(|r| r.header("x-coffer-event").map(str::to_string))
            .collect();
        if events.contains(&"alert_raised".to_string()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let deliveries = api.get(&format!("/notifications/targets/{hook_id}/deliveries"));
    assert!(
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["state"] == "pending"
                && d["attempts"] == 1
                && d["last_error"].as_str().unwrap_or("").contains("503")),
        "the refused delivery is kept for a retry: {deliveries}"
    );
    let alert = seen
        .iter()
        .find(|r| r.header("x-coffer-event") == Some("alert_raised"))
        .unwrap_or_else(|| panic!("no alert on the webhook: {seen:?}"));
    assert_eq!(alert.method, "POST");
    assert_eq!(alert.path, "/coffer");
    let body: Value = serde_json::from_slice(&alert.body).unwrap();
    assert_eq!(body["data"]["cause"], "source_unreadable");
    assert!(!body["data"]["remediation"].as_array().unwrap().is_empty());
    // The signature is HMAC-SHA256 of the body under the secret.
    let expected = coffer_server::notify::signature(secret, &alert.body);
    assert_eq!(alert.header("x-coffer-signature"), Some(expected.as_str()));
    assert!(expected.starts_with("sha256="));

    // The mail target wants error alerts only: the source_unreadable alert is
    // a warning, so the first mail comes from the security alert below.
    api.post("/vaults/v/key/rotate", json!({}), StatusCode::OK);
    let started = Instant::now();
    while smtp.messages().is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].contains("Subject: [coffer] critical alert: A vault key was rotated"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: ops@example.org"), "{}", mails[0]);
}

#[test]
fn fifty_api_clients_for_a_minute_see_no_errors() {
    // LOAD_SECS shortens the run for a quick look; the suite runs the full minute.
    let secs: u64 = std::env::var("COFFER_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("f"), 1000, 8);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &source, 0);
    let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    api.wait_job(job["id"].as_i64().unwrap());
    let paths = [
        "/items",
        "/jobs?limit=20",
        "/alerts",
        "/vaults",
        "/me",
        "/items/it",
        "/vaults/v",
    ];
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let base = server.base.clone();
            let token = api.token.clone();
            std::thread::spawn(move || {
                let http = Client::new();
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                let mut n = i;
                while Instant::now() < deadline {
                    let path = paths[n % paths.len()];
                    n += 1;
                    let t = Instant::now();
                    match http.get(format!("{base}{path}")).bearer_auth(&token).send() {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let _ = r.bytes();
                            latencies.push(t.elapsed());
                        }
                        Ok(r) => errors.push(format!("{path}: {}", r.status())),
                        Err(e) => errors.push(format!("{path}: {e}")),
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for h in handles {
        let (l, e) = h.join().unwrap();
        all.extend(l);
        errors.extend(e);
    }
    assert!(
        errors.is_empty(),
        "{} errors, for example {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    eprintln!(
        "load: 50 clients, {secs} s, {} requests ({:.0}/s), p50 {:?}, p99 {:?}, max {:?}",
        all.len(),
        all.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
        all[all.len() - 1]
    );
    assert!(all.len() > 50, "hardly any requests got through");
}

#[test]
fn the_service_serves_https_with_the_configured_certificate() {
    let tools = coffer_testservers::tools_dir().join("smtp");
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("coffer.toml"),
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            tools.join("server.pem").display(),
            tools.join("server.key").display()
        ),
    )
    .unwrap();
    let server = Server::start(&data);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tools.join("ca.pem")).unwrap()).unwrap();
    let https = Client::builder().add_root_certificate(ca).build().unwrap();
    let r = https.get(server.url("/health")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = https
        .post(server.url("/auth/login"))
        .json(&json!({"name": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    // Plain HTTP is not answered on the TLS port.
    let plain = Client::new()
        .get(server.url("/health").replace("https://", "http://"))
        .send();
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[test]
fn jobs_respect_the_per_vault_limit_and_queue_behind_each_other() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("coffer.toml"),
        "max_jobs = 4\nmax_jobs_per_vault = 1\n",
    )
    .unwrap();
    let server = Server::start(&data);
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    for i in 0..3u8 {
        let source = dir.path().join(format!("src{i}"));
        random_file(&source.join("f"), 60 << 20, 10 + i);
        api.create_item(&format!("it{i}"), "v", &source, 0);
    }
    for i in 0..3u8 {
        api.post(
            &format!("/items/it{i}/backup"),
            json!({}),
            StatusCode::ACCEPTED,
        );
    }
    assert_one_at_a_time(&api, "/jobs?vault=v");
    // Items can name their policy when they are added.
    api.call("PUT", "/vaults/v/policies/weekly", Some(json!({"schedule": "weekly sun 02:00", "retention": {"weekly": {"weeks": 4, "weekday": "sunday"}}})));
    let source = dir.path().join("src0");
    api.post(
        "/items",
        json!({"name": "with-policy", "vault": "v", "paths": [source.to_str().unwrap()], "policy": "weekly"}),
        StatusCode::CREATED,
    );
    let schedule = api.get("/items/with-policy/schedule");
    assert_eq!(schedule["policy"], "weekly", "{schedule}");
    assert!(schedule["next_run"].as_i64().unwrap() > 0);
    let (s, v) = api.call(
        "POST",
        "/items",
        Some(json!({"name": "bad-policy", "vault": "v", "paths": ["/var/tmp"], "policy": "nope"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "policy");
    let (s, _) = api.call("GET", "/items/bad-policy", None);
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn the_openapi_document_matches_what_the_service_answers() {
    let schemathesis = coffer_testservers::tools_dir().join("venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "schemathesis is missing: run scripts/install-test-servers.sh"
    );
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("f"), 1000, 9);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &source, 0);
    let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    api.wait_job(job["id"].as_i64().unwrap());
    // Every check, on every read-only operation: generated requests that
    // change things would create vaults at random paths and back up
    // random directories of this machine.
    let out = Command::new(&schemathesis)
        .current_dir(dir.path())
        .args(["run", &server.url("/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {}", api.token)])
        .args([
            "--include-method",
            "GET",
            "--checks",
            "all",
            "--max-examples",
            "20",
        ])
        .args(["--seed", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the API and its document disagree:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("passed"), "{text}");
}

#[test]
fn a_running_restore_and_check_can_be_cancelled() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("big"), 300 << 20, 11);
    // Restore writes in batches of at most 4,096 entries and stops between
    // them: enough small files for three batches.
    let small = source.join("small");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..9000 {
        std::fs::write(small.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("big", "v", &source, 0);
    let job = api.post("/items/big/backup", json!({}), StatusCode::ACCEPTED);
    assert_eq!(
        api.wait_job(job["id"].as_i64().unwrap())["state"],
        "Succeeded"
    );
    let running = |id: i64| {
        let started = Instant::now();
        loop {
            let j = api.get(&format!("/jobs/{id}"));
            if j["state"] == "Running" {
                return;
            }
            assert_eq!(j["state"], "Queued", "{j}");
            assert!(started.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let target = dir.path().join("restored");
    let job = api.post(
        "/vaults/v/restore",
        json!({"point": "latest", "target": target.to_str().unwrap()}),
        StatusCode::ACCEPTED,
    );
    let id = job["id"].as_i64().unwrap();
    running(id);
    api.post(
        &format!("/jobs/{id}/cancel"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(id);
    assert_eq!(job["state"], "Cancelled", "{job}");
    let restored = std::fs::read_dir(common::under(&target, &small)).map_or(0, |d| d.count());
    assert!(restored < 9000, "the restore went on to the end");

    let job = api.post(
        "/vaults/v/check",
        json!({"read_data_percent": 100}),
        StatusCode::ACCEPTED,
    );
    let id = job["id"].as_i64().unwrap();
    running(id);
    api.post(
        &format!("/jobs/{id}/cancel"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(id);
    assert_eq!(job["state"], "Cancelled", "{job}");
    assert!(job["error"].is_null() && job["cause"].is_null(), "{job}");
    // Cancelled jobs raise no alert.
    assert!(api.get("/alerts").as_array().unwrap().is_empty());
}

#[test]
fn deleting_points_and_changing_immutability_raise_security_alerts() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let source = dir.path().join("src");
    random_file(&source.join("f"), 2000, 12);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &source, 0);
    for _ in 0..2 {
        let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
        assert_eq!(
            api.wait_job(job["id"].as_i64().unwrap())["state"],
            "Succeeded"
        );
    }
    let points = api.get("/vaults/v/points");
    let oldest = points.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = api.post(
        "/vaults/v/points/delete",
        json!({"points": [oldest]}),
        StatusCode::OK,
    );
    assert_eq!(deleted["deleted"], 1);
    let v = api.call(
        "PUT",
        "/vaults/v/immutability",
        Some(json!({"immutability": "enabled"})),
    );
    assert_eq!(v.0, StatusCode::OK, "{}", v.1);
    // Under immutability, deleting the unexpired point is refused.
    let newest = points[0]["id"].as_str().unwrap().to_string();
    let (s, v) = api.call(
        "POST",
        "/vaults/v/points/delete",
        Some(json!({"points": [newest]})),
    );
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let alerts = api.get("/alerts");
    let causes: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["cause"].as_str().unwrap())
        .collect();
    assert!(causes.contains(&"points_deleted"), "{alerts}");
    assert!(causes.contains(&"immutability_changed"), "{alerts}");
    assert!(alerts
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["category"] == "security"));
}

#[test]
fn the_first_start_prints_a_one_time_administrator_password() {
    let dir = scratch();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut password = None;
    let mut base = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let t = line.trim();
        if t.starts_with("cfp_") {
            password = Some(t.to_string());
        }
        if let Some(url) = t.strip_prefix("listening on ") {
            base = Some(format!("{url}/api/v1"));
            break;
        }
    }
    let (password, base) = (
        password.expect("a one-time password"),
        base.expect("an address"),
    );
    let r = Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({"name": "admin", "password": password}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
    // Not shown again, and not written anywhere in the data directory.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn the_overall_job_limit_holds_across_vaults() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("coffer.toml"),
        "max_jobs = 1\nmax_jobs_per_vault = 2\n",
    )
    .unwrap();
    let server = Server::start(&data);
    let api = server.admin();
    for i in 0..2u8 {
        let source = dir.path().join(format!("src{i}"));
        random_file(&source.join("f"), 60 << 20, 20 + i);
        api.create_vault(&format!("v{i}"), &dir.path().join(format!("vault{i}")));
        api.create_item(&format!("it{i}"), &format!("v{i}"), &source, 0);
    }
    for i in 0..2u8 {
        api.post(
            &format!("/items/it{i}/backup"),
            json!({}),
            StatusCode::ACCEPTED,
        );
    }
    assert_one_at_a_time(&api, "/jobs");
}

/// Polls the jobs listed at `path` until all have succeeded, asserting that
/// no two ran at once and that at least one had to wait for another.
fn assert_one_at_a_time(api: &Api, path: &str) {
    let started = Instant::now();
    let mut saw_queue = false;
    loop {
        let jobs = api.get(path);
        let states: Vec<&str> = jobs
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["state"].as_str().unwrap())
            .collect();
        let running = states.iter().filter(|s| **s == "Running").count();
        assert!(running <= 1, "{states:?}");
        saw_queue |= running == 1 && states.contains(&"Queued");
        if states.iter().all(|s| *s == "Succeeded") {
            break;
        }
        assert!(!states.contains(&"Failed"), "{jobs}");
        assert!(started.elapsed() < Duration::from_secs(120), "{jobs}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_queue, "no job ever had to wait for another");
}

/// Every route the OpenAPI document describes is served by the router, for
/// every method it names: called with placeholder names and an empty body,
/// each answers from its handler (an error about the placeholders at
/// most), never with the router's own "no such endpoint" or 405.
#[test]
fn every_described_route_is_served() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let doc = api.get("/openapi.json");
    let mut calls: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            calls.push((method.to_uppercase(), path.clone()));
        }
    }
    // What the router says when nothing serves a call, so the check below
    // can tell it from a handler's own answer.
    let (status, fallback) = api.call("GET", "/no/such/route", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        fallback.to_string().contains("no such endpoint"),
        "{fallback}"
    );
    let (status, _) = api.call("DELETE", "/health", None);
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Logging out ends the session the other calls use: last.
    calls.sort_by_key(|(_, p)| p.contains("logout"));
    assert!(calls.len() > 50, "{calls:?}");
    // Numbers where an id is asked for, a name that exists nowhere else.
    let concrete = |path: &str| -> String {
        path.split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(p) if p.trim_end_matches('}').ends_with("id") => "999999",
                Some(_) => "no-such-thing",
                None => segment,
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    for (method, path) in &calls {
        let concrete = concrete(path);
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let (status, answer) = api.call(method, &concrete, body);
        let text = answer.to_string();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && !text.contains("no such endpoint"),
            "{method} {path} is described but not served: {status} {text}"
        );
    }
}

//! The findings of the security review replayed against the real `coffer
//! serve`, as someone with a role on one vault (or none) would try them:
//! each is refused, with the status and the words asserted.

mod common;
mod service_harness;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_harness::{scratch, session_cookie, Api, Server, ADMIN_PASSWORD};

const PASSWORD: &str = "a password of some length";

/// Adds a user with `role` on `vault` and logs them in.
fn user(server: &Server, admin: &Api, name: &str, vault: &str, role: &str) -> Api {
    admin.post(
        "/users",
        json!({"name": name, "password": PASSWORD}),
        StatusCode::CREATED,
    );
    admin.post(
        "/roles",
        json!({"user": name, "vault": vault, "role": role}),
        StatusCode::CREATED,
    );
    server.login(name, PASSWORD)
}

/// A service in `dir/data` with vault `v` and a directory item `it` of one
/// file of `size` bytes, and the administrator's client.
fn vault_with_an_item(dir: &std::path::Path, size: usize) -> (Server, Api, std::path::PathBuf) {
    let server = Server::start(&dir.join("data"));
    let admin = server.admin();
    admin.create_vault("v", &dir.join("vault"));
    let src = dir.join("src");
    common::random_file(&src.join("f"), size, 1);
    admin.create_item("it", "v", &src, 0);
    (server, admin, src)
}

fn refused(api: &Api, method: &str, path: &str, body: Value, status: StatusCode, words: &str) {
    let (s, v) = api.call(method, path, Some(body));
    assert_eq!(s, status, "{method} {path}: {v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{method} {path}: {v}");
}

#[test]
fn no_role_but_administrator_reaches_the_servers_programs_or_paths() {
    let dir = scratch();
    let data = dir.path().join("data");
    let (server, admin, _) = vault_with_an_item(dir.path(), 100);
    let owner = user(&server, &admin, "owner", "v", "owner");
    let contrib = user(&server, &admin, "contrib", "v", "contributor");
    let only_admin = "only an administrator";

    for api in [&owner, &contrib] {
        refused(
            api,
            "POST",
            "/items",
            json!({"name": "sh", "vault": "v", "kind": "command",
                   "command": {"backup": "id; cat /etc/shadow"}}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
        refused(
            api,
            "POST",
            "/items",
            json!({"name": "pg", "vault": "v", "kind": "postgresql",
                   "postgresql": {"connection": "host=/tmp", "database": "x", "bin_dir": "/tmp/evil"}}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
        refused(
            api,
            "POST",
            "/items",
            json!({"name": "secrets", "vault": "v", "paths": [data.to_str().unwrap()]}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
        // Patching a script into an administrator's item, or its paths.
        refused(
            api,
            "PATCH",
            "/items/it",
            json!({"pre": {"command": "touch /tmp/pwned"}}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
        refused(
            api,
            "PATCH",
            "/items/it",
            json!({"paths": ["/"]}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
        refused(
            api,
            "POST",
            "/vaults",
            json!({"name": "x", "location": "/etc/coffer-x"}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
        refused(
            api,
            "POST",
            "/locations/test",
            json!({"location": "/etc"}),
            StatusCode::FORBIDDEN,
            only_admin,
        );
    }
    // What a contributor still decides: excludes, retries, the enabled flag.
    let (s, v) = contrib.call(
        "PATCH",
        "/items/it",
        Some(json!({"excludes": ["*.tmp"], "enabled": false})),
    );
    assert_eq!(s, StatusCode::OK, "{v}");

    // The service's files are its own.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for f in ["state.sqlite", "state.sqlite-wal", "service.secret"] {
        let p = data.join(f);
        if p.exists() {
            assert_eq!(mode(&p) & 0o077, 0, "{f}");
        }
    }
}

#[test]
fn an_items_program_never_sees_the_services_secrets() {
    let dir = scratch();
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=";
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[
            ("COFFER_SERVICE_SECRET", secret),
            ("AWS_SECRET_ACCESS_KEY", "leak-me"),
        ],
    );
    let admin = server.admin();
    admin.create_vault("v", &dir.path().join("vault"));
    admin.post(
        "/items",
        json!({"name": "env", "vault": "v", "kind": "command",
               "command": {"backup": "env", "file_name": "env.txt"}}),
        StatusCode::CREATED,
    );
    let job = admin.post("/items/env/backup", json!({}), StatusCode::ACCEPTED);
    let job = admin.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    let point = admin.get("/vaults/v/points")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin
        .http
        .get(server.url(&format!("/vaults/v/points/{point}/file?path=/env.txt")))
        .bearer_auth(&admin.token)
        .send()
        .unwrap();
    let env = r.text().unwrap();
    assert!(env.contains("PATH="), "{env}");
    for leak in [
        secret,
        ADMIN_PASSWORD,
        "leak-me",
        "COFFER_SERVICE",
        "COFFER_ADMIN",
        "AWS_",
    ] {
        assert!(!env.contains(leak), "{leak} reached the child: {env}");
    }
}

#[test]
fn an_operator_restores_only_under_the_restore_roots_or_over_its_items_paths() {
    let dir = scratch();
    let data = dir.path().join("data");
    let (server, admin, src) = vault_with_an_item(dir.path(), 1000);
    let job = admin.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    assert_eq!(
        admin.wait_job(job["id"].as_i64().unwrap())["state"],
        "Succeeded"
    );
    let op = user(&server, &admin, "op", "v", "backup_operator");
    let outside = dir.path().join("outside");
    let restore = |target: &str, includes: Vec<String>| {
        op.call(
            "POST",
            "/vaults/v/restore",
            Some(json!({"point": "latest", "target": target, "includes": includes, "overwrite": true})),
        )
    };
    let (s, v) = restore(outside.to_str().unwrap(), vec![]);
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restore roots"),
        "{v}"
    );
    let (s, v) = restore("/", vec!["/etc".into()]);
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = restore(&format!("{}/restores/../../x", data.display()), vec![]);
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // A symlink planted in the restore root does not carry it outside.
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("restores/escape")).unwrap();
    let (s, v) = restore(data.join("restores/escape/x").to_str().unwrap(), vec![]);
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // Under the root it works.
    let (s, job) = restore(data.join("restores/r1").to_str().unwrap(), vec![]);
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        op.wait_job(job["id"].as_i64().unwrap())["state"],
        "Succeeded"
    );
    let back = data
        .join("restores/r1")
        .join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(back.join("f")).unwrap(),
        std::fs::read(src.join("f")).unwrap()
    );
    // Over the original place: the item's own paths, and only them.
    std::fs::write(src.join("f"), b"changed").unwrap();
    let (s, job) = restore("/", vec![]);
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        op.wait_job(job["id"].as_i64().unwrap())["state"],
        "Succeeded"
    );
    assert_eq!(std::fs::read(src.join("f")).unwrap().len(), 1000);
}

#[test]
fn a_restore_never_runs_another_vaults_item_on_this_vaults_point() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let admin = server.admin();
    let key_a = "the key of vault a, long enough";
    let loc_a = dir.path().join("vault-a");
    admin.post(
        "/vaults",
        json!({"name": "a", "location": loc_a.to_str().unwrap(), "key": key_a}),
        StatusCode::CREATED,
    );
    admin.create_vault("b", &dir.path().join("vault-b"));
    let marker = dir.path().join("b-restore-ran");
    admin.post(
        "/items",
        json!({"name": "x", "vault": "b", "kind": "command",
               "command": {"backup": "echo b", "restore": format!("cat > {}", marker.display())}}),
        StatusCode::CREATED,
    );
    // Someone with vault a's key writes a point that claims to be item x.
    let storage = coffer_engine::Storage::open(loc_a.to_str().unwrap()).unwrap();
    let key = coffer_engine::VaultKey::from_text(key_a).unwrap();
    let vault = coffer_engine::Vault::open(storage, &key, None).unwrap();
    let mut c = coffer_engine::crafted::Crafted::new(&vault);
    let stream = c.file(b"output", b"data of vault a");
    c.commit("x", &[b"/output"], &["coffer:kind=command"], vec![stream])
        .unwrap();
    let op = user(&server, &admin, "op", "a", "backup_operator");
    let job = op.post(
        "/vaults/a/restore",
        json!({"point": "latest", "target": ""}),
        StatusCode::ACCEPTED,
    );
    let job = op.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("not configured in vault a"),
        "{job}"
    );
    assert!(
        !marker.exists(),
        "vault b's restore command ran on vault a's data"
    );
}

#[test]
fn logins_and_sessions_resist_guessing_forgery_and_leftovers() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("coffer.toml"), "login_max_failures = 3\n").unwrap();
    let server = Server::start_with_env(&data, &[("COFFER_METRICS_TOKEN", "scrape-me-please")]);
    let admin = server.admin();
    let origin = server.origin();
    let from = |ip: [u8; 4]| {
        Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let login = |http: &Client, name: &str, password: &str| {
        http.post(server.url("/auth/login"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .unwrap()
    };

    // An unknown name costs as much as a known one (median of 7 each).
    let attacker = from([127, 0, 0, 2]);
    // Each try from its own address, so that no lockout answers early.
    let median = |name: &str, net: u8| {
        let mut t: Vec<Duration> = (0..7)
            .map(|i| {
                let http = from([127, 0, net, 10 + i]);
                let start = Instant::now();
                let _ = login(&http, name, "wrong guess");
                start.elapsed()
            })
            .collect();
        t.sort();
        t[3]
    };
    admin.post(
        "/users",
        json!({"name": "known", "password": PASSWORD}),
        StatusCode::CREATED,
    );
    let known = median("known", 1);
    let unknown = median("no-such-user", 2);
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    eprintln!("login time: known name {known:?}, unknown name {unknown:?} (ratio {ratio:.2})");
    assert!((0.5..2.0).contains(&ratio), "{known:?} vs {unknown:?}");

    // An attacker elsewhere cannot lock the administrator out.
    for _ in 0..3 {
        assert_eq!(
            login(&attacker, "admin", "guess").status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = login(&attacker, "admin", ADMIN_PASSWORD);
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let ok = login(&from([127, 0, 0, 1]), "admin", ADMIN_PASSWORD);
    assert_eq!(ok.status(), StatusCode::OK);

    // The session is in the cookie only.
    let body: Value = {
        let r = login(&Client::new(), "known", PASSWORD);
        let cookie = session_cookie(&r);
        let body: Value = r.json().unwrap();
        assert!(!body
            .to_string()
            .contains(cookie.trim_start_matches("coffer_session=")));
        // Another origin (another port of this host is same-site) is refused;
        // so is a cookie request without an origin; this origin passes.
        let post = |origin: Option<&str>| {
            let mut r = Client::new()
                .post(server.url("/tokens"))
                .header("cookie", &cookie)
                .json(&json!({"name": "t"}));
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            r.send().unwrap().status()
        };
        assert_eq!(post(Some("http://127.0.0.1:1")), StatusCode::FORBIDDEN);
        assert_eq!(post(None), StatusCode::FORBIDDEN);
        assert_eq!(post(Some(&origin)), StatusCode::CREATED);
        body
    };
    assert_eq!(body["user"]["name"], "known");

    // Changing one's own password needs the current one, and ends the
    // tokens made with the old.
    let known_api = server.login("known", PASSWORD);
    let (s, v) = known_api.call(
        "PUT",
        "/users/known/password",
        Some(json!({"password": "a brand new password"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "current_password");
    let (s, v) = known_api.call(
        "PUT",
        "/users/known/password",
        Some(json!({"password": "a brand new password", "current_password": PASSWORD})),
    );
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = known_api.call("GET", "/me", None);
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Deleting a user ends their tokens too.
    let gone = {
        admin.post(
            "/users",
            json!({"name": "gone", "password": PASSWORD}),
            StatusCode::CREATED,
        );
        server.login("gone", PASSWORD)
    };
    let (s, _) = admin.call("DELETE", "/users/gone", None);
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(gone.call("GET", "/me", None).0, StatusCode::UNAUTHORIZED);

    // Roles end with their vault: a new vault of the same name starts bare.
    admin.create_vault("v", &dir.path().join("vault1"));
    let reader = user(&server, &admin, "reader", "v", "reader");
    assert_eq!(reader.get("/vaults").as_array().unwrap().len(), 1);
    assert_eq!(
        admin.call("DELETE", "/vaults/v", None).0,
        StatusCode::NO_CONTENT
    );
    admin.create_vault("v", &dir.path().join("vault2"));
    assert!(reader.get("/vaults").as_array().unwrap().is_empty());

    // The metrics: administrators and the metrics token only.
    let metrics = |token: &str| {
        Client::new()
            .get(format!("{origin}/metrics"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(metrics(&reader.token), StatusCode::FORBIDDEN);
    assert_eq!(metrics("scrape-me-please"), StatusCode::OK);
    assert_eq!(metrics(&admin.token), StatusCode::OK);
    assert_eq!(metrics("wrong"), StatusCode::UNAUTHORIZED);
}

fn vault_job(api: &Api, vault: &str, job: &str) -> Value {
    let queued = api.post(
        &format!("/vaults/{vault}/{job}"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    api.wait_job(queued["id"].as_i64().unwrap())
}

#[test]
fn records_and_points_deleted_at_the_storage_are_noticed_and_stop_prune() {
    let dir = scratch();
    let (server, admin, _) = vault_with_an_item(dir.path(), 1000);
    let owner = user(&server, &admin, "owner", "v", "owner");
    let backup = |api: &Api| {
        let job = api.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
        let job = api.wait_job(job["id"].as_i64().unwrap());
        assert_eq!(job["state"], "Succeeded", "{job}");
        job["result"]["point"].as_str().unwrap().to_string()
    };
    let first = backup(&admin);
    let second = backup(&admin);
    let journal = dir.path().join("vault/journal");
    let records = || {
        let mut names: Vec<_> = std::fs::read_dir(&journal)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names
    };
    admin.post(
        "/vaults/v/points/delete",
        json!({"points": [first]}),
        StatusCode::OK,
    );
    let deleted = records().len();
    admin.post(
        "/vaults/v/points/undelete",
        json!({"points": [first]}),
        StatusCode::OK,
    );
    assert_eq!(vault_job(&admin, "v", "check")["state"], "Succeeded");

    // Whoever controls the storage rolls the journal back to the soft
    // delete (the undelete and the hold vanish) and deletes a point.
    for rolled_back in &records()[deleted..] {
        std::fs::remove_file(rolled_back).unwrap();
    }
    std::fs::remove_file(dir.path().join("vault/points").join(&second)).unwrap();

    let prune = vault_job(&admin, "v", "prune");
    assert_eq!(prune["state"], "Failed", "{prune}");
    let error = prune["error"].as_str().unwrap();
    assert!(
        error.contains("prune refused") && error.contains("gone from the storage location"),
        "{prune}"
    );
    assert!(dir.path().join("vault/points").join(&first).exists());
    let check = vault_job(&admin, "v", "check");
    assert_eq!(check["state"], "Failed", "{check}");
    assert_eq!(check["cause"], "data_corruption", "{check}");
    assert_eq!(check["result"]["problems"], 3, "{check}");
    let alerts = admin.get("/alerts").to_string();
    assert!(
        alerts.contains("gone from the storage location"),
        "{alerts}"
    );
    // Reported again until an administrator accepts the location.
    assert_eq!(vault_job(&admin, "v", "check")["state"], "Failed");
    refused(
        &owner,
        "POST",
        "/vaults/v/accept-location",
        json!({}),
        StatusCode::FORBIDDEN,
        "administrator",
    );
    let (status, body) = admin.call("POST", "/vaults/v/accept-location", Some(json!({})));
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(vault_job(&admin, "v", "check")["state"], "Succeeded");
    assert_eq!(vault_job(&admin, "v", "prune")["state"], "Succeeded");
}

#[test]
fn a_replica_named_by_the_journal_is_opened_only_once_an_administrator_allows_it() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let admin = server.admin();
    let vault = dir.path().join("vault");
    let key = admin.create_vault("v", &vault)["generated_key"]
        .as_str()
        .unwrap()
        .to_string();
    let src = dir.path().join("src");
    common::random_file(&src.join("f"), 1000, 1);
    admin.create_item("it", "v", &src, 0);
    let owner = user(&server, &admin, "owner", "v", "owner");

    // A key holder writes a journal record naming a synchronous replica
    // on a path of their choosing.
    let elsewhere = dir.path().join("elsewhere");
    let out = std::process::Command::new(common::BIN)
        .args(["vault", "replica", "add", "--mode", "sync", "--vault"])
        .arg(&vault)
        .arg(&elsewhere)
        .env("COFFER_KEY", &key)
        .env("COFFER_CACHE_DIR", dir.path().join("cli-cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let points_there = || {
        std::fs::read_dir(elsewhere.join("points"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = points_there();

    // The service backs up without writing there, and says why.
    let job = admin.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    let job = admin.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    let logs = admin.get(&format!("/jobs/{}/logs", job["id"])).to_string();
    assert!(logs.contains("has not been given"), "{logs}");
    assert_eq!(points_there(), before);
    let job = admin.post("/vaults/v/replicate", json!({}), StatusCode::ACCEPTED);
    let job = admin.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("has not been given"),
        "{job}"
    );

    // Only an administrator allows a location.
    let allow = json!({"location": elsewhere.to_str().unwrap()});
    refused(
        &owner,
        "PUT",
        "/vaults/v/locations",
        allow.clone(),
        StatusCode::FORBIDDEN,
        "administrator",
    );
    let (status, body) = admin.call("PUT", "/vaults/v/locations", Some(allow));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        owner.get("/vaults/v/locations")[0]["location"],
        elsewhere.to_str().unwrap()
    );
    let job = admin.post("/items/it/backup", json!({}), StatusCode::ACCEPTED);
    assert_eq!(
        admin.wait_job(job["id"].as_i64().unwrap())["state"],
        "Succeeded"
    );
    assert_eq!(points_there(), before + 1);
    let job = admin.post("/vaults/v/replicate", json!({}), StatusCode::ACCEPTED);
    let job = admin.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
}

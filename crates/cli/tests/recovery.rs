//! The disaster-recovery drill: a small deployment (a configuration tree, a
//! SQLite database under continuous writes, a real PostgreSQL database, a
//! command's output) is backed up as one infrastructure set through the
//! real service; then everything is wiped (data, the service's state and
//! cache, the database server) and brought back with `coffer recover` from
//! the location and the key alone, and every item is compared with the
//! original.

mod common;
mod service_harness;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use coffer_testservers::Postgres;
use common::{random_file, shared_dir, BIN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_harness::{scratch, Server, ADMIN_PASSWORD};

/// Rows of the database, after checking they agree with the counter.
fn sqlite_rows(db: &Path) -> i64 {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) || ' ' || (SELECT n FROM counter) FROM rows; PRAGMA integrity_check;")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let counts: Vec<i64> = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(lines.next(), Some("ok"), "{text}");
    assert_eq!(
        counts[0], counts[1],
        "rows and counter disagree: not one transaction's view"
    );
    counts[0]
}

/// SHA-256 of the first `rows` rows (ids and payloads) of a database.
fn sqlite_digest(db: &Path, rows: i64) -> String {
    let script = r#"
import hashlib, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
h = hashlib.sha256()
for i, p in c.execute("SELECT id, payload FROM rows WHERE id <= ? ORDER BY id", (int(sys.argv[2]),)):
    h.update(i.to_bytes(8, "little")); h.update(p)
print(h.hexdigest())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .arg(rows.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn recover(key: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("recover")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("COFFER_KEY", key)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

const DIGEST: &str =
    "SELECT count(*) || ':' || sum(qty) || ':' || md5(string_agg(sku, ',' ORDER BY id)) FROM stock";

#[test]
fn a_whole_deployment_comes_back_from_the_location_and_the_key_alone() {
    let dir = scratch();
    let root = dir.path();
    let deploy = root.join("deploy");

    // The deployment.
    let config = deploy.join("etc/app");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    std::fs::write(config.join("app.toml"), "listen = \"127.0.0.1:9000\"\n").unwrap();
    std::fs::write(config.join("conf.d/limits.toml"), "max = 10\n").unwrap();
    random_file(&config.join("certs/ca.der"), 70_000, 3);
    std::os::unix::fs::symlink("app.toml", config.join("current.toml")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(config.join("certs"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        config.join("app.toml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let sqlite = deploy.join("var/app.db");
    std::fs::create_dir_all(sqlite.parent().unwrap()).unwrap();
    let mut writer = coffer_testservers::start_sqlite_writer(&sqlite);
    let snapshot = deploy.join("var/etcd.snap");
    random_file(&snapshot, 1_500_000, 9);
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE inventory");
    pg.sql(
        "inventory",
        "CREATE TABLE stock (id serial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL);
         INSERT INTO stock (sku, qty) SELECT 'sku-' || g, g % 97 FROM generate_series(1, 20000) g;",
    );
    let pg_digest = pg.sql("inventory", DIGEST);

    // The service protects it as one set.
    let data = root.join("service");
    let vault_dir = root.join("share/vault");
    let server = Server::start(&data);
    let api = server.admin();
    let key = api.create_vault("main", &vault_dir)["generated_key"]
        .as_str()
        .unwrap()
        .to_string();
    let items = [
        json!({"name": "app-config", "vault": "main", "paths": [config.to_str().unwrap()],
               "pre": {"command": "sync", "timeout_secs": 30}}),
        json!({"name": "app-db", "vault": "main", "kind": "sqlite", "paths": [sqlite.to_str().unwrap()]}),
        json!({"name": "inventory", "vault": "main", "kind": "postgresql",
               "postgresql": {"connection": pg.connection(), "database": "inventory",
                              "bin_dir": pg.bin_dir.to_str().unwrap()}}),
        json!({"name": "etcd", "vault": "main", "kind": "command",
               "command": {"backup": format!("cat {}", snapshot.display()),
                           "restore": format!("cat > {}", snapshot.display()),
                           "file_name": "etcd.snap", "application_consistent": true}}),
    ];
    for item in &items {
        api.post("/items", item.clone(), StatusCode::CREATED);
    }
    let set = api.post(
        "/sets",
        json!({"name": "infra", "vault": "main",
               "items": ["app-config", "app-db", "inventory", "etcd"]}),
        StatusCode::CREATED,
    );
    assert_eq!(set["schedule"], "every 12 h from 00:00");
    assert_eq!(set["retention_days"], 7);
    let policies = api.get("/vaults/main/policies").to_string();
    assert!(policies.contains("set.infra"), "{policies}");

    std::thread::sleep(Duration::from_millis(300));
    let rows_before = sqlite_rows(&sqlite);
    let job = api.post("/sets/infra/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    let rows_after = sqlite_rows(&sqlite);
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert_eq!(job["state"], "Succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["ready_for_cloud_recovery"], true, "{result}");
    let statuses = result["items"].as_array().unwrap();
    assert_eq!(statuses.len(), 4);
    for s in statuses {
        assert_eq!(s["status"], "Succeeded", "{s}");
        assert_eq!(s["consistency"], "application-consistent", "{s}");
    }
    let set_point = result["set_point"].as_str().unwrap().to_string();
    let listed = api.get("/vaults/main/set-points");
    assert_eq!(listed[0]["id"], set_point.as_str(), "{listed}");
    assert_eq!(listed[0]["ready_for_cloud_recovery"], true);
    // Every item's point carries the set point's id and time.
    let points = api.get("/vaults/main/points");
    let tagged: Vec<&Value> = points
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["tags"].to_string().contains(&set_point))
        .collect();
    assert_eq!(tagged.len(), 5, "{points}");
    assert!(tagged.iter().all(|p| p["time"] == tagged[0]["time"]));

    // The disaster: the service, its state and cache, the data and the
    // database server are gone. What is kept aside is only for comparing.
    drop(api);
    server.kill();
    std::fs::remove_dir_all(&data).unwrap();
    let kept = root.join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::rename(&deploy, kept.join("deploy")).unwrap();
    drop(pg);
    let fresh_pg = Postgres::start();

    // A fresh machine: the location and the key.
    let home = root.join("fresh-home");
    std::fs::create_dir_all(&home).unwrap();
    let location = vault_dir.to_str().unwrap();
    let listing = ok(&recover(&key, &home, &["--location", location]));
    assert!(listing.contains(&set_point), "{listing}");
    assert!(listing.contains("ready for cloud recovery"), "{listing}");
    for name in ["app-config", "app-db", "inventory", "etcd"] {
        assert!(listing.contains(name), "{listing}");
    }

    // A drill first: restored into a scratch area, checked, timed, removed.
    let drill_area = root.join("drills");
    std::fs::create_dir_all(&drill_area).unwrap();
    let drill = ok(&recover(
        &key,
        &home,
        &[
            "--location",
            location,
            "--point",
            &set_point[..8],
            "--verify",
            "--scratch",
            drill_area.to_str().unwrap(),
        ],
    ));
    eprintln!("{drill}");
    assert!(
        drill.contains("restored and checked in a scratch area in"),
        "{drill}"
    );
    assert!(drill.contains("integrity check ok"), "{drill}");
    assert!(drill.contains("pg_restore reads its"), "{drill}");
    assert_eq!(std::fs::read_dir(&drill_area).unwrap().count(), 0);

    // The recovery itself, into the fresh database server.
    let new_data = root.join("service-recovered");
    let recovered = ok(&recover(
        &key,
        &home,
        &[
            "--location",
            location,
            "--point",
            &set_point,
            "--data-dir",
            new_data.to_str().unwrap(),
            "--postgresql-connection",
            &fresh_pg.connection(),
        ],
    ));
    eprintln!("{recovered}");
    assert!(recovered.contains("recovered in"), "{recovered}");

    // Files byte- and metadata-exact.
    let cmp = Command::new("python3")
        .arg(shared_dir().join("torture_tree.py"))
        .arg("compare")
        .arg(kept.join("deploy/etc/app"))
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        cmp.status.success() && report.contains(" 0 differences"),
        "{report}"
    );
    // SQLite: one transaction's view, taken while the job ran, and row for
    // row what the database held at that moment (the writer only appends,
    // so the live database kept aside still holds those rows unchanged).
    let rows = sqlite_rows(&sqlite);
    assert!(
        rows >= rows_before && rows <= rows_after,
        "{rows_before} <= {rows} <= {rows_after}"
    );
    let live = kept.join("deploy/var/app.db");
    assert!(
        sqlite_rows(&live) >= rows_after,
        "the kept database is the live one"
    );
    assert_eq!(sqlite_digest(&sqlite, rows), sqlite_digest(&live, rows));
    // PostgreSQL: row-exact.
    assert_eq!(fresh_pg.sql("inventory", DIGEST), pg_digest);
    // The command's output, through its restore command.
    assert_eq!(
        std::fs::read(&snapshot).unwrap(),
        std::fs::read(kept.join("deploy/var/etcd.snap")).unwrap()
    );

    // The service starts with its previous configuration and history.
    let server = Server::start(&new_data);
    let api = server.login("admin", ADMIN_PASSWORD);
    let items = api.get("/items");
    assert_eq!(items.as_array().unwrap().len(), 4, "{items}");
    assert_eq!(api.get("/sets/infra")["items"].as_array().unwrap().len(), 4);
    let history = api.get("/vaults/main/points");
    assert_eq!(history.as_array().unwrap().len(), 5);
    // …and backs the set up again (the item's connection now points at the
    // fresh server).
    let mut inventory = api.get("/items/inventory");
    inventory["postgresql"]["connection"] = json!(fresh_pg.connection());
    let (status, body) = api.call(
        "PATCH",
        "/items/inventory",
        Some(json!({"postgresql": inventory["postgresql"]})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = api.post("/sets/infra/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    // A drill through the service measures the recovery time.
    let job = api.post("/sets/infra/drill", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    assert!(job["result"]["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_set_with_a_failing_item_ends_partly_succeeded_and_is_not_ready() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("service"));
    let api = server.admin();
    api.create_vault("main", &dir.path().join("vault"));
    let src = dir.path().join("src");
    random_file(&src.join("a"), 1000, 1);
    // Through the command line's remote mode, as an operator would.
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
    ok(&remote(&[
        "item",
        "add",
        "files",
        "--vault",
        "main",
        "--path",
        src.to_str().unwrap(),
        "--retries",
        "0",
    ]));
    ok(&remote(&[
        "item",
        "add",
        "broken",
        "--vault",
        "main",
        "--kind",
        "command",
        "--backup-command",
        "echo partial; echo 'no route to etcd' >&2; exit 7",
        "--retries",
        "0",
    ]));
    // Wrong settings are refused with the field named.
    let (status, body) = api.call(
        "POST",
        "/sets",
        Some(json!({"name": "s", "vault": "main", "items": ["files", "nope"]})),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "items", "{body}");
    let out = remote(&[
        "item",
        "add",
        "pg",
        "--vault",
        "main",
        "--kind",
        "postgresql",
        "--pg-connection",
        "host=db password=x",
        "--pg-database",
        "app",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password file"));
    let added = ok(&remote(&[
        "set",
        "add",
        "s",
        "--vault",
        "main",
        "--item",
        "files",
        "--item",
        "broken",
        "--retention-days",
        "3",
    ]));
    assert!(
        added.contains("every 12 h from 00:00, kept 3 days"),
        "{added}"
    );
    assert!(ok(&remote(&["set", "list"])).contains("files, broken"));

    let out = remote(&["set", "backup-now", "s", "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(3), "PartialSucceeded exits 3");
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "PartialSucceeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["ready_for_cloud_recovery"], false);
    let broken = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["item"] == "broken")
        .unwrap();
    assert_eq!(broken["status"], "Failed");
    assert!(
        broken["message"]
            .as_str()
            .unwrap()
            .contains("no route to etcd"),
        "{broken}"
    );
    // The failed item has its own alert with remediation.
    let alerts = api.get("/alerts?state=open");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["item"] == "broken"),
        "{alerts}"
    );
    let listed = ok(&remote(&["set", "points", "--vault", "main"]));
    assert!(
        listed.contains("NOT ready") && listed.contains("broken"),
        "{listed}"
    );
    // A drill of a point that is not ready fails on the missing item.
    let out = remote(&["set", "drill", "s", "--wait", "--json"]);
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("broken"), "{job}");
}

#[test]
fn one_item_goes_under_a_target_secrets_stay_out_and_a_newer_vault_is_refused() {
    let dir = scratch();
    let root = dir.path();
    let server = Server::start(&root.join("service"));
    let api = server.admin();
    let vault_dir = root.join("vault");
    let key = api.create_vault("main", &vault_dir)["generated_key"]
        .as_str()
        .unwrap()
        .to_string();
    let src = root.join("src");
    random_file(&src.join("a.bin"), 50_000, 4);
    std::fs::write(src.join("b.txt"), "b\n").unwrap();
    api.create_item("files", "main", &src, 0);
    api.post(
        "/items",
        json!({"name": "report", "vault": "main", "kind": "command",
               "command": {"backup": "printf 'report body'", "file_name": "report.txt"}}),
        StatusCode::CREATED,
    );
    let secret = "signing secret that must not be in backups";
    api.post(
        "/notifications/targets",
        json!({"name": "hook", "destination": {"kind": "webhook", "url": "http://127.0.0.1:9/x"},
               "secret": secret}),
        StatusCode::CREATED,
    );
    api.post(
        "/sets",
        json!({"name": "s", "vault": "main", "items": ["files", "report"]}),
        StatusCode::CREATED,
    );
    let job = api.post("/sets/s/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    let service_point = job["result"]["service_point"].as_str().unwrap().to_string();
    drop(api);
    drop(server);

    // The stored configuration holds neither the vault key nor a secret.
    let dumped = root.join("dumped");
    let out = Command::new(BIN)
        .args([
            "restore",
            "--vault",
            vault_dir.to_str().unwrap(),
            &service_point,
            "--target",
        ])
        .arg(&dumped)
        .env("COFFER_KEY", &key)
        .env("HOME", root)
        .output()
        .unwrap();
    ok(&out);
    let config = std::fs::read_to_string(dumped.join("service.json")).unwrap();
    assert!(config.contains("\"items\""), "{config}");
    assert!(!config.contains(&key) && !config.contains(secret));

    // Only one item, under a target, into a fresh data directory.
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let location = vault_dir.to_str().unwrap();
    let data = root.join("recovered");
    let target = root.join("t1");
    let text = ok(&recover(
        &key,
        &home,
        &[
            "--location",
            location,
            "--point",
            "latest",
            "--item",
            "files",
            "--target",
            target.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    ));
    assert!(text.contains("notification target hook is off"), "{text}");
    common::assert_same_tree(&src, &common::under(&target, &src));
    assert!(!target.join("report.txt").exists());
    // A second item into the same service: its configuration stays.
    let target2 = root.join("t2");
    let text = ok(&recover(
        &key,
        &home,
        &[
            "--location",
            location,
            "--point",
            "latest",
            "--item",
            "report",
            "--target",
            target2.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    ));
    assert!(text.contains("only the item was restored"), "{text}");
    assert_eq!(
        std::fs::read_to_string(target2.join("report.txt")).unwrap(),
        "report body"
    );
    // The whole set again into that service is refused.
    let out = recover(
        &key,
        &home,
        &[
            "--location",
            location,
            "--point",
            "latest",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration already"));
    // The recovered service has the target, switched off, without secret.
    let server = Server::start(&data);
    let api = server.login("admin", ADMIN_PASSWORD);
    let targets = api.get("/notifications/targets");
    assert_eq!(targets[0]["enabled"], false, "{targets}");
    assert_eq!(targets[0]["has_secret"], false);
    drop(api);
    drop(server);

    // A vault written by a newer format is refused with what to do.
    let header = vault_dir.join("vault");
    let mut bytes = std::fs::read(&header).unwrap();
    bytes[8] = 99;
    bytes[9] = 0;
    std::fs::write(&header, bytes).unwrap();
    let out = recover(&key, &home, &["--location", location]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("format version 99") && err.contains("newer coffer"),
        "{err}"
    );
}

/// Backs up a one-item set `set` of vault `vault` and returns the set's
/// configuration point.
fn backed_up_set(api: &service_harness::Api, set: &str, vault: &str, item: &str) -> String {
    api.post(
        "/sets",
        json!({"name": set, "vault": vault, "items": [item]}),
        StatusCode::CREATED,
    );
    let job = api.post(
        &format!("/sets/{set}/backup"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    job["result"]["service_point"].as_str().unwrap().to_string()
}

#[test]
fn a_set_point_holds_only_its_vault_with_hashes_sealed_and_vaults_come_back_one_by_one() {
    let dir = scratch();
    let root = dir.path();
    let server = Server::start(&root.join("service"));
    let api = server.admin();
    let mut keys = Vec::new();
    for v in ["a", "b"] {
        let key = api.create_vault(v, &root.join(format!("vault-{v}")))["generated_key"]
            .as_str()
            .unwrap()
            .to_string();
        keys.push(key);
        let src = root.join(format!("src-{v}"));
        random_file(&src.join("f.bin"), 30_000, 7);
        api.create_item(&format!("files-{v}"), v, &src, 0);
        let user = format!("owner-{v}");
        api.post(
            "/users",
            json!({"name": user, "password": "a long enough password"}),
            StatusCode::CREATED,
        );
        api.post(
            "/roles",
            json!({"user": user, "vault": v, "role": "owner"}),
            StatusCode::CREATED,
        );
    }
    // A role on every vault travels with each vault's set point.
    api.post(
        "/users",
        json!({"name": "auditor", "password": "a long enough password"}),
        StatusCode::CREATED,
    );
    api.post(
        "/roles",
        json!({"user": "auditor", "vault": "*", "role": "reader"}),
        StatusCode::CREATED,
    );
    let point_a = backed_up_set(&api, "set-a", "a", "files-a");
    backed_up_set(&api, "set-b", "b", "files-b");
    drop(api);
    server.kill();

    // What anyone who may read vault a's points reads: vault a alone, and
    // no password or token hash.
    let dumped = root.join("dumped");
    ok(&Command::new(BIN)
        .args(["restore", "--vault"])
        .arg(root.join("vault-a"))
        .arg(&point_a)
        .arg("--target")
        .arg(&dumped)
        .env("COFFER_KEY", &keys[0])
        .env("HOME", root)
        .output()
        .unwrap());
    let config = std::fs::read_to_string(dumped.join("service.json")).unwrap();
    let parsed: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(parsed["format"], 3);
    assert!(parsed["sealed_secrets"].as_str().unwrap().len() > 100);
    assert!(config.contains("owner-a") && config.contains("files-a"));
    for absent in ["$argon2", "owner-b", "files-b", "vault-b", "set-b"] {
        assert!(!config.contains(absent), "{absent} in {config}");
    }
    assert!(parsed["tokens"].as_array().unwrap().is_empty());

    // The disaster; then each vault's set point into the same service.
    std::fs::remove_dir_all(root.join("service")).unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let data = root.join("recovered");
    for (v, key) in ["a", "b"].iter().zip(&keys) {
        let location = root.join(format!("vault-{v}"));
        std::fs::remove_dir_all(root.join(format!("src-{v}"))).unwrap();
        let text = ok(&recover(
            key,
            &home,
            &[
                "--location",
                location.to_str().unwrap(),
                "--point",
                "latest",
                "--data-dir",
                data.to_str().unwrap(),
            ],
        ));
        assert!(text.contains("recovered in"), "{text}");
        if *v == "b" {
            assert!(
                text.contains("user admin exists in this service already"),
                "{text}"
            );
        }
        assert!(root.join(format!("src-{v}/f.bin")).exists());
    }
    // The same vault twice is refused with what to do.
    let out = recover(
        &keys[0],
        &home,
        &[
            "--location",
            root.join("vault-a").to_str().unwrap(),
            "--point",
            "latest",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this vault's configuration already") && err.contains("--item"),
        "{err}"
    );

    // The service has both vaults, with their keys, items, sets, users and
    // roles: the sealed hashes came back.
    let server = Server::start(&data);
    let admin = server.login("admin", ADMIN_PASSWORD);
    let auditor = server.login("auditor", "a long enough password");
    for v in ["a", "b"] {
        assert_eq!(
            auditor
                .get(&format!("/vaults/{v}/points"))
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let owner = server.login(&format!("owner-{v}"), "a long enough password");
        let points = owner.get(&format!("/vaults/{v}/points"));
        assert_eq!(points.as_array().unwrap().len(), 2, "{points}");
        assert_eq!(admin.get(&format!("/sets/set-{v}"))["vault"], v);
    }
    assert_eq!(admin.get("/items").as_array().unwrap().len(), 2);
}

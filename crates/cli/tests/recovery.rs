//! The disaster-recovery drill: a small deployment (a configuration tree, a
//! SQLite database under continuous writes, a real PostgreSQL database, a
//! command's output) is backed up as one infrastructure set through the
//! real service; then everything is wiped (data, the service's state and
//! cache, the database server) and brought back with `coffer recover` from
//! the location and the key alone, and every item is compared with the
//! original.

mod common;
mod service_harness;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use coffer_testservers::Postgres;
use common::{random_file, shared_dir, BIN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_harness::{scratch, Server, ADMIN_PASSWORD};

/// Another process writing as fast as it can: each transaction adds a row
/// and raises a counter, so a copy that is not one transaction's view has a
/// counter that disagrees with its rows.
fn start_writer(db: &Path) -> Child {
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, payload BLOB)")
c.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER)")
if c.execute("SELECT count(*) FROM counter").fetchone()[0] == 0:
    c.execute("INSERT INTO counter VALUES (0)")
print("ready", flush=True)
while True:
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO rows (payload) VALUES (randomblob(500))")
    c.execute("UPDATE counter SET n = n + 1")
    c.execute("COMMIT")
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

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
    let mut writer = start_writer(&sqlite);
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
    // SQLite: one transaction's view, taken while the job ran.
    let rows = sqlite_rows(&sqlite);
    assert!(
        rows >= rows_before && rows <= rows_after,
        "{rows_before} <= {rows} <= {rows_after}"
    );
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
    api.create_item("files", "main", &src, 0);
    api.post(
        "/items",
        json!({"name": "broken", "vault": "main", "kind": "command",
               "command": {"backup": "echo partial; echo 'no route to etcd' >&2; exit 7"}}),
        StatusCode::CREATED,
    );
    // Wrong settings are refused with the field named.
    let (status, body) = api.call(
        "POST",
        "/sets",
        Some(json!({"name": "s", "vault": "main", "items": ["files", "nope"]})),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "items", "{body}");
    api.post(
        "/sets",
        json!({"name": "s", "vault": "main", "items": ["files", "broken"], "retention_days": 3}),
        StatusCode::CREATED,
    );
    let job = api.post("/sets/s/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
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
    let listed = api.get("/vaults/main/set-points");
    assert_eq!(listed[0]["ready_for_cloud_recovery"], false);
    assert!(listed[0]["not_ready_because"]
        .as_str()
        .unwrap()
        .contains("broken"));
}

//! Database and command items on agents: backed up on their host and put
//! back on their host through their kind (the service never writes an
//! agent's database or runs its command on its own machine), and a host
//! that does not allow the service's programs refuses a restore command.

mod agent_harness;
mod common;
mod service_harness;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};

use agent_harness::*;
use service_harness::*;

fn sql(db: &Path, statement: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn register_host(
    server: &Server,
    api: &Api,
    dir: &Path,
    name: &str,
    commands: bool,
) -> AgentProcess {
    let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
    let state = dir.join(format!("state-{name}"));
    let url = service_url(server);
    let mut args = vec![
        "agent",
        "register",
        "--server",
        &url,
        "--token",
        token["text"].as_str().unwrap(),
        "--name",
        name,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    if commands {
        args.push("--allow-commands");
    }
    ok(coffer(&args, &[]));
    AgentProcess::start(&state)
}

fn restore_job(api: &Api, body: Value) -> Value {
    let job = api.post("/vaults/v/restore", body, StatusCode::ACCEPTED);
    api.wait_job(job["id"].as_i64().unwrap())
}

fn log_of(api: &Api, job: &Value) -> String {
    api.get(&format!("/jobs/{}/logs", job["id"])).to_string()
}

#[test]
fn database_and_command_points_go_back_through_their_kind_on_their_own_host() {
    let dir = scratch();
    let server = tls_service(dir.path());
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let _db_host = register_host(&server, &api, dir.path(), "db-host", true);
    let _plain = register_host(&server, &api, dir.path(), "plain", false);

    // A SQLite database and a command's output on the host.
    let db = dir.path().join("app/app.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    sql(
        &db,
        "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('before');",
    );
    let snapshot = dir.path().join("app/state.snap");
    std::fs::write(&snapshot, b"state as backed up").unwrap();
    api.post(
        "/items",
        json!({"name": "app-db", "vault": "v", "kind": "sqlite", "agent": "db-host",
               "paths": [db.to_str().unwrap()], "retry_attempts": 0}),
        StatusCode::CREATED,
    );
    api.post(
        "/items",
        json!({"name": "state", "vault": "v", "kind": "command", "agent": "db-host", "retry_attempts": 0,
               "command": {"backup": format!("cat {}", snapshot.display()),
                           "restore": format!("cat > {}", snapshot.display()),
                           "file_name": "state.snap"}}),
        StatusCode::CREATED,
    );
    let db_point = back_up(&api, "app-db");
    assert_eq!(db_point["state"], "Succeeded", "{db_point}");
    let state_point = back_up(&api, "state");
    assert_eq!(state_point["state"], "Succeeded", "{state_point}");

    // Changed after the backup; restored in place, on the host, without
    // naming it: the item's own host is where a database goes back.
    sql(&db, "UPDATE t SET v = 'after';");
    std::fs::write(&snapshot, b"state changed since").unwrap();
    let done = restore_job(
        &api,
        json!({"point": db_point["result"]["point"], "target": "", "overwrite": true}),
    );
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert!(
        log_of(&api, &done).contains("on agent db-host"),
        "{}",
        log_of(&api, &done)
    );
    assert_eq!(sql(&db, "SELECT v FROM t;"), "before");
    let done = restore_job(
        &api,
        json!({"point": state_point["result"]["point"], "target": "", "overwrite": true}),
    );
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert!(
        done["result"]["message"]
            .as_str()
            .unwrap()
            .contains("restore command"),
        "{done}"
    );
    assert_eq!(std::fs::read(&snapshot).unwrap(), b"state as backed up");

    // Onto a host that does not run the service's programs: the restore
    // command is refused there, with what to do; as a file under a target
    // it arrives.
    std::fs::write(&snapshot, b"untouched").unwrap();
    let refused = restore_job(
        &api,
        json!({"point": state_point["result"]["point"], "target": "", "host": "plain"}),
    );
    assert_eq!(refused["state"], "Failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("--allow-commands"),
        "{refused}"
    );
    assert_eq!(std::fs::read(&snapshot).unwrap(), b"untouched");
    let target = dir.path().join("on-plain");
    let done = restore_job(
        &api,
        json!({"point": state_point["result"]["point"], "target": target.to_str().unwrap(), "host": "plain"}),
    );
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert_eq!(
        std::fs::read(target.join("state.snap")).unwrap(),
        b"state as backed up"
    );
}

fn qemu(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_qcow2_disk_on_a_hypervisor_host_backs_up_through_its_bitmap_and_comes_back_in_place() {
    let dir = scratch();
    let server = tls_service(dir.path());
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let _host = register_host(&server, &api, dir.path(), "hv1", false);
    let img = dir.path().join("images/vm1.qcow2");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    let img_s = img.to_str().unwrap();
    qemu("qemu-img", &["create", "-q", "-f", "qcow2", img_s, "128M"]);
    qemu(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x61 1M 20M", img_s],
    );
    let item = api.post(
        "/items",
        json!({"name": "vm1", "vault": "v", "kind": "disk", "agent": "hv1", "retry_attempts": 0,
               "paths": [img_s], "disk": {"format": "qcow2"}}),
        StatusCode::CREATED,
    );
    assert_eq!(item["disk"]["format"], "qcow2", "{item}");

    let first = back_up(&api, "vm1");
    assert_eq!(first["state"], "Succeeded", "{first}");
    assert_eq!(first["result"]["disks"][0]["method"], "full", "{first}");
    qemu(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x62 50M 4k", img_s],
    );
    let second = back_up(&api, "vm1");
    assert_eq!(second["state"], "Succeeded", "{second}");
    let disk = &second["result"]["disks"][0];
    assert_eq!(disk["method"], "bitmap", "{second}");
    assert_eq!(disk["blocks_changed"], 1, "{second}");
    assert!(disk["bytes_read"].as_u64().unwrap() < 16 << 20, "{second}");
    assert!(
        log_of(&api, &second).contains("disk vm1.qcow2"),
        "{}",
        log_of(&api, &second)
    );

    // The image is lost on its host; put back in place, by the host itself.
    let kept = dir.path().join("kept.qcow2");
    std::fs::copy(&img, &kept).unwrap();
    std::fs::remove_file(&img).unwrap();
    let done = restore_job(
        &api,
        json!({"point": second["result"]["point"], "target": ""}),
    );
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert!(
        log_of(&api, &done).contains("on agent hv1"),
        "{}",
        log_of(&api, &done)
    );
    qemu(
        "qemu-img",
        &["compare", "-q", img_s, kept.to_str().unwrap()],
    );
    // Restored with a bitmap from that point: the next backup is incremental.
    qemu(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x63 90M 4k", img_s],
    );
    let third = back_up(&api, "vm1");
    assert_eq!(third["result"]["disks"][0]["method"], "bitmap", "{third}");
}

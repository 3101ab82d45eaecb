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

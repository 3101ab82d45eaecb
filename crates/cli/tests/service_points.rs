//! The endpoints the console stands on, through the real `coffer serve`:
//! browsing a point, downloading one file, undelete, the policy preview,
//! the location test, the vault's status, and stopping protection.

mod common;
mod service_harness;

use common::random_file;
use reqwest::StatusCode;
use serde_json::json;
use service_harness::{scratch, Server};

fn backed_up(api: &service_harness::Api, item: &str) -> String {
    let job = api.post(
        &format!("/items/{item}/backup"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "Succeeded", "{job}");
    job["result"]["point"].as_str().unwrap().to_string()
}

#[test]
fn a_point_is_browsed_and_one_file_downloaded_whole() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let src = dir.path().join("src");
    // Several chunks, so the download streams more than one.
    random_file(&src.join("big.bin"), 6_000_000, 7);
    random_file(&src.join("d/small name.txt"), 100, 8);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &src, 0);
    let point = backed_up(&api, "it");

    let listing = api.get(&format!(
        "/vaults/v/points/{}/entries?path={}",
        &point[..12],
        src.display()
    ));
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big.bin", "d"], "{listing}");
    assert_eq!(listing["entries"][0]["size"], 6_000_000);
    assert_eq!(listing["entries"][1]["kind"], "dir");
    assert_eq!(listing["point"], point.as_str());
    // The root lists the first component of the backed-up path.
    let root = api.get(&format!("/vaults/v/points/{point}/entries"));
    assert_eq!(root["entries"][0]["path"], "/var", "{root}");

    let url = server.url(&format!(
        "/vaults/v/points/{point}/file?path={}",
        src.join("big.bin").display()
    ));
    let r = api.http.get(&url).bearer_auth(&api.token).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "6000000");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename*=UTF-8''big.bin"
    );
    let body = r.bytes().unwrap();
    assert!(body[..] == std::fs::read(src.join("big.bin")).unwrap()[..]);
    // A name with a space is percent-encoded for the browser.
    let url = server.url(&format!(
        "/vaults/v/points/{point}/file?path={}",
        src.join("d/small name.txt").display()
    ));
    let r = api.http.get(&url).bearer_auth(&api.token).send().unwrap();
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename*=UTF-8''small%20name.txt"
    );

    // What cannot be had says so: a missing path, a directory, a bad path,
    // an unknown point, and no credentials.
    for (path, status, words) in [
        (
            format!("{}/nope", src.display()),
            StatusCode::NOT_FOUND,
            "in this point",
        ),
        (
            src.join("d").display().to_string(),
            StatusCode::CONFLICT,
            "only regular files",
        ),
        (
            "relative/x".to_string(),
            StatusCode::BAD_REQUEST,
            "absolute path",
        ),
    ] {
        let (s, v) = api.call(
            "GET",
            &format!("/vaults/v/points/{point}/file?path={path}"),
            None,
        );
        assert_eq!(s, status, "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(words),
            "{v}"
        );
    }
    let (s, v) = api.call("GET", "/vaults/v/points/abcdef0123/entries", None);
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _) = api.call(
        "GET",
        &format!(
            "/vaults/v/points/{point}/entries?path={}/big.bin",
            src.display()
        ),
        None,
    );
    assert_eq!(s, StatusCode::CONFLICT);
    let r = api.http.get(&url).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn deleted_points_show_as_such_and_come_back_on_hold() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let src = dir.path().join("src");
    random_file(&src.join("f"), 1000, 1);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &src, 0);
    let first = backed_up(&api, "it");
    let second = backed_up(&api, "it");
    let (s, v) = api.call(
        "POST",
        "/vaults/v/points/undelete",
        Some(json!({"points": [first]})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not soft-deleted"));
    api.post(
        "/vaults/v/points/delete",
        json!({"points": [first]}),
        StatusCode::OK,
    );
    let points = api.get("/vaults/v/points");
    let row = |id: &str| {
        points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&first)["state"], "soft-deleted");
    assert!(
        row(&first)["purge_at"].as_i64().unwrap() > row(&first)["deleted_at"].as_i64().unwrap()
    );
    assert_eq!(row(&second)["state"], "active");
    let status = api.get("/vaults/v/status");
    assert_eq!(status["points"], 1, "{status}");
    assert_eq!(status["soft_deleted_points"], 1);
    assert_eq!(status["immutability"], "disabled");
    assert_eq!(status["replicas"], json!([]));
    let done = api.post(
        "/vaults/v/points/undelete",
        json!({"points": [&first[..12]]}),
        StatusCode::OK,
    );
    assert_eq!(done["undeleted"], 1);
    let points = api.get("/vaults/v/points");
    let back = points
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == first.as_str())
        .unwrap();
    assert_eq!(back["state"], "active");
    assert_eq!(back["hold"], true);
}

#[test]
fn a_policy_preview_agrees_with_the_prune_that_follows() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let src = dir.path().join("src");
    random_file(&src.join("f"), 1000, 2);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("it", "v", &src, 0);
    api.create_item("other", "v", &src, 0);
    let ids: Vec<String> = (0..4).map(|_| backed_up(&api, "it")).collect();
    backed_up(&api, "other");
    let spec =
        json!({"schedule": "daily 01:00", "time_zone": "UTC", "retention": {"keep_last": 2}});
    // Nobody follows the new policy yet: nothing to judge.
    let p = api.post(
        "/vaults/v/policies/short/preview",
        spec.clone(),
        StatusCode::OK,
    );
    assert_eq!(p["points"], json!([]), "{p}");
    // As if "it" followed it: the two newest kept, the two oldest expire.
    let p = api.post(
        "/vaults/v/policies/short/preview?item=it",
        spec.clone(),
        StatusCode::OK,
    );
    assert_eq!(
        (p["keep"].as_u64(), p["expire"].as_u64()),
        (Some(2), Some(2)),
        "{p}"
    );
    let expiring: Vec<&str> = p["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["fate"] == "expire")
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(expiring, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(p["items"], json!(["it"]));
    // A bad schedule names its field.
    let (s, v) = api.call(
        "POST",
        "/vaults/v/policies/short/preview",
        Some(json!({"schedule": "sometimes", "retention": {"keep_last": 2}})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "schedule", "{v}");
    // Saved and assigned, the prune does what the preview said.
    api.call("PUT", "/vaults/v/policies/short", Some(spec));
    let (s, v) = api.call("PUT", "/items/it/policy", Some(json!({"policy": "short"})));
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let job = api.post("/vaults/v/prune", json!({}), StatusCode::ACCEPTED);
    assert_eq!(
        api.wait_job(job["id"].as_i64().unwrap())["state"],
        "Succeeded"
    );
    let points = api.get("/vaults/v/points");
    let deleted: Vec<&str> = points
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["state"] == "soft-deleted")
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    let mut want = vec![ids[0].as_str(), ids[1].as_str()];
    want.sort();
    let mut got = deleted.clone();
    got.sort();
    assert_eq!(got, want);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn the_location_test_reports_each_step_and_keeps_nothing() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let good = dir.path().join("new-vault");
    let t = api.post(
        "/locations/test",
        json!({"location": good.to_str().unwrap()}),
        StatusCode::OK,
    );
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["holds_vault"], false);
    assert!(t["steps"].as_array().unwrap().len() >= 4, "{t}");
    // Nothing stays but the empty staging directory of atomic writes.
    let left: Vec<_> = walk(&good).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "the probe stayed: {left:?}");
    api.create_vault("v", &good);
    let t = api.post(
        "/locations/test",
        json!({"location": good.to_str().unwrap()}),
        StatusCode::OK,
    );
    assert_eq!(t["holds_vault"], true, "{t}");
    // A server that does not answer fails the test, quickly, with its
    // cause and what to do.
    let started = std::time::Instant::now();
    let t = api.post(
        "/locations/test",
        json!({"location": "s3://coffer/x?endpoint=http://127.0.0.1:9&region=us-east-1",
               "credentials": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}}),
        StatusCode::OK,
    );
    assert_eq!(t["ok"], false, "{t}");
    assert_eq!(t["failure"], "unreachable", "{t}");
    assert!(t["remedy"].is_string(), "{t}");
    assert!(started.elapsed().as_secs() < 20);
    // A location that cannot even be opened is a bad field.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (s, v) = api.call(
        "POST",
        "/locations/test",
        Some(json!({"location": file.join("sub").to_str().unwrap()})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "location");
    let (s, v) = api.call("POST", "/locations/test", Some(json!({"location": " "})));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "location");
}

#[test]
fn stopping_protection_retains_or_deletes_and_resuming_brings_the_schedule_back() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let src = dir.path().join("src");
    random_file(&src.join("f"), 1000, 3);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("keep", "v", &src, 0);
    api.create_item("drop", "v", &src, 0);
    backed_up(&api, "keep");
    backed_up(&api, "drop");
    let (s, v) = api.call(
        "POST",
        "/items/keep/stop-protection",
        Some(json!({"delete_data": false})),
    );
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let sched = api.get("/items/keep/schedule");
    assert_eq!(sched["protection"], "stopped-retain", "{sched}");
    assert_eq!(sched["active"], false);
    let (s, v) = api.call(
        "POST",
        "/items/drop/stop-protection",
        Some(json!({"delete_data": true})),
    );
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        api.get("/items/drop/schedule")["protection"],
        "stopped-delete"
    );
    let points = api.get("/vaults/v/points");
    for p in points.as_array().unwrap() {
        let expected = if p["item"] == "drop" {
            "soft-deleted"
        } else {
            "active"
        };
        assert_eq!(p["state"], expected, "{p}");
    }
    let alerts = api.get("/alerts");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["cause"] == "points_deleted" && a["item"] == "drop"),
        "{alerts}"
    );
    let (s, _) = api.call("POST", "/items/keep/resume-protection", None);
    assert_eq!(s, StatusCode::NO_CONTENT);
    let sched = api.get("/items/keep/schedule");
    assert_eq!(sched["protection"], "active");
    assert_eq!(api.get("/items/keep")["enabled"], true);
    let (s, v) = api.call(
        "POST",
        "/items/nope/stop-protection",
        Some(json!({"delete_data": false})),
    );
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

#[test]
fn an_item_of_a_set_shows_the_set_runs_as_its_last_backup() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let src = dir.path().join("src");
    random_file(&src.join("f"), 1000, 4);
    api.create_vault("v", &dir.path().join("vault"));
    api.create_item("member", "v", &src, 0);
    api.create_item("broken", "v", &dir.path().join("missing"), 0);
    let before = api.get("/items/member/schedule");
    assert_eq!(before["last_run"], serde_json::Value::Null, "{before}");
    api.post(
        "/sets",
        json!({"name": "infra", "vault": "v", "items": ["member", "broken"]}),
        StatusCode::CREATED,
    );
    let job = api.post("/sets/infra/backup", json!({}), StatusCode::ACCEPTED);
    let job = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(job["state"], "PartialSucceeded", "{job}");
    let member = api.get("/items/member/schedule");
    assert_eq!(member["last_state"], "Succeeded", "{member}");
    assert_eq!(member["last_run"], job["started"]);
    assert_eq!(member["last_success"], job["finished"]);
    let broken = api.get("/items/broken/schedule");
    assert_eq!(broken["last_state"], "Failed", "{broken}");
    assert_eq!(broken["last_success"], serde_json::Value::Null);
}

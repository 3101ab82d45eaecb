//! Agents on hosts of their own as far as the network goes: the service in
//! a network namespace, each agent in another, joined to the service's by
//! a veth link of its own (iproute2), so an agent reaches the service only
//! over its link and the service never connects to an agent.

mod agent_harness;
mod common;
mod service_harness;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use agent_harness::*;
use common::*;
use service_harness::*;

#[test]
fn agents_in_network_namespaces_of_their_own_back_up_a_set_over_their_links() {
    let fabric = Fabric::new(3);
    let dir = scratch();
    let data = tls_data(dir.path(), "agent_claim_secs = 10\n");
    let server = Server::start_in_netns(&fabric.service_ns(), &data, &fabric.service_addr(0));
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let port = server.origin().rsplit(':').next().unwrap().to_string();

    let mut running = Vec::new();
    let mut items = Vec::new();
    for k in 1..=3 {
        let name = format!("host-{k}");
        let token = api.post("/agents/tokens", json!({"vault": "v"}), StatusCode::CREATED);
        let state = dir.path().join(format!("state-{k}"));
        // The agent knows the service by its address on the agent's link.
        let url = format!("https://{}:{port}", fabric.service_addr(k));
        let out = fabric
            .in_agent(k, BIN)
            .args(["agent", "register", "--server", &url, "--token"])
            .arg(token["text"].as_str().unwrap())
            .args(["--name", &name, "--state-dir"])
            .arg(&state)
            .env_remove("COFFER_SERVER")
            .env_remove("COFFER_TOKEN")
            .output()
            .unwrap();
        ok(out);
        let src = dir.path().join(format!("src-{k}"));
        small_tree(&src, k as u8 * 40);
        let item = format!("files-{k}");
        api.post(
            "/items",
            json!({"name": item, "vault": "v", "agent": name, "paths": [src.to_str().unwrap()], "retry_attempts": 0}),
            StatusCode::CREATED,
        );
        items.push(item);
        running.push(AgentProcess::start_with(fabric.in_agent(k, BIN), &state));
    }

    // Each agent reached the service from its own link's address.
    wait_for("three agents in contact", Duration::from_secs(30), || {
        let agents = api.get("/agents");
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["last_contact"].as_i64().is_some())
    });
    for k in 1..=3 {
        let agent = api.get(&format!("/agents/host-{k}"));
        assert_eq!(agent["address"], fabric.agent_addr(k).as_str(), "{agent}");
    }

    // One set point across the three hosts.
    api.post(
        "/sets",
        json!({"name": "fleet", "vault": "v", "items": items}),
        StatusCode::CREATED,
    );
    let job = api.post("/sets/fleet/backup", json!({}), StatusCode::ACCEPTED);
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(done["state"], "Succeeded", "{done}");
    let points: Value = api.get("/vaults/v/set-points");
    let statuses = points[0]["items"].as_array().unwrap();
    for k in 1..=3 {
        let status = statuses
            .iter()
            .find(|s| s["host"] == format!("host-{k}").as_str())
            .unwrap_or_else(|| panic!("no status of host-{k}: {points}"));
        assert_eq!(status["status"], "Succeeded", "{status}");
    }

    // A restore onto host 2, over its link.
    let point = statuses.iter().find(|s| s["host"] == "host-2").unwrap()["point"]
        .as_str()
        .unwrap()
        .to_string();
    let target = dir.path().join("restored-on-2");
    let job = api.post(
        "/vaults/v/restore",
        json!({"point": point, "target": target.to_str().unwrap(), "host": "host-2"}),
        StatusCode::ACCEPTED,
    );
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(done["state"], "Succeeded", "{done}");
    let src = dir.path().join("src-2");
    let back = under(&target, &src.join("d0/f0"));
    assert_eq!(
        std::fs::read(back).unwrap(),
        std::fs::read(src.join("d0/f0")).unwrap()
    );
    drop(running);
    drop(api);
    drop(server);
}

//! What the agent tests share: `coffer agent run` processes, a service
//! with its own TLS certificate, registration, and an intruder holding an
//! agent's state directory.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::service_harness::*;

/// A running `coffer agent run`; killed on drop.
pub struct AgentProcess {
    pub child: Child,
}

impl AgentProcess {
    pub fn start(state: &Path) -> AgentProcess {
        let child = Command::new(BIN)
            .args(["agent", "run", "--state-dir"])
            .arg(state)
            .env_remove("COFFER_SERVER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        AgentProcess { child }
    }

    /// Waits for the process to end by itself; its stderr.
    pub fn wait_exit(mut self, within: Duration) -> String {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.child.try_wait().unwrap().is_some() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return err;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the agent did not stop");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data directory whose service serves TLS with its own certificate,
/// with `settings` besides.
pub fn tls_data(dir: &Path, settings: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("coffer.toml"),
        format!("tls_self_signed = true\n{settings}"),
    )
    .unwrap();
    data
}

pub fn tls_service(dir: &Path) -> Server {
    Server::start(&tls_data(
        dir,
        "agent_claim_secs = 10\nagent_silence_secs = 20\n",
    ))
}

pub fn service_url(server: &Server) -> String {
    server.origin()
}

pub fn coffer(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("COFFER_SERVER")
        .env_remove("COFFER_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn register(server: &Server, token: &str, name: &str, state: &Path) -> Output {
    coffer(
        &[
            "agent",
            "register",
            "--server",
            &service_url(server),
            "--token",
            token,
            "--name",
            name,
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    )
}

pub fn torture(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(shared_dir().join("torture_tree.py"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// What an attacker holding an agent's state directory can send.
pub struct Intruder {
    pub http: reqwest::blocking::Client,
    pub base: String,
    pub secret: String,
}

impl Intruder {
    pub fn from_state(server: &Server, state: &Path) -> Intruder {
        let identity: Value =
            serde_json::from_slice(&std::fs::read(state.join("agent.json")).unwrap()).unwrap();
        Intruder {
            http: reqwest::blocking::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            base: server.base.clone(),
            secret: identity["secret"].as_str().unwrap().to_string(),
        }
    }

    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.secret);
        if let Some(b) = body {
            r = r.body(b);
        }
        let answer = r.send().unwrap();
        (answer.status(), answer.text().unwrap())
    }
}

pub fn slot_of(api: &Api, agent: &str) -> String {
    api.get(&format!("/agents/{agent}"))["slot"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn back_up(api: &Api, item: &str) -> Value {
    let job = api.post(
        &format!("/items/{item}/backup"),
        json!({}),
        StatusCode::ACCEPTED,
    );
    api.wait_job(job["id"].as_i64().unwrap())
}

pub fn restore(api: &Api, item: &str, point: &str, target: &Path) {
    let job = api.post(
        "/vaults/v/restore",
        json!({"point": point, "item": item, "target": target.to_str().unwrap()}),
        StatusCode::ACCEPTED,
    );
    let done = api.wait_job(job["id"].as_i64().unwrap());
    assert_eq!(done["state"], "Succeeded", "{done}");
}

pub fn small_tree(dir: &Path, seed: u8) {
    for f in 0..12usize {
        random_file(
            &dir.join(format!("d{}/f{f}", f % 2)),
            500 + f * 3001,
            seed.wrapping_add(f as u8),
        );
    }
}

pub fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A port nobody listens on now, for a service that must come back on it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_running_with_bytes(api: &Api, job: i64) {
    wait_for("the backup under way", Duration::from_secs(60), || {
        let j = api.get(&format!("/jobs/{job}"));
        j["state"] == "Running" && j["progress"]["bytes_read"].as_u64().unwrap_or(0) > 0
    });
}

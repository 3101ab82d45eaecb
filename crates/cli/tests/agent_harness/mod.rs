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
        Self::start_with(Command::new(BIN), state)
    }

    /// `coffer agent run` through `command` (BIN itself, or BIN run
    /// inside a network namespace).
    pub fn start_with(mut command: Command, state: &Path) -> AgentProcess {
        let child = command
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

/// `check --read-data` of vault `v` through the service finds nothing.
pub fn vault_checks_whole(api: &Api) {
    let check = api.post(
        "/vaults/v/check",
        json!({"read_data_percent": 100}),
        StatusCode::ACCEPTED,
    );
    let check = api.wait_job(check["id"].as_i64().unwrap());
    assert_eq!(check["state"], "Succeeded", "{check}");
    assert_eq!(check["result"]["problems"], 0, "{check}");
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
    let started = Instant::now();
    loop {
        let j = api.get(&format!("/jobs/{job}"));
        if j["state"] == "Running" && j["progress"]["bytes_read"].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60)
                && ["Queued", "Running"].contains(&j["state"].as_str().unwrap_or("")),
            "the backup is not under way: {j}\n{}",
            api.get(&format!("/jobs/{job}/logs"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Network namespaces made for one test: the service's, and one per
/// agent, each joined to the service's by a veth link of its own (link 0
/// joins this, the test's, namespace). Link `k` is `10.S.k.0/30`: the
/// service's end `.1`, the other `.2`. Removed on drop, with the links.
pub struct Fabric {
    prefix: String,
    subnet: u8,
    agents: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {} (network namespaces need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fabric {
    pub fn new(agents: usize) -> Fabric {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let salt = std::process::id() ^ nanos.rotate_left(11) ^ nanos;
        let fabric = Fabric {
            prefix: format!("cf{:04x}", salt & 0xffff),
            subnet: 100 + (salt % 150) as u8,
            agents,
        };
        ip(&["netns", "add", &fabric.service_ns()]);
        for k in 0..=agents {
            fabric.link(k);
        }
        fabric
    }

    fn link(&self, k: usize) {
        let (ours, theirs) = (
            format!("{}s{k}", self.prefix),
            format!("{}p{k}", self.prefix),
        );
        ip(&[
            "link", "add", &ours, "type", "veth", "peer", "name", &theirs,
        ]);
        ip(&["link", "set", &ours, "netns", &self.service_ns()]);
        let exec = |ns: &str, args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        let svc = self.service_ns();
        exec(
            &svc,
            &[
                "addr",
                "add",
                &format!("{}/30", self.service_addr(k)),
                "dev",
                &ours,
            ],
        );
        exec(&svc, &["link", "set", &ours, "up"]);
        exec(&svc, &["link", "set", "lo", "up"]);
        let peer_addr = format!("10.{}.{k}.2/30", self.subnet);
        if k == 0 {
            ip(&["addr", "add", &peer_addr, "dev", &theirs]);
            ip(&["link", "set", &theirs, "up"]);
        } else {
            let ns = self.agent_ns(k);
            ip(&["netns", "add", &ns]);
            ip(&["link", "set", &theirs, "netns", &ns]);
            exec(&ns, &["addr", "add", &peer_addr, "dev", &theirs]);
            exec(&ns, &["link", "set", &theirs, "up"]);
            exec(&ns, &["link", "set", "lo", "up"]);
        }
    }

    pub fn service_ns(&self) -> String {
        format!("{}-svc", self.prefix)
    }

    /// Agent `k`'s namespace, 1-based.
    pub fn agent_ns(&self, k: usize) -> String {
        format!("{}-a{k}", self.prefix)
    }

    /// The service's address on link `k`.
    pub fn service_addr(&self, k: usize) -> String {
        format!("10.{}.{k}.1", self.subnet)
    }

    /// Agent `k`'s address.
    pub fn agent_addr(&self, k: usize) -> String {
        format!("10.{}.{k}.2", self.subnet)
    }

    /// A command run inside agent `k`'s namespace.
    pub fn in_agent(&self, k: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.agent_ns(k), program]);
        c
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // Deleting a namespace deletes its links, and so their peers.
        for k in 1..=self.agents {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.agent_ns(k)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.service_ns()])
            .output();
    }
}

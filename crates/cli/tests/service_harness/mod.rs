//! The real `coffer serve` for end-to-end tests: started on 127.0.0.1 with
//! its own data directory, driven over HTTP with an administrator's token.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::BIN;

pub const ADMIN_PASSWORD: &str = "admin password for tests";

/// A running service; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub data: PathBuf,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Self::start_with_env(data, &[])
    }

    /// A service with more variables in its environment (secrets a child
    /// process must never see, a metrics token).
    pub fn start_with_env(data: &Path, extra: &[(&str, &str)]) -> Server {
        Self::start_on(data, "127.0.0.1:0", extra)
    }

    /// A service on a given address (one that restarts where its agents
    /// expect it).
    pub fn start_on(data: &Path, listen: &str, extra: &[(&str, &str)]) -> Server {
        Self::spawn(Command::new(BIN), data, listen, extra)
    }

    /// A service inside network namespace `netns`, listening on all of its
    /// addresses; the test reaches it at `reach_at`, an address of that
    /// namespace on a link to this one.
    pub fn start_in_netns(netns: &str, data: &Path, reach_at: &str) -> Server {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, BIN]);
        let mut server = Self::spawn(command, data, "0.0.0.0:0", &[]);
        server.base = server.base.replace("0.0.0.0", reach_at);
        server
    }

    fn spawn(mut command: Command, data: &Path, listen: &str, extra: &[(&str, &str)]) -> Server {
        let mut child = command
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", data)
            .env("COFFER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the service did not start listening");
        Server {
            child,
            base: format!("{base}/api/v1"),
            data: data.to_path_buf(),
        }
    }

    /// Kills the service the hard way, as a crash would.
    pub fn kill(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client logged in as `name`, holding an API token.
    pub fn login(&self, name: &str, password: &str) -> Api {
        // A service with a certificate it made itself is trusted by its
        // fingerprint where that is under test (the agent); the harness
        // only drives it.
        let http = Client::builder()
            .danger_accept_invalid_certs(self.base.starts_with("https://"))
            .build()
            .unwrap();
        let r = http
            .post(self.url("/auth/login"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().unwrap());
        let cookie = session_cookie(&r);
        let r = http
            .post(self.url("/tokens"))
            .header("cookie", &cookie)
            .header("origin", self.origin())
            .json(&json!({"name": "test"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let token = r.json::<Value>().unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string();
        Api {
            http,
            base: self.base.clone(),
            token,
        }
    }

    /// The service's own origin, as a browser on its pages would send it.
    pub fn origin(&self) -> String {
        self.base.trim_end_matches("/api/v1").to_string()
    }

    pub fn admin(&self) -> Api {
        self.login("admin", ADMIN_PASSWORD)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Api {
    pub http: Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            "PATCH" => self.http.patch(url),
            "DELETE" => self.http.delete(url),
            m => panic!("method {m}"),
        }
        .bearer_auth(&self.token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let r = req.send().unwrap();
        let status = r.status();
        let text = r.text().unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub fn get(&self, path: &str) -> Value {
        let (s, v) = self.call("GET", path, None);
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    pub fn post(&self, path: &str, body: Value, expect: StatusCode) -> Value {
        let (s, v) = self.call("POST", path, Some(body));
        assert_eq!(s, expect, "POST {path}: {v}");
        v
    }

    /// Polls a job until it has ended.
    pub fn wait_job(&self, id: i64) -> Value {
        let started = Instant::now();
        loop {
            let job = self.get(&format!("/jobs/{id}"));
            let state = job["state"].as_str().unwrap().to_string();
            if !["Queued", "Running"].contains(&state.as_str()) {
                return job;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "job {id} still {state}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn create_vault(&self, name: &str, location: &Path) -> Value {
        self.post(
            "/vaults",
            json!({"name": name, "location": location.to_str().unwrap(), "create": true}),
            StatusCode::CREATED,
        )
    }

    pub fn create_item(&self, name: &str, vault: &str, source: &Path, retries: u32) -> Value {
        self.post(
            "/items",
            json!({"name": name, "vault": vault, "paths": [source.to_str().unwrap()],
                   "retry_attempts": retries, "retry_delay_secs": 0}),
            StatusCode::CREATED,
        )
    }
}

pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("coffer-service-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// The `name=value` of the session cookie a login answer sets (the session
/// is in no body).
pub fn session_cookie(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("coffer_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string()
}

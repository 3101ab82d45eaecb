//! Shared test harness: each test gets its own temporary directory with a
//! vault, a cache and a key, and runs the real `coffer` binary against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_coffer");

pub struct Env {
    pub dir: tempfile::TempDir,
    pub key: String,
}

impl Env {
    /// A fresh temporary area with a new key and an initialized vault.
    pub fn new() -> Self {
        let env = Self::without_vault();
        let out = env.ok(&["vault", "init", "--location", env.vault().to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("created vault"));
        env
    }

    pub fn without_vault() -> Self {
        // /var/tmp rather than /tmp: tmpfs may lack xattrs or SEEK_DATA.
        let dir = tempfile::Builder::new()
            .prefix("coffer-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let out = Command::new(BIN)
            .args(["key", "generate"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let key = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string();
        Env { dir, key }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn vault(&self) -> PathBuf {
        self.path("vault")
    }

    pub fn vault_str(&self) -> String {
        self.vault().to_str().unwrap().to_string()
    }

    pub fn command(&self) -> Command {
        self.command_for(BIN)
    }

    /// Any program, with this environment's variables.
    pub fn command_for(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("COFFER_KEY", &self.key)
            .env("COFFER_CACHE_DIR", self.path("cache"));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs with another key than the environment's own.
    pub fn run_with_key(&self, key: &str, args: &[&str]) -> Output {
        self.command()
            .env("COFFER_KEY", key)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coffer {:?} failed with {:?}\nstdout: {}\nstderr: {}",
            args,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Backs up paths and returns the JSON summary.
    pub fn backup(&self, extra: &[&str], paths: &[&Path]) -> serde_json::Value {
        let mut args = vec!["backup", "--json", "--vault"];
        let v = self.vault_str();
        args.push(&v);
        args.extend_from_slice(extra);
        let ps: Vec<String> = paths
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        args.extend(ps.iter().map(|s| s.as_str()));
        let out = self.ok(&args);
        summary(&out)
    }

    pub fn restore(&self, point: &str, target: &Path, extra: &[&str]) -> Output {
        let v = self.vault_str();
        let t = target.to_str().unwrap();
        let mut args = vec!["restore", "--vault", &v, point, "--target", t];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn check(&self, extra: &[&str]) -> Output {
        let v = self.vault_str();
        let mut args = vec!["check", "--vault", &v];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// The last JSON line of a command's standard output.
pub fn summary(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    serde_json::from_str(line).unwrap()
}

/// Writes `len` deterministic pseudo-random bytes.
pub fn random_file(path: &Path, len: usize, seed: u8) {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9E3779B97F4A7C15 ^ seed as u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Compares two trees' regular files and symlinks byte for byte.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `root` joined with an absolute path, as restore lays it out.
pub fn under(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap())
}

pub fn is_root() -> bool {
    // SAFETY-free check through the process's own status file.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn shared_dir() -> PathBuf {
    // ../shared beside the repository root (two levels above this crate).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

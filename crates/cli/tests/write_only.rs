//! Write-only credentials from the command line: made by a key holder,
//! listed by name and fingerprint, and refused for anything but adding
//! backups.

mod common;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_credential_is_printed_once_listed_by_name_and_refused_for_reading() {
    let env = Env::new();
    let v = env.vault_str();
    let out = env.ok(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "web-1",
        "--vault",
        &v,
    ]);
    let credential = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(credential.starts_with("coffer-writer-1-"), "{credential}");
    assert!(stderr(&out).contains("shown once"), "{}", stderr(&out));
    // A second one gets the next default name; the same name is refused.
    let out = env.ok(&["key", "add", "--write-only", "--vault", &v]);
    assert!(stderr(&out).contains("writer-1"), "{}", stderr(&out));
    let again = env.run(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "web-1",
        "--vault",
        &v,
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already called"),
        "{}",
        stderr(&again)
    );
    let bad = env.run(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "two words",
        "--vault",
        &v,
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("cannot name"), "{}", stderr(&bad));

    let listed = env.ok(&["--json", "key", "list", "--vault", &v]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let writers: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "write-only")
        .collect();
    assert_eq!(writers.len(), 2, "{rows}");
    assert_eq!(
        writers[0]["name"].as_str().unwrap().len() + writers[1]["name"].as_str().unwrap().len(),
        "web-1".len() + "writer-1".len()
    );
    assert!(writers
        .iter()
        .all(|w| w["fingerprint"].as_str().unwrap().len() == 16 && w["revoked"] == false));
    // The listing never shows the credential's secret.
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&credential[16..40]));
    let vault_keys = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "vault key")
        .count();
    assert_eq!(vault_keys, 1, "{rows}");

    // Reading with the credential: refused, saying what it is.
    for args in [
        vec!["points", "list", "--vault", &v],
        vec!["ls", "latest", "--vault", &v],
        vec!["check", "--read-data", "--vault", &v],
        vec!["key", "list", "--vault", &v],
    ] {
        let out = env.run_with_key(&credential, &args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("write-only credential"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("vault key"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_older_vault_needs_an_upgrade_before_it_takes_a_credential() {
    let env = Env::without_vault();
    let v = env.vault_str();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vault-v4"))
        .arg(env.vault())
        .status()
        .unwrap();
    assert!(status.success());
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vault-v4.key"),
    )
    .unwrap();
    let key = key.trim();
    let out = env.run_with_key(key, &["key", "add", "--write-only", "--vault", &v]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("format 5") && stderr(&out).contains("vault upgrade"),
        "{}",
        stderr(&out)
    );
    let out = env.run_with_key(key, &["vault", "upgrade", "--vault", &v]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run_with_key(key, &["key", "add", "--write-only", "--vault", &v]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A second machine: its own home and cache, and only the credential.
struct Host<'a> {
    env: &'a Env,
    name: &'static str,
    credential: String,
}

impl Host<'_> {
    fn cache(&self) -> std::path::PathBuf {
        self.env.path(&format!("{}-cache", self.name))
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let home = self.env.path(self.name);
        std::fs::create_dir_all(&home).unwrap();
        std::process::Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("COFFER_KEY", &self.credential)
            .env("COFFER_CACHE_DIR", self.cache())
            .args(args)
            .output()
            .unwrap()
    }

    fn backup(&self, src: &std::path::Path) -> serde_json::Value {
        let v = self.env.vault_str();
        let out = self.run(&[
            "backup",
            "--json",
            "--vault",
            &v,
            "--item",
            "host-files",
            src.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        summary(&out)
    }
}

fn add_credential(env: &Env, name: &str) -> String {
    let v = env.vault_str();
    let out = env.ok(&["key", "add", "--write-only", "--name", name, "--vault", &v]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Restores `point` as the key holder and compares it with `src`.
fn assert_restores_as(env: &Env, point: &str, src: &std::path::Path, scratch: &str) {
    let target = env.path(scratch);
    let out = env.restore(point, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cmp = std::process::Command::new("python3")
        .arg(shared_dir().join("torture_tree.py"))
        .arg("compare")
        .arg(src)
        .arg(under(&target, src))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        cmp.status.success() && report.contains(" 0 differences"),
        "{report}"
    );
}

#[test]
fn a_host_with_only_a_credential_backs_up_incrementally_and_the_key_holder_restores_every_point() {
    let env = Env::new();
    let host = Host {
        env: &env,
        name: "host-b",
        credential: add_credential(&env, "host-b"),
    };
    let src = env.path("src");
    let made = std::process::Command::new("python3")
        .arg(shared_dir().join("torture_tree.py"))
        .arg("make")
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let first = host.backup(&src);
    assert_eq!(first["errors"].as_array().unwrap().len(), 0, "{first}");
    assert!(first["files_new"].as_u64().unwrap() > 20000, "{first}");
    let first_point = first["point"].as_str().unwrap().to_string();
    assert_restores_as(&env, &first_point, &src, "restore-1");

    // Changes: one file rewritten, one added, one removed.
    std::fs::write(src.join("sizes/f4096"), vec![7u8; 4096]).unwrap();
    std::fs::write(src.join("added-by-host"), b"new on the host\n").unwrap();
    std::fs::remove_file(src.join("sizes/f0")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = host.backup(&src);
    // Incremental from the writer's own cache: only what changed is read.
    assert_eq!(second["bytes_read"], 4096 + 16, "{second}");
    assert_eq!(second["files_new"], 1, "{second}");
    let second_point = second["point"].as_str().unwrap().to_string();
    assert_restores_as(&env, &second_point, &src, "restore-2");

    std::fs::write(src.join("added-by-host"), b"changed again on the host\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let third = host.backup(&src);
    assert_eq!(third["bytes_read"], 26, "{third}");
    let third_point = third["point"].as_str().unwrap().to_string();
    assert_restores_as(&env, &third_point, &src, "restore-3");

    // The key holder sees the three points, checks them with their data.
    let v = env.vault_str();
    let listed = env.ok(&["--json", "points", "list", "--vault", &v]);
    let points: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for p in [&first_point, &second_point, &third_point] {
        assert!(ids.contains(&p.as_str()), "{points}");
    }
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        stderr(&check)
    );

    // The host's cache lost: every file is read again, and what is
    // uploaded is at most the trees of the directories above the source
    // (this test and others add entries to them): no chunk of data.
    std::fs::remove_dir_all(host.cache()).unwrap();
    let fourth = host.backup(&src);
    let read_first = first["bytes_read"].as_u64().unwrap();
    assert_eq!(
        fourth["bytes_read"].as_u64().unwrap(),
        read_first + 26,
        "{fourth}"
    );
    assert_eq!(fourth["files_new"], fourth["files"], "{fourth}");
    assert!(fourth["bytes_new"].as_u64().unwrap() < 4096, "{fourth}");
    assert!(fourth["packs_written"].as_u64().unwrap() <= 1, "{fourth}");
    assert_restores_as(&env, fourth["point"].as_str().unwrap(), &src, "restore-4");
}

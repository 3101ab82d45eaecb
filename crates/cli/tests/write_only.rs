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

//! The committed vaults of every format version must open, check and restore
//! byte-exactly in every future version of coffer, and a version 1 vault must
//! stay version 1 when newer coffer writes into it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The format `vault upgrade` brings every fixture to.
const FORMAT: u16 = coffer_engine::FORMAT_VERSION;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A copy of a committed vault: the tests must never alter the originals.
fn copy_of(env: &Env, name: &str) -> String {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures().join(name))
        .arg(env.vault())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(fixtures().join(format!("{name}.key")))
        .unwrap()
        .trim()
        .to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn vault_info(env: &Env, key: &str) -> serde_json::Value {
    json(&env.run_with_key(
        key,
        &["vault", "info", "--vault", &env.vault_str(), "--json"],
    ))
}

/// `check --read-data` finds nothing wrong.
fn assert_checks_clean(env: &Env, key: &str) {
    let check = json(&env.run_with_key(
        key,
        &[
            "check",
            "--vault",
            &env.vault_str(),
            "--read-data",
            "--json",
        ],
    ));
    assert_eq!(check["ok"], true, "{check}");
}

/// Checks the copy, lists its one point and restores it byte-exactly.
fn check_and_restore(env: &Env, key: &str, tag: &str, point_id: &str, source: &str, path: &str) {
    let run = |args: &[&str]| env.run_with_key(key, args);
    assert_checks_clean(env, key);

    let points = json(&run(&[
        "points",
        "list",
        "--vault",
        &env.vault_str(),
        "--json",
    ]));
    assert_eq!(points.as_array().unwrap().len(), 1);
    assert_eq!(points[0]["item"], "fixture");
    assert_eq!(points[0]["tags"][0], tag);
    assert_eq!(points[0]["id"], point_id);

    let target = env.path(&format!("restored-{tag}"));
    let restore = run(&[
        "restore",
        "--vault",
        &env.vault_str(),
        &point_id[..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_same_tree(&fixtures().join(source), &target.join(path));
}

#[test]
fn the_committed_v1_vault_opens_checks_restores_and_stays_version_1() {
    let env = Env::without_vault();
    let key = copy_of(&env, "vault-v1");
    check_and_restore(
        &env,
        &key,
        "v1",
        "6a1776ebb44526d66aa204c5865a896dece14ddc6d4c2e73f8f20adbb9ec80da",
        "vault-v1-source",
        "tmp/coffer-fixture-src",
    );
    assert_eq!(
        std::fs::read_link(env.path("restored-v1/tmp/coffer-fixture-src/link")).unwrap(),
        Path::new("hello.txt")
    );

    // Writing into it with this coffer keeps it readable by the one that made it.
    let src = env.path("more");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..400 {
        let text = format!("setting_{i} = {}\n", i * 7).repeat(200);
        std::fs::write(src.join(format!("f{i}.conf")), text).unwrap();
    }
    let run = |args: &[&str]| env.run_with_key(&key, args);
    let backup = run(&["backup", "--vault", &env.vault_str(), src.to_str().unwrap()]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let info = vault_info(&env, &key);
    assert_eq!(info["format_version"], 1);
    assert_eq!(info["dictionaries"], 0);
    assert!(!env.vault().join("dicts").exists());
    assert_checks_clean(&env, &key);
}

#[test]
fn the_committed_v2_vault_opens_checks_and_restores_through_its_dictionary() {
    let env = Env::without_vault();
    let key = copy_of(&env, "vault-v2");
    check_and_restore(
        &env,
        &key,
        "v2",
        "09259498e015d5347222acba7f738ea1870ae93a3c37a6f27cdc7ca93c0488ae",
        "vault-v2-source",
        "tmp/coffer-fixture-v2-src",
    );
    let run = |args: &[&str]| env.run_with_key(&key, args);
    let info = vault_info(&env, &key);
    assert_eq!(info["format_version"], 2);
    assert_eq!(info["dictionaries"], 1);

    // Its small files really depend on the dictionary: without it, check
    // finds them unreadable.
    for d in std::fs::read_dir(env.vault().join("dicts")).unwrap() {
        std::fs::remove_file(d.unwrap().path()).unwrap();
    }
    let check = run(&[
        "check",
        "--vault",
        &env.vault_str(),
        "--read-data",
        "--json",
    ]);
    assert!(!check.status.success());
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("no readable dictionary"), "{problems}");
}

/// The journal fixtures (format 3 and later) hold the same state: a policy
/// assigned to the item, a held, a soft-deleted and an on-demand point, and
/// immutability enabled.
fn journal_fixture_keeps_its_state(version: u32) {
    let env = Env::without_vault();
    let key = copy_of(&env, &format!("vault-v{version}"));
    let run = |args: &[&str]| env.run_with_key(&key, args);
    let v = env.vault_str();
    assert_checks_clean(&env, &key);
    assert_eq!(vault_info(&env, &key)["format_version"], version);

    let points = json(&run(&["points", "list", "--vault", &v, "--json"]));
    let points = points.as_array().unwrap();
    let status: Vec<&str> = points
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(points.len(), 3, "{points:?}");
    assert!(status[0].starts_with("soft-deleted"), "{status:?}");
    assert_eq!(status[1], "on hold");
    assert!(
        status[2].starts_with("on demand, until 2126-01-03"),
        "{status:?}"
    );

    let policy = json(&run(&[
        "policy", "show", "Fixture", "--vault", &v, "--json",
    ]));
    assert_eq!(
        policy["schedule"],
        "weekly on Monday, Thursday at 02:30 (Europe/Stockholm)"
    );
    assert_eq!(
        policy["retention"],
        "daily for 7 days; weekly (Sunday) for 12 weeks; monthly (last day) for 12 months"
    );
    assert_eq!(policy["items"][0], "fixture");

    // Immutability (enabled) refuses deleting the held point.
    let id = points[1]["id"].as_str().unwrap();
    let out = run(&["points", "delete", id, "--vault", &v]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("immutable"));

    let latest = points[2]["id"].as_str().unwrap();
    let target = env.path(&format!("restored-v{version}"));
    let restore = run(&[
        "restore",
        "--vault",
        &v,
        latest,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_same_tree(
        &fixtures().join(format!("vault-v{version}-source")),
        &target.join(format!("tmp/coffer-fixture-v{version}-src")),
    );

    // Upgraded to the current format, the journal reads on as it was.
    let out = run(&["vault", "upgrade", "--vault", &v]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("from format {version} to {FORMAT}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(vault_info(&env, &key)["format_version"], FORMAT);
    assert_checks_clean(&env, &key);
    let after = json(&run(&["points", "list", "--vault", &v, "--json"]));
    assert_eq!(&after.as_array().unwrap()[..], points, "{after}");
    let out = run(&["points", "delete", id, "--vault", &v]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("immutable"));
    let policy_after = json(&run(&[
        "policy", "show", "Fixture", "--vault", &v, "--json",
    ]));
    assert_eq!(policy_after, policy);
}

#[test]
fn the_committed_v3_vault_keeps_its_journal_state_and_upgrades() {
    journal_fixture_keeps_its_state(3);
}

#[test]
fn the_committed_v4_vault_keeps_its_journal_state() {
    journal_fixture_keeps_its_state(4);
}

#[test]
fn a_v2_vault_needs_and_survives_an_upgrade_for_policies() {
    let env = Env::without_vault();
    let key = copy_of(&env, "vault-v2");
    let run = |args: &[&str]| env.run_with_key(&key, args);
    let v = env.vault_str();
    let out = run(&["policy", "create", "P", "--daily", "3", "--vault", &v]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vault upgrade"));
    let out = run(&["vault", "upgrade", "--vault", &v]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("from format 2 to {FORMAT}")));
    assert_eq!(vault_info(&env, &key)["format_version"], FORMAT);
    let out = run(&["policy", "create", "P", "--daily", "3", "--vault", &v]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_and_restore(
        &env,
        &key,
        "v2",
        "09259498e015d5347222acba7f738ea1870ae93a3c37a6f27cdc7ca93c0488ae",
        "vault-v2-source",
        "tmp/coffer-fixture-v2-src",
    );
}

#[test]
fn the_committed_v5_vault_reads_what_its_write_only_credential_wrote() {
    let env = Env::without_vault();
    let key = copy_of(&env, "vault-v5");
    let run = |args: &[&str]| env.run_with_key(&key, args);
    let v = env.vault_str();
    assert_checks_clean(&env, &key);
    assert_eq!(vault_info(&env, &key)["format_version"], 5);

    let points = json(&run(&["points", "list", "--vault", &v, "--json"]));
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 3, "{points:?}");
    assert!(points[0]["written_by"].is_null(), "{points:?}");
    let slot = points[1]["written_by"].as_str().unwrap();
    assert_eq!(points[2]["written_by"], slot);
    assert_eq!(points[2]["parent"], points[1]["id"], "{points:?}");

    let keys = json(&run(&["key", "list", "--vault", &v, "--json"]));
    let writers: Vec<(&str, bool)> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "write-only")
        .map(|k| (k["name"].as_str().unwrap(), k["revoked"].as_bool().unwrap()))
        .collect();
    assert_eq!(writers.len(), 2, "{keys}");
    assert!(writers.contains(&("fixture-host", false)) && writers.contains(&("retired", true)));

    // The write-only point restores byte-exactly with the vault key.
    let target = env.path("restored-v5");
    let id = points[2]["id"].as_str().unwrap();
    let out = run(&[
        "restore",
        "--vault",
        &v,
        &id[..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(
        &fixtures().join("vault-v5-source"),
        &target.join("tmp/coffer-fixture-v5-src"),
    );
}

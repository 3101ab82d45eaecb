//! The committed version-1 vault must open, check and restore byte-exactly
//! in every future version of coffer.

mod common;

use common::*;
use std::path::Path;

#[test]
fn the_committed_v1_vault_opens_checks_and_restores_byte_exactly() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let env = Env::without_vault();
    // Work on a copy: the test must never alter the committed vault.
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures.join("vault-v1"))
        .arg(env.vault())
        .status()
        .unwrap();
    assert!(status.success());
    let key = std::fs::read_to_string(fixtures.join("vault-v1.key")).unwrap();
    let run = |args: &[&str]| env.run_with_key(key.trim(), args);

    let check = run(&["check", "--vault", &env.vault_str(), "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let list = run(&["points", "list", "--vault", &env.vault_str(), "--json"]);
    let points: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(points.as_array().unwrap().len(), 1);
    assert_eq!(points[0]["item"], "fixture");
    assert_eq!(points[0]["tags"][0], "v1");
    assert_eq!(
        points[0]["id"],
        "6a1776ebb44526d66aa204c5865a896dece14ddc6d4c2e73f8f20adbb9ec80da"
    );

    let target = env.path("restored");
    let restore = run(&[
        "restore",
        "--vault",
        &env.vault_str(),
        "6a1776eb",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_same_tree(
        &fixtures.join("vault-v1-source"),
        &target.join("tmp/coffer-fixture-src"),
    );
    assert_eq!(
        std::fs::read_link(target.join("tmp/coffer-fixture-src/link")).unwrap(),
        Path::new("hello.txt")
    );
}

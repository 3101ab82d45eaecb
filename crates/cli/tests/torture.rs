//! Exact restore of the shared torture tree, and incremental behaviour on it.

mod common;

use common::*;
use std::process::Command;

#[test]
fn torture_tree_restores_identically_and_incrementals_read_only_changes() {
    let torture = shared_dir().join("torture_tree.py");
    assert!(torture.exists(), "{} is missing", torture.display());
    let env = Env::new();
    let src = env.path("src");
    let made = Command::new("python3")
        .arg(&torture)
        .arg("make")
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    // Files changed less than two seconds before a backup started are read
    // again by the next one (their time stamps cannot prove them unchanged).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = env.backup(&[], &[&src]);
    assert_eq!(first["errors"].as_array().unwrap().len(), 0, "{first}");
    assert!(first["files_new"].as_u64().unwrap() > 20000);

    // Nothing changed: nothing is read.
    let second = env.backup(&[], &[&src]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files_new"], 0);
    assert_eq!(second["files_changed"], 0);

    // One file changed: only it is read, and only its new chunks are stored.
    // Rewritten at once after the backup with the same size, it may carry
    // the very time stamps it had: the next backup must notice all the same.
    std::fs::write(src.join("sizes/f4096"), vec![7u8; 4096]).unwrap();
    let third = env.backup(&[], &[&src]);
    assert_eq!(third["files_changed"], 1, "{third}");
    assert_eq!(third["bytes_read"], 4096);
    assert!(third["bytes_new"].as_u64().unwrap() < 200_000, "{third}");

    let target = env.path("restore");
    let out = env.restore("latest", &target, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmp = Command::new("python3")
        .arg(&torture)
        .arg("compare")
        .arg(&src)
        .arg(under(&target, &src))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        cmp.status.success() && report.contains(" 0 differences"),
        "{report}"
    );

    // Without the cache, the next backup is still correct and still incremental
    // for file contents (the previous point's trees are read from the vault).
    // The file changed just before the third backup started is read once
    // more: its time stamps alone cannot prove that it did not change again
    // within the same clock tick. After that it is trusted.
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let fourth = env.backup(&[], &[&src]);
    assert_eq!(fourth["bytes_read"], 4096, "{fourth}");
    let fifth = env.backup(&[], &[&src]);
    assert_eq!(fifth["bytes_read"], 0, "{fifth}");
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

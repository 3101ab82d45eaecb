//! The command-line surface: listings, ls, restore options, excludes,
//! environment variables, partial runs and input errors.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn points_list_show_and_ls_with_json() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("docs/a.txt"), 1000, 1);
    random_file(&src.join("b.bin"), 3_000_000, 2);
    let s = env.backup(
        &["--item", "web", "--tag", "daily", "--tag", "first"],
        &[&src],
    );
    let id = s["point"].as_str().unwrap().to_string();
    // The summary line is the shared BackupSummary (as a backup job's
    // result), its counters also at the top level as they always were.
    assert_eq!(s["type"], "summary");
    assert_eq!(s["item"], "web");
    assert_eq!(s["stats"]["files"], 2, "{s}");
    assert_eq!(s["files"], s["stats"]["files"], "{s}");
    assert!(s["packs_written"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["packs_adopted"], 0, "{s}");
    assert!(s["errors"].as_array().unwrap().is_empty(), "{s}");

    let list = env.ok(&["points", "list", "--vault", &env.vault_str(), "--json"]);
    let points: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let p = &points[0];
    assert_eq!(p["id"], id.as_str());
    assert_eq!(p["item"], "web");
    assert_eq!(p["tags"], serde_json::json!(["daily", "first"]));
    assert_eq!(p["stats"]["files"], 2);
    assert_eq!(p["consistency"], "crash-consistent");

    let by_item = env.ok(&[
        "points",
        "list",
        "--vault",
        &env.vault_str(),
        "--item",
        "other",
        "--json",
    ]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&by_item.stdout).unwrap(),
        serde_json::json!([])
    );

    // show by unique prefix
    let show = env.ok(&[
        "points",
        "show",
        "--vault",
        &env.vault_str(),
        &id[..8],
        "--json",
    ]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["paths"][0], src.to_str().unwrap());
    assert!(shown["stats"]["bytes_stored"].as_u64().unwrap() > 0);
    assert!(shown["host"].as_str().is_some_and(|h| !h.is_empty()));

    let text = env.ok(&["points", "show", "--vault", &env.vault_str(), &id[..8]]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("consistency  crash-consistent"));

    let ls = env.ok(&[
        "ls",
        "--vault",
        &env.vault_str(),
        "latest",
        src.join("docs").to_str().unwrap(),
        "--json",
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let paths: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            src.join("docs").to_str().unwrap(),
            src.join("docs/a.txt").to_str().unwrap()
        ]
    );
    assert_eq!(rows[1]["size"], 1000);

    let missing = env.run(&[
        "points",
        "show",
        "--vault",
        &env.vault_str(),
        "ffffffffffff",
    ]);
    assert_eq!(missing.status.code(), Some(6));
    let bad = env.run(&["points", "show", "--vault", &env.vault_str(), "not-hex"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a point id"));
}

#[test]
fn coffer_vault_env_replaces_the_flag_and_file_urls_work() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("x"), 100, 3);
    let url = format!("file://{}", env.vault_str());
    let out = env
        .command()
        .env("COFFER_VAULT", &url)
        .args(["backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = env
        .command()
        .env("COFFER_VAULT", &url)
        .args(["points", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn restore_include_and_overwrite_rules() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("keep/one"), 5000, 4);
    random_file(&src.join("skip/two"), 5000, 5);
    env.backup(&[], &[&src]);
    let target = env.path("t");

    let inc = src.join("keep");
    let out = env.restore("latest", &target, &["--include", inc.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(under(&target, &src.join("keep/one")).exists());
    assert!(!under(&target, &src.join("skip")).exists());

    // A second restore into the same place refuses, naming a file, and changes nothing.
    std::fs::write(under(&target, &src.join("keep/one")), b"local edit").unwrap();
    let again = env.restore("latest", &target, &[]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already exist") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(under(&target, &src.join("keep/one"))).unwrap(),
        b"local edit"
    );
    assert!(!under(&target, &src.join("skip")).exists());

    let forced = env.restore("latest", &target, &["--overwrite"]);
    assert!(forced.status.success());
    assert_same_tree(&src, &under(&target, &src));

    let nothing = env.restore("latest", &env.path("t2"), &["--include", "/no/such/path"]);
    assert_eq!(nothing.status.code(), Some(1));
}

#[test]
fn excludes_by_name_and_by_path() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("a.log"), 10, 1);
    random_file(&src.join("a.txt"), 10, 2);
    random_file(&src.join("cache/big"), 10, 3);
    random_file(&src.join("sub/cache/keep"), 10, 4);
    let pattern = format!("{}/cache", src.display());
    env.backup(&["--exclude", "*.log", "--exclude", &pattern], &[&src]);
    let ls = env.ok(&[
        "ls",
        "--vault",
        &env.vault_str(),
        "latest",
        src.to_str().unwrap(),
        "--json",
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let names: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("/a.txt")));
    assert!(names.iter().any(|n| n.ends_with("sub/cache/keep")));
    assert!(!names.iter().any(|n| n.ends_with(".log")));
    assert!(!names.iter().any(|n| n.ends_with("src/cache")));

    let bad = env.run(&[
        "backup",
        "--vault",
        &env.vault_str(),
        "--exclude",
        "[",
        src.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad --exclude pattern"));
}

#[test]
fn an_unreadable_file_is_recorded_listed_and_makes_the_run_partial() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("ok.txt"), 100, 1);
    random_file(&src.join("secret.txt"), 100, 2);
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let mut cmd = env.command();
    if is_root() {
        // Root reads everything: run as nobody, with everything else open to it.
        for p in [env.dir.path().to_path_buf(), src.clone()] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::set_permissions(src.join("ok.txt"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let status = std::process::Command::new("chown")
            .arg("-R")
            .arg("65534:65534")
            .arg(env.vault())
            .status()
            .unwrap();
        assert!(status.success());
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c.env("COFFER_KEY", &env.key)
            .env("COFFER_CACHE_DIR", env.path("cache-nobody"))
            .env("HOME", env.dir.path());
        cmd = c;
    }
    let out = cmd
        .args(["backup", "--vault", &env.vault_str(), src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret.txt") && err.contains("ermission denied"),
        "{err}"
    );

    let show = env.ok(&[
        "points",
        "show",
        "--vault",
        &env.vault_str(),
        "latest",
        "--json",
    ]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["errors"].as_array().unwrap().len(), 1);
    assert!(shown["errors"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("secret.txt"));

    // The readable file restores; the unreadable one is reported, not invented.
    let target = env.path("r");
    let r = env.restore("latest", &target, &[]);
    assert_eq!(r.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&r.stderr).contains("was not backed up"));
    assert_eq!(
        std::fs::read(under(&target, &src.join("ok.txt"))).unwrap(),
        std::fs::read(src.join("ok.txt")).unwrap()
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let env = Env::without_vault();
    let missing = env.run(&[
        "points",
        "list",
        "--vault",
        env.path("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no vault found"));

    let scheme = env.run(&["vault", "init", "--location", "ftp://host/x"]);
    assert_eq!(scheme.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&scheme.stderr).contains("unknown kind of location \"ftp\""));

    env.ok(&["vault", "init", "--location", &env.vault_str()]);
    let twice = env.run(&["vault", "init", "--location", &env.vault_str()]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already exists"));

    let nopath = env.run(&[
        "backup",
        "--vault",
        &env.vault_str(),
        env.path("does-not-exist").to_str().unwrap(),
    ]);
    assert_eq!(nopath.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nopath.stderr).contains("does-not-exist"));

    let pct = env.run(&[
        "check",
        "--vault",
        &env.vault_str(),
        "--read-data-subset",
        "150",
    ]);
    assert_eq!(pct.status.code(), Some(1));
}

#[test]
fn json_progress_lines_precede_the_summary() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("a"), 2_000_000, 9);
    let out = env.ok(&[
        "backup",
        "--json",
        "--vault",
        &env.vault_str(),
        src.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{text}");
    assert_eq!(lines.last().unwrap()["type"], "summary");
    let progress = &lines[lines.len() - 2];
    assert_eq!(progress["type"], "progress");
    assert_eq!(progress["files"], 1);
    assert_eq!(progress["bytes"], 2_000_000);
    // Not a terminal and no --json: no progress noise, only the summary.
    let plain = env.ok(&["backup", "--vault", &env.vault_str(), src.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("progress"));
}

#[test]
fn times_before_1970_devices_sockets_and_fifos_restore_exactly() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("ancient"), 10, 1);
    let ancient = std::process::Command::new("touch")
        .args(["-h", "-d", "1901-12-14 10:00:00.123456789 UTC"])
        .arg(src.join("ancient"))
        .status()
        .unwrap();
    assert!(ancient.success());
    let _socket = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap()
        .success());
    if is_root() {
        assert!(std::process::Command::new("mknod")
            .arg(src.join("null"))
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
        assert!(std::process::Command::new("mknod")
            .arg(src.join("blk"))
            .args(["b", "7", "200"])
            .status()
            .unwrap()
            .success());
    }
    env.backup(&[], &[&src]);
    let target = env.path("r");
    let r = env.restore("latest", &target, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let back = under(&target, &src);
    let (a, b) = (
        std::fs::metadata(src.join("ancient")).unwrap(),
        std::fs::metadata(back.join("ancient")).unwrap(),
    );
    assert!(a.mtime() < 0);
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
    assert!(std::fs::symlink_metadata(back.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    assert!(std::fs::symlink_metadata(back.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    if is_root() {
        for name in ["null", "blk"] {
            let (a, b) = (
                std::fs::symlink_metadata(src.join(name)).unwrap(),
                std::fs::symlink_metadata(back.join(name)).unwrap(),
            );
            assert_eq!(a.rdev(), b.rdev(), "{name}");
            assert_eq!(
                a.file_type().is_char_device(),
                b.file_type().is_char_device()
            );
            assert_eq!(
                a.file_type().is_block_device(),
                b.file_type().is_block_device()
            );
        }
    }
}

#[test]
fn check_read_data_subset_reads_that_share_of_the_packs() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..4u8 {
        random_file(&src.join(format!("f{i}")), 10_000_000, 20 + i);
    }
    env.backup(&[], &[&src]);
    let full = env.check(&["--read-data", "--json"]);
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    let packs = full["packs"].as_u64().unwrap();
    assert!(packs >= 3, "{full}");
    assert_eq!(full["packs_read"], packs);
    let half = env.check(&["--read-data-subset", "50", "--json"]);
    assert!(half.status.success());
    let half: serde_json::Value = serde_json::from_slice(&half.stdout).unwrap();
    assert_eq!(
        half["packs_read"].as_u64().unwrap(),
        packs.div_ceil(2),
        "{half}"
    );
    assert!(half["blobs_verified"].as_u64().unwrap() > 0);
    let none = env.check(&["--json"]);
    let none: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
    assert_eq!(none["packs_read"], 0);
    assert_eq!(none["ok"], true);
}

#[test]
fn benchmark_reports_every_stage_and_leaves_the_location_clean() {
    let env = Env::without_vault();
    let loc = env.path("bench-location");
    std::fs::create_dir_all(&loc).unwrap();
    let out = env.ok(&[
        "--json",
        "benchmark",
        "--seconds",
        "0.05",
        "--location",
        loc.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "chunking",
            "hashing",
            "compression",
            "decompression",
            "small files",
            "small, dictionary",
            "encryption",
            "storage write",
            "storage read"
        ]
    );
    for s in report["stages"].as_array().unwrap() {
        assert!(s["mib_per_second"].as_f64().unwrap() > 0.0, "{s}");
    }
    let left: Vec<_> = std::fs::read_dir(&loc)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".staging")
        .collect();
    assert!(left.is_empty(), "probe objects left behind: {left:?}");

    let bad = env.run(&["benchmark", "--seconds", "0"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--seconds"));
}

/// With a low limit on open files (soft and hard, so coffer cannot raise
/// it), restore keeps fewer files open per batch instead of failing with
/// "too many open files".
#[test]
fn restore_fits_a_low_open_file_limit() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..600 {
        random_file(
            &src.join(format!("d{}/f{i}", i % 7)),
            100 + i,
            (i % 251) as u8,
        );
    }
    env.backup(&[], &[&src]);
    let target = env.path("t");
    let script = format!(
        "ulimit -n 100 && exec \"$0\" restore --vault '{}' latest --target '{}'",
        env.vault_str(),
        target.display()
    );
    let out = env
        .command_for("sh")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(&src, &under(&target, &src));
}

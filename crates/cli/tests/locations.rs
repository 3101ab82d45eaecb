//! Storage locations against real servers started on 127.0.0.1 (see the
//! `coffer-testservers` crate): the engine's backup → restore → check on
//! every kind, and the location test's classification of each failure.

mod common;

use std::path::Path;
use std::process::Output;

use coffer_testservers::{Kind, Server};
use common::{assert_same_tree, random_file, summary, under, Env};

/// An environment whose commands carry a server's credentials.
struct Remote {
    env: Env,
    server: Server,
}

impl Remote {
    fn start(kind: Kind) -> Remote {
        Remote {
            env: Env::without_vault(),
            server: Server::start(kind),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.env.command();
        self.server.apply_env(&mut cmd);
        cmd.args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coffer {args:?} on {:?} failed with {:?}\nstdout: {}\nstderr: {}\nserver log: {}",
            self.server.kind,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
        out
    }
}

/// The JSON document a `--json` command printed (pretty, several lines).
fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: not JSON: {}", text(out)))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::write(root.join("etc/app/config.toml"), "listen = \"127.0.0.1\"\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    random_file(&root.join("data/blob.bin"), 3 << 20, 1);
    for i in 0..40 {
        std::fs::write(
            root.join(format!("etc/app/part-{i}.txt")),
            format!("part {i}\n").repeat(50),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("etc/app/config.toml", root.join("link")).unwrap();
}

/// Init, two backups, restore of both points, `check --read-data` and the
/// location test, all against one real server.
fn round_trip(kind: Kind) {
    let r = Remote::start(kind);
    let loc = r.server.location.clone();
    let probe = r.ok(&["location", "test", "--json", &loc]);
    let report = json(&probe);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["holds_vault"], false);

    r.ok(&["vault", "init", "--location", &loc]);
    let src = r.env.path("src");
    make_tree(&src);
    let s = src.to_str().unwrap();
    let first = summary(&r.ok(&["backup", "--json", "--vault", &loc, s]));
    let first_id = first["point"].as_str().unwrap().to_string();
    let saved = r.env.path("saved");
    std::fs::create_dir_all(&saved).unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&saved)
        .status()
        .unwrap();
    assert!(cp.success());

    // Change a little: the second backup reads only that.
    std::fs::write(src.join("etc/app/config.toml"), "listen = \"0.0.0.0\"\n").unwrap();
    random_file(&src.join("data/new.bin"), 200_000, 2);
    std::fs::remove_file(src.join("etc/app/part-3.txt")).unwrap();
    let second = summary(&r.ok(&["backup", "--json", "--vault", &loc, s]));
    assert_eq!(second["files"], 43, "{second}");

    let target = r.env.path("restored-latest");
    r.ok(&[
        "restore",
        "--vault",
        &loc,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &under(&target, &src));
    let target = r.env.path("restored-first");
    r.ok(&[
        "restore",
        "--vault",
        &loc,
        &first_id,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&saved.join("src"), &under(&target, &src));

    let check = r.ok(&["check", "--read-data", "--vault", &loc]);
    assert!(
        text(&check).contains("no problems found"),
        "{}",
        text(&check)
    );
    let again = json(&r.ok(&["location", "test", "--json", &loc]));
    assert_eq!(again["holds_vault"], true, "{again}");
}

#[test]
fn s3_round_trip() {
    round_trip(Kind::S3);
}

#[test]
fn azure_blob_round_trip() {
    round_trip(Kind::AzBlob);
}

#[test]
fn gcs_round_trip() {
    round_trip(Kind::Gcs);
}

#[test]
fn sftp_round_trip() {
    round_trip(Kind::Sftp);
}

#[test]
fn webdav_round_trip() {
    round_trip(Kind::WebDav);
}

/// Runs the location test and returns its JSON report and all output.
fn location_test(r: &Remote, loc: &str, env: &[(&str, &str)]) -> (serde_json::Value, String) {
    let mut cmd = r.env.command();
    r.server.apply_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["location", "test", "--json", loc])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "the test must fail: {all}");
    (json(&out), all)
}

#[test]
fn missing_bucket_and_container_are_path_not_found() {
    let s3 = Remote::start(Kind::S3);
    let loc = s3
        .server
        .location
        .replace("s3://coffer/", "s3://no-such-bucket/");
    let (report, all) = location_test(&s3, &loc, &[]);
    assert_eq!(report["failure"], "path not found", "{all}");
    assert!(all.contains("create the bucket"), "{all}");

    let az = Remote::start(Kind::AzBlob);
    let loc = az
        .server
        .location
        .replace("azblob://coffer/", "azblob://nocontainer/");
    let (report, all) = location_test(&az, &loc, &[]);
    assert_eq!(report["failure"], "path not found", "{all}");
}

#[test]
fn a_closed_port_is_unreachable() {
    let mut s3 = Remote::start(Kind::S3);
    s3.server.kill();
    let started = std::time::Instant::now();
    let (report, all) = location_test(&s3, &s3.server.location.clone(), &[]);
    assert_eq!(report["failure"], "unreachable", "{all}");
    assert!(all.contains("server is running"), "{all}");
    assert!(
        started.elapsed().as_secs() < 20,
        "a diagnosis must not take a minute"
    );

    // A name that does not resolve (.invalid never does) is unreachable too.
    let (report, all) = location_test(
        &s3,
        "s3://coffer/x?endpoint=http://no-such-host.invalid:9000",
        &[],
    );
    assert_eq!(report["failure"], "unreachable", "{all}");
}

#[test]
fn refused_credentials_are_authentication_failures_and_never_printed() {
    let dav = Remote::start(Kind::WebDav);
    let wrong = "not-the-password-4711";
    let (report, all) = location_test(
        &dav,
        &dav.server.location.clone(),
        &[("COFFER_WEBDAV_PASSWORD", wrong)],
    );
    assert_eq!(report["failure"], "authentication failed", "{all}");
    assert!(!all.contains(wrong), "a secret was printed: {all}");

    let az = Remote::start(Kind::AzBlob);
    // A valid base64 key that is not the account's.
    let other = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==";
    let (report, all) = location_test(
        &az,
        &az.server.location.clone(),
        &[("AZURE_STORAGE_ACCOUNT_KEY", other)],
    );
    assert_eq!(report["failure"], "authentication failed", "{all}");
    assert!(!all.contains(other), "a secret was printed: {all}");

    let sftp = Remote::start(Kind::Sftp);
    let stranger = sftp.env.path("stranger_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    let (report, all) = location_test(
        &sftp,
        &sftp.server.location.clone(),
        &[("COFFER_SFTP_KEY_FILE", stranger.to_str().unwrap())],
    );
    assert_eq!(report["failure"], "authentication failed", "{all}");
}

#[test]
fn an_unknown_ssh_host_key_is_not_trusted() {
    let sftp = Remote::start(Kind::Sftp);
    // The test host key is trusted for 127.0.0.1 only.
    let loc = sftp.server.location.replace("@127.0.0.1:", "@localhost:");
    let (report, all) = location_test(&sftp, &loc, &[]);
    assert_eq!(
        report["failure"], "authentication failed: the server's host key is not trusted",
        "{all}"
    );
    assert!(all.contains("known_hosts"), "{all}");
}

#[test]
fn credentials_that_may_only_read_are_permission_denied() {
    let az = Remote::start(Kind::AzBlob);
    let sas = coffer_testservers::azure_sas("rl");
    let mut cmd = az.env.command();
    cmd.env("AZURE_STORAGE_SAS_TOKEN", &sas);
    let out = cmd
        .args(["location", "test", "--json", &az.server.location])
        .output()
        .unwrap();
    let report = json(&out);
    assert_eq!(report["failure"], "permission denied", "{report}");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps[0]["ok"], true, "listing is allowed: {report}");
    assert_eq!(steps[1]["ok"], false, "writing is not: {report}");
    assert!(!text(&out).contains(&sas), "the SAS token was printed");
}

#[test]
fn credentials_come_from_a_file_and_secrets_never_from_the_location() {
    let r = Remote::start(Kind::WebDav);
    let file = r.env.path("credentials");
    let lines: Vec<String> = r
        .server
        .credentials
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    std::fs::write(
        &file,
        format!("# WebDAV test server\n{}\n", lines.join("\n")),
    )
    .unwrap();
    // Without the server's variables in the environment.
    let out = r
        .env
        .command()
        .args([
            "--credentials",
            file.to_str().unwrap(),
            "location",
            "test",
            &r.server.location,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let with_password = "sftp://root:hunter2-secret@127.0.0.1:22/srv";
    let out = r
        .env
        .command()
        .args(["location", "test", with_password])
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains("contains a password"), "{all}");
    assert!(
        !all.contains("hunter2-secret"),
        "the password was echoed: {all}"
    );

    let out = r
        .env
        .command()
        .args(["location", "test", "s3://b/p?secret_access_key=abc"])
        .output()
        .unwrap();
    assert!(text(&out).contains("looks like a secret"), "{}", text(&out));

    std::fs::write(&file, "AWS_SECRET_KEY=x\n").unwrap();
    let out = r
        .env
        .command()
        .args([
            "--credentials",
            file.to_str().unwrap(),
            "location",
            "test",
            "/tmp",
        ])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("unknown credential \"AWS_SECRET_KEY\""),
        "{}",
        text(&out)
    );
}

/// A small tmpfs mounted for one test and unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (the test suite runs as root)"
        );
        SmallDisk { path }
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[test]
fn a_full_disk_fails_with_out_of_capacity_and_loses_nothing() {
    let env = Env::without_vault();
    // Room for one 8 MiB pack, not for two.
    let disk = SmallDisk::mount(env.path("small"), "12m");
    let vault = disk.path.join("vault");
    let v = vault.to_str().unwrap();
    env.ok(&["vault", "init", "--location", v]);
    let first_src = env.path("first");
    make_small_tree(&first_src);
    let first = summary(&env.ok(&[
        "backup",
        "--json",
        "--vault",
        v,
        first_src.to_str().unwrap(),
    ]));

    // Far more than fits, and incompressible.
    let big = env.path("big");
    random_file(&big.join("a.bin"), 9 << 20, 7);
    random_file(&big.join("b.bin"), 9 << 20, 8);
    let out = env.run(&["backup", "--vault", v, big.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("out of capacity"), "{all}");
    assert!(all.contains("free space"), "the remedy: {all}");

    let probe = env.run(&["location", "test", "--json", v]);
    let report = json(&probe);
    assert_eq!(report["failure"], "out of capacity", "{report}");

    // Nothing committed before is lost.
    let check = env.ok(&["check", "--read-data", "--vault", v]);
    assert!(
        text(&check).contains("no problems found"),
        "{}",
        text(&check)
    );
    let target = env.path("restored");
    env.ok(&[
        "restore",
        "--vault",
        v,
        first["point"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&first_src, &under(&target, &first_src));

    // With room again, the next backup succeeds and reuses what was uploaded.
    disk.resize("64m");
    let again = summary(&env.ok(&["backup", "--json", "--vault", v, big.to_str().unwrap()]));
    assert!(again["packs_adopted"].as_u64().unwrap() > 0, "{again}");
    let target = env.path("restored-big");
    env.ok(&[
        "restore",
        "--vault",
        v,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&big, &under(&target, &big));
    let check = env.ok(&["check", "--read-data", "--vault", v]);
    assert!(
        text(&check).contains("no problems found"),
        "{}",
        text(&check)
    );
}

fn make_small_tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..10 {
        std::fs::write(
            root.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(100),
        )
        .unwrap();
    }
}

/// Every file under `root`, with its size.
fn files_under(root: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                files.push((path, len));
            }
        }
    }
    files
}

/// Files under a server's data directory (each server stores objects its
/// own way; Azurite in extent files), to see uploads arrive.
fn count_files(dir: &Path) -> usize {
    files_under(dir).len()
}

/// Files in directories named `dir` under `root`.
fn count_files_under(root: &Path, dir: &str) -> usize {
    files_under(root)
        .iter()
        .filter(|(p, _)| {
            p.ancestors()
                .any(|a| a.file_name().is_some_and(|f| f == dir))
        })
        .count()
}

/// The storage server is killed in the middle of a backup and started
/// again: the backup rides it out (retries with backoff) or fails with a
/// classified error; either way the vault stays consistent and the next
/// backup succeeds, reusing what was uploaded.
fn killed_mid_backup(kind: Kind) {
    let mut r = Remote::start(kind);
    let loc = r.server.location.clone();
    r.ok(&["vault", "init", "--location", &loc]);
    let src = r.env.path("src");
    let data = r.server.dir.path().join("data");
    let before = count_files(&data);
    for i in 0..6 {
        random_file(&src.join(format!("big-{i}.bin")), 6 << 20, 20 + i as u8);
    }
    let mut cmd = r.env.command();
    r.server.apply_env(&mut cmd);
    let child = cmd
        .args(["backup", "--json", "--vault", &loc, src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count_files(&data) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no pack was ever uploaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    match kind {
        Kind::AzBlob => r.server.terminate(),
        _ => r.server.kill(),
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    r.server.restart();
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    eprintln!(
        "{kind:?}: the backup during the outage {}",
        if out.status.success() {
            "rode it out".to_string()
        } else {
            format!("failed cleanly: {}", String::from_utf8_lossy(&out.stderr))
        }
    );
    if !out.status.success() {
        // A clean failure names its class.
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(
            all.contains("unreachable") || all.contains("storage error"),
            "{all}"
        );
    }

    let check = r.ok(&["check", "--read-data", "--vault", &loc]);
    assert!(
        text(&check).contains("no problems found"),
        "{}",
        text(&check)
    );
    // Whole packs the failed backup left behind (visible as files on the
    // SFTP and WebDAV servers) are adopted, not uploaded again.
    let stranded = count_files_under(&data, "packs");
    let next = summary(&r.ok(&["backup", "--json", "--vault", &loc, src.to_str().unwrap()]));
    if !out.status.success() && stranded > 0 {
        assert!(next["packs_adopted"].as_u64().unwrap() > 0, "{next}");
    }
    let target = r.env.path("restored");
    r.ok(&[
        "restore",
        "--vault",
        &loc,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &under(&target, &src));
}

#[test]
fn webdav_server_killed_mid_backup_loses_nothing() {
    killed_mid_backup(Kind::WebDav);
}

#[test]
fn sftp_server_killed_mid_backup_loses_nothing() {
    killed_mid_backup(Kind::Sftp);
}

#[test]
fn azure_server_killed_mid_backup_loses_nothing() {
    killed_mid_backup(Kind::AzBlob);
}

/// Uploads and downloads held to a limit: the achieved rate is measured
/// against a real WebDAV server and must be within 20% of the limit.
#[test]
fn bandwidth_limits_hold_within_twenty_percent() {
    let r = Remote::start(Kind::WebDav);
    let loc = r.server.location.clone();
    r.ok(&["vault", "init", "--location", &loc]);
    let src = r.env.path("src");
    for i in 0..3 {
        random_file(&src.join(format!("r{i}.bin")), 8 << 20, 40 + i as u8);
    }
    let limit: f64 = 8.0 * 1024.0 * 1024.0;
    let started = std::time::Instant::now();
    let up = summary(&r.ok(&[
        "--limit-upload",
        "8M",
        "backup",
        "--json",
        "--vault",
        &loc,
        src.to_str().unwrap(),
    ]));
    let seconds = started.elapsed().as_secs_f64();
    let rate = up["bytes_stored"].as_f64().unwrap() / seconds;
    eprintln!("upload: {:.2} MiB/s in {seconds:.2} s", rate / 1048576.0);
    assert!(
        (rate - limit).abs() <= 0.2 * limit,
        "upload at {:.2} MiB/s against a limit of 8 MiB/s ({seconds:.2} s)",
        rate / 1048576.0
    );

    let target = r.env.path("restored");
    let started = std::time::Instant::now();
    r.ok(&[
        "--limit-download",
        "8M",
        "restore",
        "--vault",
        &loc,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    let seconds = started.elapsed().as_secs_f64();
    let rate = up["bytes_stored"].as_f64().unwrap() / seconds;
    eprintln!("download: {:.2} MiB/s in {seconds:.2} s", rate / 1048576.0);
    assert!(
        (rate - limit).abs() <= 0.2 * limit,
        "download at {:.2} MiB/s against a limit of 8 MiB/s ({seconds:.2} s)",
        rate / 1048576.0
    );
    assert_same_tree(&src, &under(&target, &src));

    let bad = r.run(&["--limit-upload", "fast", "location", "test", &loc]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("use K, M or G"), "{}", text(&bad));
}

/// A vault on a local path with a synchronous replica on S3 and an
/// asynchronous one on WebDAV: the sync replica has every committed point at
/// once, the async one after `vault replicate`; with the primary deleted,
/// restore and check read from the replicas.
#[test]
fn replicas_keep_the_vault_when_the_primary_is_gone() {
    let env = Env::without_vault();
    let s3 = Server::start(Kind::S3);
    let dav = Server::start(Kind::WebDav);
    let run = |args: &[&str]| {
        let mut cmd = env.command();
        s3.apply_env(&mut cmd);
        dav.apply_env(&mut cmd);
        cmd.args(args).output().unwrap()
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "coffer {args:?}: {}", text(&out));
        out
    };
    let primary = env.vault_str();
    ok(&["vault", "init", "--location", &primary]);
    ok(&[
        "vault",
        "replica",
        "add",
        "--vault",
        &primary,
        &s3.location,
        "--mode",
        "sync",
    ]);
    ok(&[
        "vault",
        "replica",
        "add",
        "--vault",
        &primary,
        &dav.location,
        "--mode",
        "async",
    ]);

    let src = env.path("src");
    make_tree(&src);
    let point = summary(&ok(&[
        "backup",
        "--json",
        "--vault",
        &primary,
        src.to_str().unwrap(),
    ]))["point"]
        .as_str()
        .unwrap()
        .to_string();

    // The synchronous replica got the point with the backup; the
    // asynchronous one is behind until replication runs.
    let listed = text(&ok(&[
        "--from-replica",
        &s3.location,
        "points",
        "list",
        "--vault",
        &primary,
    ]));
    assert!(listed.contains(&point[..12]), "{listed}");
    let replicas = json(&ok(&[
        "vault", "replica", "list", "--json", "--vault", &primary,
    ]));
    let by_location = |loc: &str| {
        replicas["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["location"] == loc)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_location(&s3.location)["missing_points"], 0, "{replicas}");
    assert_eq!(by_location(&s3.location)["mode"], "sync");
    assert_eq!(
        by_location(&dav.location)["missing_points"],
        1,
        "{replicas}"
    );

    let replicated = text(&ok(&["vault", "replicate", "--vault", &primary]));
    assert!(replicated.contains("copied and verified"), "{replicated}");
    let replicas = json(&ok(&[
        "vault", "replica", "list", "--json", "--vault", &primary,
    ]));
    for r in replicas["replicas"].as_array().unwrap() {
        assert_eq!(r["missing_objects"], 0, "{replicas}");
        assert!(r["lag_seconds"].as_i64().unwrap() < 60, "{replicas}");
    }

    // The primary is lost.
    std::fs::remove_dir_all(env.vault()).unwrap();
    let target = env.path("restored-auto");
    let out = ok(&[
        "restore",
        "--vault",
        &primary,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        text(&out).contains("reading from its replica"),
        "{}",
        text(&out)
    );
    assert_same_tree(&src, &under(&target, &src));

    let target = env.path("restored-dav");
    ok(&[
        "--from-replica",
        &dav.location,
        "restore",
        "--vault",
        &primary,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &under(&target, &src));
    for replica in [&s3.location, &dav.location] {
        let check = ok(&[
            "--from-replica",
            replica,
            "check",
            "--read-data",
            "--vault",
            &primary,
        ]);
        assert!(
            text(&check).contains("no problems found"),
            "{}",
            text(&check)
        );
    }

    let refused = run(&[
        "--from-replica",
        &dav.location,
        "backup",
        "--vault",
        &primary,
        src.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("--from-replica is for reading"),
        "{}",
        text(&refused)
    );
}

/// A remote vault (WebDAV) with a local tier keeping 7 days: the tier gets
/// the recent point's data and not the old one's; restoring the recent point
/// reads only the tier, the old one reads the remote location.
#[test]
fn a_local_tier_serves_recent_points_and_the_remote_the_rest() {
    let r = Remote::start(Kind::WebDav);
    let loc = r.server.location.clone();
    r.ok(&["vault", "init", "--location", &loc]);
    let old_src = r.env.path("old");
    random_file(&old_src.join("old.bin"), 3 << 20, 61);
    let month_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 30);
    let old = summary(&r.ok(&[
        "backup",
        "--json",
        "--vault",
        &loc,
        "--time",
        &month_ago.to_string(),
        old_src.to_str().unwrap(),
    ]));
    let new_src = r.env.path("new");
    random_file(&new_src.join("new.bin"), 3 << 20, 62);
    r.ok(&[
        "backup",
        "--json",
        "--vault",
        &loc,
        new_src.to_str().unwrap(),
    ]);

    let tier = r.env.path("tier");
    let set = text(&r.ok(&[
        "vault",
        "tier",
        "set",
        "--vault",
        &loc,
        "--local",
        tier.to_str().unwrap(),
        "--days",
        "7",
    ]));
    assert!(set.contains("1 point(s)"), "{set}");
    let tier_bytes: u64 = walk_sizes(&tier.join("packs"));
    assert!(
        tier_bytes > 3 << 20 && tier_bytes < 5 << 20,
        "the tier holds the recent data only: {tier_bytes} bytes"
    );

    let target = r.env.path("restored-new");
    let new = summary(&r.ok(&[
        "restore",
        "--json",
        "--vault",
        &loc,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]));
    assert_same_tree(&new_src, &under(&target, &new_src));
    // Only what opening the vault reads before it knows of the tier (the
    // header, a key slot, the journal) comes from the remote location.
    assert!(
        new["bytes_from_location"].as_u64().unwrap() < 16 << 10,
        "{new}"
    );
    assert!(
        new["bytes_from_local_tier"].as_u64().unwrap() > 3 << 20,
        "{new}"
    );

    let target = r.env.path("restored-old");
    let old_restore = summary(&r.ok(&[
        "restore",
        "--json",
        "--vault",
        &loc,
        old["point"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]));
    assert_same_tree(&old_src, &under(&target, &old_src));
    assert!(
        old_restore["bytes_from_location"].as_u64().unwrap() > 3 << 20,
        "{old_restore}"
    );

    // New backups land in the tier as they are written.
    random_file(&new_src.join("newer.bin"), 1 << 20, 63);
    r.ok(&["backup", "--vault", &loc, new_src.to_str().unwrap()]);
    assert!(walk_sizes(&tier.join("packs")) > tier_bytes + (1 << 20));

    // Without the tier's directory the vault still works, from the remote.
    std::fs::remove_dir_all(&tier).unwrap();
    let target = r.env.path("restored-without-tier");
    r.ok(&[
        "restore",
        "--vault",
        &loc,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&new_src, &under(&target, &new_src));
}

fn walk_sizes(dir: &Path) -> u64 {
    files_under(dir).iter().map(|(_, len)| len).sum()
}

/// With the primary's server down (not merely empty), reading falls back
/// to a replica at once instead of waiting out the outage.
#[test]
fn an_unreachable_primary_falls_back_to_a_replica_quickly() {
    let mut r = Remote::start(Kind::WebDav);
    let loc = r.server.location.clone();
    r.ok(&["vault", "init", "--location", &loc]);
    let replica = r.env.path("replica");
    r.ok(&[
        "vault",
        "replica",
        "add",
        "--vault",
        &loc,
        replica.to_str().unwrap(),
    ]);
    let src = r.env.path("src");
    make_small_tree(&src);
    r.ok(&["backup", "--vault", &loc, src.to_str().unwrap()]);
    r.ok(&["vault", "replicate", "--vault", &loc]);
    r.server.kill();
    let started = std::time::Instant::now();
    let target = r.env.path("restored");
    let out = r.ok(&[
        "restore",
        "--vault",
        &loc,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        text(&out).contains("reading from its replica"),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "fell back after {:?}",
        started.elapsed()
    );
    assert_same_tree(&src, &under(&target, &src));
}

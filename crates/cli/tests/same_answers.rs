//! The local command line (on a vault location) and the remote one
//! (`--server`, through the real service) speak one grammar and answer in
//! the same shared types: the same command gives the same JSON and refuses
//! the same bad input in the same words, with the same exit code.

mod common;
mod service_harness;

use std::path::Path;
use std::process::{Command, Output};

use common::BIN;
use serde_json::Value;
use service_harness::{scratch, Server};

struct Both<'a> {
    root: String,
    token: String,
    key: String,
    vault: &'a Path,
    home: &'a Path,
}

impl Both<'_> {
    fn remote(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--server", &self.root])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COFFER_TOKEN", &self.token)
            .output()
            .unwrap()
    }

    fn local(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home)
            .env("COFFER_KEY", &self.key)
            .env("COFFER_VAULT", self.vault)
            .output()
            .unwrap()
    }
}

fn assert_succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(out: &Output) -> Value {
    assert_succeeded(out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The reason of the first error line, after the name of what is wrong
/// (the service names a request field, the command line its flag).
fn reason(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().next().unwrap_or("");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((_, reason)) => reason.to_string(),
        None => line.to_string(),
    }
}

#[test]
fn policies_read_and_refuse_the_same_locally_and_through_the_service() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let vault = dir.path().join("vault");
    let key = api.create_vault("rv", &vault)["generated_key"]
        .as_str()
        .unwrap()
        .to_string();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let both = Both {
        root: server.base.trim_end_matches("/api/v1").to_string(),
        token: api.token.clone(),
        key,
        vault: &vault,
        home: &home,
    };
    let flags = [
        "--schedule",
        "weekly mon,thu 02:30",
        "--time-zone",
        "Europe/Stockholm",
        "--daily",
        "7",
        "--weekly",
        "12",
        "--monthly",
        "12",
        "--monthly-day",
        "last",
    ];

    // Created remotely, shown by both.
    let mut create = vec!["policy", "create", "Office", "--vault", "rv"];
    create.extend_from_slice(&flags);
    json_of(&both.remote(&[&["--json"], &create[..]].concat()));
    let remote = json_of(&both.remote(&["--json", "policy", "show", "Office", "--vault", "rv"]));
    let local = json_of(&both.local(&["--json", "policy", "show", "Office"]));
    assert_eq!(remote, local);
    assert_eq!(remote["rules"]["monthly"]["day"], "last", "{remote}");
    assert_eq!(
        remote["retention"],
        "daily for 7 days; weekly (Sunday) for 12 weeks; monthly (last day) for 12 months"
    );

    // Changed locally (only the flag given changes), listed by both.
    json_of(&both.local(&[
        "--json",
        "policy",
        "set",
        "Office",
        "--weekly-day",
        "friday",
    ]));
    let remote = json_of(&both.remote(&["--json", "policy", "list", "--vault", "rv"]));
    let local = json_of(&both.local(&["--json", "policy", "list"]));
    assert_eq!(remote, local);
    let office = remote
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Office")
        .unwrap();
    assert_eq!(office["rules"]["weekly"]["weekday"], "friday", "{office}");
    assert_eq!(office["rules"]["weekly"]["weeks"], 12, "{office}");
    assert_eq!(office["schedule_spec"], "weekly mon,thu 02:30", "{office}");

    // The same bad input is refused in the same words and exit code.
    for bad in [
        &["--schedule", "fortnightly"][..],
        &["--weekly-day", "funday"],
        &["--monthly-day", "30"],
        &["--time-zone", "Moon/Base"],
        &["--remove", "hourly"],
    ] {
        let remote = both.remote(&[&["policy", "set", "Office", "--vault", "rv"], bad].concat());
        let local = both.local(&[&["policy", "set", "Office"], bad].concat());
        assert!(
            !remote.status.success() && !local.status.success(),
            "{bad:?}"
        );
        assert_eq!(remote.status.code(), local.status.code(), "{bad:?}");
        let (remote, local) = (reason(&remote), reason(&local));
        assert!(
            !local.is_empty() && remote.starts_with(&local),
            "{bad:?}: {remote} / {local}"
        );
    }
}

#[test]
fn a_missing_thing_exits_not_found_through_the_service_as_locally() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let out = Command::new(BIN)
        .args(["--server", server.base.trim_end_matches("/api/v1")])
        .args(["item", "show", "nothing-by-this-name"])
        .env_clear()
        .env("COFFER_TOKEN", &api.token)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found") && err.contains("hint: "), "{err}");
}

/// The summary line of a `--json` backup or restore (progress lines aside).
fn summary_of(out: &Output) -> Value {
    assert_succeeded(out);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(r#""type":"summary""#))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    serde_json::from_str(line).unwrap()
}

/// What a point stores of the directories above the backed-up path changes
/// whenever another process creates or removes an entry in them, as parallel
/// tests do in the scratch root: these counters may differ by those few trees.
const ANCESTOR_DEPENDENT: [&str; 3] = ["bytes_new", "bytes_stored", "packs_written"];

/// A backup summary without what differs between two backups of the same
/// unchanged tree: the point's id, how long it took, and what storing the
/// changed ancestors cost (only its being a number is compared).
fn comparable(mut summary: Value) -> Value {
    let fields = summary.as_object_mut().unwrap();
    fields.remove("point");
    fields.remove("duration_ms");
    blank_counts(fields);
    let stats = fields["stats"].as_object_mut().unwrap();
    stats.remove("duration_ms");
    blank_counts(stats);
    summary
}

fn blank_counts(fields: &mut serde_json::Map<String, Value>) {
    for counter in ANCESTOR_DEPENDENT {
        if let Some(value) = fields.get_mut(counter) {
            assert!(value.is_u64(), "{counter} is not a count: {value}");
            *value = Value::Null;
        }
    }
}

#[test]
fn points_ls_restore_and_backup_answer_the_same_locally_and_through_the_service() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let vault = dir.path().join("vault");
    let key = api.create_vault("rv", &vault)["generated_key"]
        .as_str()
        .unwrap()
        .to_string();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), vec![7u8; 300_000]).unwrap();
    std::fs::write(src.join("sub/deeper/c.txt"), b"gamma\n").unwrap();
    std::os::unix::fs::symlink("sub/b.txt", src.join("link")).unwrap();
    api.create_item("files", "rv", &src, 0);
    let both = Both {
        root: server.base.trim_end_matches("/api/v1").to_string(),
        token: api.token.clone(),
        key,
        vault: &vault,
        home: &home,
    };
    let src_arg = src.to_str().unwrap();

    // The first point locally; then the same unchanged tree once through
    // the service and once more locally report the same backup.
    summary_of(&both.local(&["--json", "backup", "--item", "files", src_arg]));
    let remote = summary_of(&both.remote(&[
        "--json", "backup", "--vault", "rv", "--item", "files", src_arg,
    ]));
    let local = summary_of(&both.local(&["--json", "backup", "--item", "files", src_arg]));
    assert_eq!(comparable(remote.clone()), comparable(local), "{remote}");
    assert_eq!(remote["files"], 3, "{remote}");

    // A path the item does not back up is refused, naming the way that works.
    let other = both.remote(&["backup", "--item", "files", "/etc"]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("local mode"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );

    let remote = json_of(&both.remote(&["--json", "points", "list", "--vault", "rv"]));
    let local = json_of(&both.local(&["--json", "points", "list"]));
    assert_eq!(remote, local);
    assert_eq!(remote.as_array().unwrap().len(), 3, "{remote}");
    assert_eq!(remote[0]["paths"][0], src_arg, "{remote}");
    assert_eq!(remote[2]["status"], "live", "{remote}");

    let inner = format!("{src_arg}/sub");
    for args in [vec!["latest"], vec!["latest", inner.as_str()]] {
        let remote =
            json_of(&both.remote(&[&["--json", "ls", "--vault", "rv"], &args[..]].concat()));
        let local = json_of(&both.local(&[&["--json", "ls"], &args[..]].concat()));
        assert_eq!(remote, local, "{args:?}");
        let paths: Vec<&str> = remote
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert!(
            paths.contains(&format!("{inner}/deeper/c.txt").as_str()),
            "{paths:?}"
        );
    }
    let missing = format!("{src_arg}/nothing");
    let remote = both.remote(&["ls", "--vault", "rv", "latest", &missing]);
    let local = both.local(&["ls", "latest", &missing]);
    assert_eq!(remote.status.code(), local.status.code());
    assert_eq!(reason(&remote), reason(&local));

    // The service restores under its restore root, the command line where
    // it is told; both report the same restore and write the same files.
    let remote_target = dir.path().join("data/restores/r1");
    let local_target = dir.path().join("restored");
    let remote = summary_of(&both.remote(&[
        "--json",
        "restore",
        "--vault",
        "rv",
        "latest",
        "--target",
        remote_target.to_str().unwrap(),
    ]));
    let local = summary_of(&both.local(&[
        "--json",
        "restore",
        "latest",
        "--target",
        local_target.to_str().unwrap(),
    ]));
    assert_eq!(remote, local);
    assert_eq!(remote["files"], 3, "{remote}");
    for target in [&remote_target, &local_target] {
        let inside = target.join(src.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read(inside.join("sub/b.txt")).unwrap(),
            vec![7u8; 300_000]
        );
        assert_eq!(
            std::fs::read_link(inside.join("link")).unwrap(),
            Path::new("sub/b.txt")
        );
    }
}

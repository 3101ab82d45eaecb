//! Safety: interrupted backups, concurrent writers without a lock, and damage
//! anywhere in the vault found and contained.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn kill_9_at_any_moment_leaves_a_consistent_vault_and_the_next_backup_reuses_uploads() {
    let env = Env::new();
    let first = env.path("first");
    random_file(&first.join("f"), 200_000, 1);
    let first_point = env.backup(&[], &[&first])["point"]
        .as_str()
        .unwrap()
        .to_string();

    let src = env.path("src");
    for i in 0..12 {
        random_file(&src.join(format!("part{i}")), 8_000_000, 10 + i as u8);
    }
    let mut saw_leftovers = false;
    for delay_ms in [30u64, 120, 250, 400, 600, 900] {
        let mut child = env
            .command()
            .args(["backup", "--vault", &env.vault_str(), src.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let check = env.check(&["--read-data", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(
            report["ok"], true,
            "after a kill at {delay_ms} ms: {report}"
        );
        saw_leftovers |= report["unindexed_packs"].as_u64().unwrap() > 0;

        let target = env.path(&format!("r{delay_ms}"));
        let r = env.restore(&first_point, &target, &[]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_same_tree(&first, &under(&target, &first));
        std::fs::remove_dir_all(&target).unwrap();
    }
    assert!(
        saw_leftovers,
        "no kill landed while packs were being uploaded"
    );

    // Killed runs that completed anyway leave points for src; find out how
    // much the final backup has to send compared with the data's size.
    let last = env.backup(&["--item", "after-kills"], &[&src]);
    let total = 12 * 8_000_000u64;
    assert!(
        last["packs_adopted"].as_u64().unwrap() > 0 || last["bytes_new"].as_u64().unwrap() < total,
        "nothing uploaded before the kills was reused: {last}"
    );
    assert!(last["bytes_new"].as_u64().unwrap() < total, "{last}");
    let target = env.path("final");
    let r = env.restore(last["point"].as_str().unwrap(), &target, &[]);
    assert!(r.status.success());
    assert_same_tree(&src, &under(&target, &src));
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn concurrent_backups_into_one_vault_all_succeed_without_a_lock() {
    let env = Env::new();
    let mut dirs = Vec::new();
    for i in 0..4u8 {
        let d = env.path(&format!("src{i}"));
        random_file(&d.join("own"), 3_000_000, 40 + i);
        // shared content: the same chunk uploaded by several writers at once
        random_file(&d.join("shared"), 3_000_000, 99);
        dirs.push(d);
    }
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            env.command()
                .args([
                    "backup",
                    "--json",
                    "--vault",
                    &env.vault_str(),
                    d.to_str().unwrap(),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut points = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        points.push(summary(&out)["point"].as_str().unwrap().to_string());
    }
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    for (d, p) in dirs.iter().zip(&points) {
        let target = env.path(&format!("r-{}", &p[..8]));
        let r = env.restore(p, &target, &[]);
        assert!(r.status.success());
        assert_same_tree(d, &under(&target, d));
    }
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = offset.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_a_data_pack_is_named_by_check_and_costs_restore_only_the_affected_file() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..6u8 {
        random_file(&src.join(format!("file{i}")), 1_500_000, i);
    }
    env.backup(&[], &[&src]);
    let packs = files_under(&env.vault().join("packs"));
    let data_pack = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    flip(data_pack, 100); // inside the first blob

    let check = env.check(&["--read-data"]);
    assert_eq!(check.status.code(), Some(5));
    let out = String::from_utf8_lossy(&check.stdout);
    let name = data_pack.file_name().unwrap().to_str().unwrap();
    assert!(out.contains(name), "check did not name the pack:\n{out}");

    let target = env.path("r");
    let r = env.restore("latest", &target, &[]);
    assert_eq!(r.status.code(), Some(3));
    let err = String::from_utf8_lossy(&r.stderr);
    let mut damaged = 0;
    for i in 0..6 {
        let f = format!("file{i}");
        let restored = under(&target, &src.join(&f));
        if err.contains(&format!("/{f}:")) {
            damaged += 1;
        } else {
            assert_eq!(
                std::fs::read(&restored).unwrap(),
                std::fs::read(src.join(&f)).unwrap(),
                "{f} should be intact"
            );
        }
    }
    assert_eq!(damaged, 1, "{err}");
}

#[test]
fn a_flipped_byte_in_any_other_object_is_found_and_named() {
    for kind in ["index", "points", "tree-pack", "keys", "vault"] {
        let env = Env::new();
        let src = env.path("src");
        random_file(&src.join("a"), 50_000, 1);
        random_file(&src.join("d/b"), 50_000, 2);
        env.backup(&[], &[&src]);
        let target: PathBuf = match kind {
            "vault" => env.vault().join("vault"),
            "tree-pack" => {
                let packs = files_under(&env.vault().join("packs"));
                packs
                    .into_iter()
                    .min_by_key(|p| std::fs::metadata(p).unwrap().len())
                    .unwrap()
            }
            dir => files_under(&env.vault().join(dir)).remove(0),
        };
        let len = std::fs::metadata(&target).unwrap().len() as usize;
        flip(&target, len / 2);
        let check = env.check(&["--read-data"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(check.status.code(), Some(5), "{kind}: {text}");
        let name = target.file_name().unwrap().to_str().unwrap();
        assert!(
            text.contains(name),
            "{kind}: the damaged object {name} is not named:\n{text}"
        );
    }
}

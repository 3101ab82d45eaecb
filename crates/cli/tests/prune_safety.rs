//! `kill -9` of prune at many moments: the vault always passes `check`,
//! nothing live is lost, and a later prune finishes the work.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn prune_killed_at_random_moments_leaves_a_consistent_vault() {
    let env = Env::new();
    let v = env.vault_str();
    let src = env.path("src");
    // Twelve daily points; each shares one file and changes another.
    let mut generation_of: HashMap<String, u8> = HashMap::new();
    random_file(&src.join("shared.bin"), 700_000, 200);
    for g in 0..12u8 {
        random_file(&src.join("changing.bin"), 500_000, g);
        std::fs::write(src.join("n.txt"), g.to_string()).unwrap();
        let at = format!("2026-03-{:02}T22:00:00Z", g + 1);
        let s = env.backup(&["--item", "svc", "--time", &at], &[&src]);
        generation_of.insert(s["point"].as_str().unwrap().to_string(), g);
    }
    env.ok(&[
        "policy",
        "create",
        "Short",
        "--vault",
        &v,
        "--keep-last",
        "3",
    ]);
    env.ok(&["policy", "assign", "Short", "svc", "--vault", &v]);
    env.ok(&["vault", "set", "--vault", &v, "--soft-delete-days", "1"]);

    // Each prune judges a later day, so every run has points to soft-delete
    // or purge and packs to condemn, repack or delete.
    let mut killed = 0;
    for round in 0..14u64 {
        let now = format!("2026-04-{:02}T00:00:00Z", round + 1);
        let mut child = env
            .command()
            .args([
                "prune",
                "--vault",
                &v,
                "--grace",
                "0s",
                "--repack-below",
                "90",
                "--now",
                &now,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A different moment each round, from at once to well into the run.
        std::thread::sleep(Duration::from_millis(round * 4));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        let check = env.check(&[]);
        assert!(
            check.status.success(),
            "round {round}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    assert!(killed >= 5, "only {killed} prunes were killed mid-run");

    // A dead prune's marker does not block the next one on this host.
    env.ok(&[
        "prune",
        "--vault",
        &v,
        "--grace",
        "0s",
        "--now",
        "2026-05-01T00:00:00Z",
    ]);
    env.ok(&[
        "prune",
        "--vault",
        &v,
        "--grace",
        "0s",
        "--now",
        "2026-05-02T00:00:00Z",
    ]);
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // Every point left restores exactly what it held.
    let points = json_of(&env.ok(&["points", "list", "--json", "--vault", &v]));
    let points = points.as_array().unwrap();
    assert!(points.len() >= 3, "{points:?}");
    for p in points {
        let id = p["id"].as_str().unwrap();
        let g = generation_of[id];
        let target = env.path(&format!("restore-{id}"));
        let out = env.restore(id, &target, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = under(&target, &src);
        assert_eq!(
            std::fs::read_to_string(dir.join("n.txt")).unwrap(),
            g.to_string()
        );
        let expected = env.path("expected");
        random_file(&expected.join("changing.bin"), 500_000, g);
        assert!(
            std::fs::read(dir.join("changing.bin")).unwrap()
                == std::fs::read(expected.join("changing.bin")).unwrap()
        );
        assert!(
            std::fs::read(dir.join("shared.bin")).unwrap()
                == std::fs::read(src.join("shared.bin")).unwrap()
        );
    }
    // The last three points are the ones kept.
    let mut kept: Vec<u8> = points
        .iter()
        .map(|p| generation_of[p["id"].as_str().unwrap()])
        .collect();
    kept.sort();
    assert_eq!(kept, vec![9, 10, 11]);
}

//! Policies, point states and prune through the command line, against a
//! real vault on disk.

mod common;

use common::Env;

fn points(env: &Env) -> Vec<serde_json::Value> {
    let out = env.ok(&["points", "list", "--json", "--vault", &env.vault_str()]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn status_of(env: &Env, id: &str) -> String {
    points(env)
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| p["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| "gone".into())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn policy_changes_apply_to_existing_points_at_the_next_prune() {
    let env = Env::new();
    let v = env.vault_str();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let mut ids = Vec::new();
    // Daily points at 22:00 UTC from 2026-01-01 to 2026-02-28.
    for day in 0..59 {
        std::fs::write(src.join("f"), format!("{day}")).unwrap();
        let date = jiff::civil::date(2026, 1, 1)
            .checked_add(jiff::Span::new().days(day))
            .unwrap();
        let at = format!("{date}T22:00:00Z");
        let s = env.backup(&["--item", "db", "--time", &at], &[&src]);
        ids.push(s["point"].as_str().unwrap().to_string());
    }
    // Weekly points on Sunday for 520 weeks keep old Sundays; daily ones go.
    env.ok(&[
        "policy",
        "create",
        "Weekly",
        "--vault",
        &v,
        "--weekly",
        "520",
        "--weekly-day",
        "sun",
    ]);
    env.ok(&["policy", "assign", "Weekly", "db", "--vault", &v]);
    let dry = env.ok(&["prune", "--dry-run", "--json", "--vault", &v]);
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let plan = plan["points"].as_array().unwrap();
    assert_eq!(plan.len(), 59);
    // 2026-01-04 was a Sunday: index 3, kept weekly; 2026-01-05 is not.
    let of = |id: &str| plan.iter().find(|p| p["point"] == id).unwrap().clone();
    assert_eq!(of(&ids[3])["action"], "keep");
    assert_eq!(of(&ids[3])["rule"], "weekly");
    assert_eq!(of(&ids[4])["action"], "soft-delete");
    assert_eq!(of(&ids[4])["rule"], "matches no retention rule");
    // 2026-02-28 is a Saturday, kept only as the item's latest point.
    assert_eq!(of(&ids[58])["rule"], "latest point of the item");
    // A dry run changes nothing.
    assert_eq!(status_of(&env, &ids[4]), "live");

    // A hold protects a point that the policy expires.
    env.ok(&["points", "hold", &ids[5], "--vault", &v]);
    env.ok(&["prune", "--vault", &v]);
    assert!(status_of(&env, &ids[4]).starts_with("soft-deleted"));
    assert_eq!(status_of(&env, &ids[5]), "on hold");
    assert_eq!(status_of(&env, &ids[3]), "live");

    // Undelete brings one back, on hold; restore works from it.
    env.ok(&["points", "undelete", &ids[4], "--vault", &v]);
    assert_eq!(status_of(&env, &ids[4]), "on hold");
    let target = env.path("restored");
    assert!(env.restore(&ids[4], &target, &[]).status.success());
    let restored = target.join(src.strip_prefix("/").unwrap()).join("f");
    assert_eq!(std::fs::read_to_string(restored).unwrap(), "4");

    // On-demand points keep their own expiry whatever the policy says.
    std::fs::write(src.join("f"), "on demand").unwrap();
    let s = env.backup(
        &[
            "--item",
            "db",
            "--time",
            "2026-01-10T10:00:00Z",
            "--expire-in",
            "100y",
        ],
        &[&src],
    );
    let demand = s["point"].as_str().unwrap().to_string();
    env.ok(&["prune", "--vault", &v]);
    assert!(status_of(&env, &demand).starts_with("on demand"));
}

#[test]
fn immutability_and_stop_protection() {
    let env = Env::new();
    let v = env.vault_str();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    // Yesterday's point is its day's daily point, unexpired for 30 days.
    let yesterday = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24)).to_string();
    let a = env.backup(&["--item", "app", "--time", &yesterday], &[&src])["point"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(src.join("f"), "y").unwrap();
    let b = env.backup(&["--item", "app"], &[&src])["point"]
        .as_str()
        .unwrap()
        .to_string();

    env.ok(&["vault", "set", "--vault", &v, "--immutability", "enabled"]);
    let out = env.run(&["points", "delete", &a, "--vault", &v]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("has not expired"), "{}", stderr(&out));
    let out = env.run(&[
        "policy",
        "set",
        "DefaultPolicy",
        "--daily",
        "5",
        "--vault",
        &v,
    ]);
    assert!(
        stderr(&out).contains("would go from 30 to 5"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["item", "stop", "app", "--delete-data", "--vault", &v]);
    assert!(!out.status.success());
    env.ok(&[
        "policy",
        "set",
        "DefaultPolicy",
        "--daily",
        "90",
        "--vault",
        &v,
    ]);

    // Stop with retain data: kept forever even when retention would drop them.
    env.ok(&["vault", "set", "--vault", &v, "--immutability", "disabled"]);
    env.ok(&["item", "stop", "app", "--retain-data", "--vault", &v]);
    env.ok(&[
        "policy",
        "set",
        "DefaultPolicy",
        "--daily",
        "1",
        "--vault",
        &v,
    ]);
    env.ok(&["prune", "--vault", &v]);
    assert_eq!(status_of(&env, &a), "live");
    // Delete data: every point soft-deleted, recoverable.
    env.ok(&["item", "stop", "app", "--delete-data", "--vault", &v]);
    assert!(status_of(&env, &a).starts_with("soft-deleted"));
    assert!(status_of(&env, &b).starts_with("soft-deleted"));

    env.ok(&["vault", "set", "--vault", &v, "--immutability", "locked"]);
    let out = env.run(&["vault", "set", "--vault", &v, "--immutability", "enabled"]);
    assert!(stderr(&out).contains("stays locked"), "{}", stderr(&out));
}

#[test]
fn bad_policy_input_names_the_field() {
    let env = Env::new();
    let v = env.vault_str();
    let cases: [(&[&str], &str); 5] = [
        (&["--schedule", "daily 25:00"], "HH:MM"),
        (&["--schedule", "fortnightly"], "--schedule"),
        (&["--daily", "7", "--time-zone", "Moon/Base"], "time zone"),
        (&["--monthly", "3", "--monthly-day", "30"], "1 to 28"),
        (&[], "keep at least"),
    ];
    for (args, want) in cases {
        let mut all = vec!["policy", "create", "P", "--vault", &v];
        all.extend_from_slice(args);
        let out = env.run(&all);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = env.run(&["policy", "delete", "DefaultPolicy", "--vault", &v]);
    assert!(stderr(&out).contains("cannot be deleted"));
    let out = env.run(&[
        "backup",
        "--vault",
        &v,
        "--expire-in",
        "soon",
        "/etc/hostname",
    ]);
    assert!(stderr(&out).contains("--expire-in"), "{}", stderr(&out));
}

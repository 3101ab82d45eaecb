//! Vault keys: generation, wrong keys, extra slots, rotation, listing.

mod common;

use common::*;
use std::process::Command;

#[test]
fn generate_prints_one_base64_256_bit_key_alone_on_the_last_line() {
    let out = Command::new(BIN)
        .args(["key", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    assert_eq!(last.len(), 44, "{last:?}");
    let decoded = base64_len(last);
    assert_eq!(decoded, 32);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(last),
        "the key must not go to stderr"
    );
    let again = Command::new(BIN)
        .args(["key", "generate"])
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8(again.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
        last
    );
}

fn base64_len(s: &str) -> usize {
    let padding = s.chars().rev().take_while(|c| *c == '=').count();
    assert!(s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)));
    s.len() / 4 * 3 - padding
}

#[test]
fn a_wrong_key_gets_its_own_exit_code_and_a_clear_message() {
    let env = Env::new();
    let out = env.run_with_key(
        "not the key",
        &["points", "list", "--vault", &env.vault_str()],
    );
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key does not open this vault"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn key_file_works_and_no_key_is_a_clear_error() {
    let env = Env::new();
    let key_file = env.path("keyfile");
    std::fs::write(&key_file, format!("{}\n", env.key)).unwrap();
    let out = env
        .command()
        .env_remove("COFFER_KEY")
        .args([
            "points",
            "list",
            "--vault",
            &env.vault_str(),
            "--key-file",
            key_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let none = env
        .command()
        .env_remove("COFFER_KEY")
        .args(["points", "list", "--vault", &env.vault_str()])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no vault key given"));
}

#[test]
fn add_rotate_list_and_remove_slots() {
    let env = Env::new();
    let src = env.path("src");
    random_file(&src.join("a"), 10_000, 1);
    env.backup(&[], &[&src]);

    // add: both keys open the vault
    let second_key = env.path("second");
    std::fs::write(&second_key, "a second passphrase").unwrap();
    env.ok(&[
        "key",
        "add",
        "--vault",
        &env.vault_str(),
        "--new-key-file",
        second_key.to_str().unwrap(),
    ]);
    let with_second = env.run_with_key(
        "a second passphrase",
        &["points", "list", "--vault", &env.vault_str()],
    );
    assert!(with_second.status.success());

    // list: two slots, no key material
    let list = env.ok(&["key", "list", "--vault", &env.vault_str(), "--json"]);
    let slots: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(slots.as_array().unwrap().len(), 2);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(!text.contains(&env.key) && !text.contains("a second passphrase"));

    // rotate the first key: a generated key is printed once, the old key stops working
    let rotated = env.ok(&["key", "rotate", "--vault", &env.vault_str()]);
    let new_key = String::from_utf8(rotated.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let old = env.run(&["points", "list", "--vault", &env.vault_str()]);
    assert_eq!(old.status.code(), Some(4));
    let new = env.run_with_key(&new_key, &["points", "list", "--vault", &env.vault_str()]);
    assert!(new.status.success());
    // the data is still readable with the new key
    let restored = env.run_with_key(
        &new_key,
        &[
            "restore",
            "--vault",
            &env.vault_str(),
            "latest",
            "--target",
            env.path("r").to_str().unwrap(),
        ],
    );
    assert!(restored.status.success());
    assert_same_tree(&src, &under(&env.path("r"), &src));

    // remove: the second slot may go, the last one never
    let list = env.run_with_key(
        &new_key,
        &["key", "list", "--json", "--vault", &env.vault_str()],
    );
    let slots: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let other = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["in_use"] == false)
        .unwrap()["slot"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["in_use"] == true)
        .unwrap()["slot"]
        .as_str()
        .unwrap()
        .to_string();
    let rm = env.run_with_key(
        &new_key,
        &["key", "remove", "--vault", &env.vault_str(), &other],
    );
    assert!(rm.status.success());
    let last = env.run_with_key(
        &new_key,
        &["key", "remove", "--vault", &env.vault_str(), &mine],
    );
    assert_eq!(last.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&last.stderr).contains("last key slot"));
}

#[test]
fn the_key_can_be_typed_at_a_prompt_on_a_terminal() {
    let env = Env::new();
    // `script` gives coffer a real pseudo-terminal; the key is typed into it.
    let line = format!("{BIN} points list --vault {}", env.vault_str());
    let mut child = env
        .command_for("script")
        .env_remove("COFFER_KEY")
        .args(["-qc", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("script (util-linux) is needed: {e}"));
    use std::io::{Read, Write};
    // Type only once the prompt is shown, as a person would: input typed
    // earlier is echoed by the terminal before coffer can turn echo off.
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("Vault key:") {
        assert!(std::time::Instant::now() < deadline, "no prompt appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", env.key).as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    assert!(status.success());
    let out = seen.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("Vault key:") && text.contains("0 point(s)"),
        "{text}"
    );
    assert!(!text.contains(&env.key), "the typed key must not be echoed");
}

//! Write-only credentials from the command line: made by a key holder,
//! listed by name and fingerprint, and refused for anything but adding
//! backups.

mod common;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_credential_is_printed_once_listed_by_name_and_refused_for_reading() {
    let env = Env::new();
    let v = env.vault_str();
    let out = env.ok(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "web-1",
        "--vault",
        &v,
    ]);
    let credential = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(credential.starts_with("coffer-writer-1-"), "{credential}");
    assert!(stderr(&out).contains("shown once"), "{}", stderr(&out));
    // A second one gets the next default name; the same name is refused.
    let out = env.ok(&["key", "add", "--write-only", "--vault", &v]);
    assert!(stderr(&out).contains("writer-1"), "{}", stderr(&out));
    let again = env.run(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "web-1",
        "--vault",
        &v,
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already called"),
        "{}",
        stderr(&again)
    );
    let bad = env.run(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "two words",
        "--vault",
        &v,
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("cannot name"), "{}", stderr(&bad));

    let listed = env.ok(&["--json", "key", "list", "--vault", &v]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let writers: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "write-only")
        .collect();
    assert_eq!(writers.len(), 2, "{rows}");
    assert_eq!(
        writers[0]["name"].as_str().unwrap().len() + writers[1]["name"].as_str().unwrap().len(),
        "web-1".len() + "writer-1".len()
    );
    assert!(writers
        .iter()
        .all(|w| w["fingerprint"].as_str().unwrap().len() == 16 && w["revoked"] == false));
    // The listing never shows the credential's secret.
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&credential[16..40]));
    let vault_keys = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "vault key")
        .count();
    assert_eq!(vault_keys, 1, "{rows}");

    // Reading with the credential: refused, saying what it is.
    for args in [
        vec!["points", "list", "--vault", &v],
        vec!["ls", "latest", "--vault", &v],
        vec!["check", "--read-data", "--vault", &v],
        vec!["key", "list", "--vault", &v],
    ] {
        let out = env.run_with_key(&credential, &args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("write-only credential"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("vault key"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_older_vault_needs_an_upgrade_before_it_takes_a_credential() {
    let env = Env::without_vault();
    let v = env.vault_str();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vault-v4"))
        .arg(env.vault())
        .status()
        .unwrap();
    assert!(status.success());
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vault-v4.key"),
    )
    .unwrap();
    let key = key.trim();
    let out = env.run_with_key(key, &["key", "add", "--write-only", "--vault", &v]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("format 5") && stderr(&out).contains("vault upgrade"),
        "{}",
        stderr(&out)
    );
    let out = env.run_with_key(key, &["vault", "upgrade", "--vault", &v]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run_with_key(key, &["key", "add", "--write-only", "--vault", &v]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A second machine: its own home and cache, and only the credential.
struct Host<'a> {
    env: &'a Env,
    name: &'static str,
    credential: String,
}

impl Host<'_> {
    fn cache(&self) -> std::path::PathBuf {
        self.env.path(&format!("{}-cache", self.name))
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let home = self.env.path(self.name);
        std::fs::create_dir_all(&home).unwrap();
        std::process::Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("COFFER_KEY", &self.credential)
            .env("COFFER_CACHE_DIR", self.cache())
            .args(args)
            .output()
            .unwrap()
    }

    fn backup(&self, src: &std::path::Path) -> serde_json::Value {
        let v = self.env.vault_str();
        let out = self.run(&[
            "backup",
            "--json",
            "--vault",
            &v,
            "--item",
            "host-files",
            src.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        summary(&out)
    }
}

fn add_credential(env: &Env, name: &str) -> String {
    let v = env.vault_str();
    let out = env.ok(&["key", "add", "--write-only", "--name", name, "--vault", &v]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Restores `point` as the key holder and compares it with `src`.
fn assert_restores_as(env: &Env, point: &str, src: &std::path::Path, scratch: &str) {
    let target = env.path(scratch);
    let out = env.restore(point, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cmp = std::process::Command::new("python3")
        .arg(shared_dir().join("torture_tree.py"))
        .arg("compare")
        .arg(src)
        .arg(under(&target, src))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        cmp.status.success() && report.contains(" 0 differences"),
        "{report}"
    );
}

#[test]
fn a_host_with_only_a_credential_backs_up_incrementally_and_the_key_holder_restores_every_point() {
    let env = Env::new();
    let host = Host {
        env: &env,
        name: "host-b",
        credential: add_credential(&env, "host-b"),
    };
    let src = env.path("src");
    let made = std::process::Command::new("python3")
        .arg(shared_dir().join("torture_tree.py"))
        .arg("make")
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let first = host.backup(&src);
    assert_eq!(first["errors"].as_array().unwrap().len(), 0, "{first}");
    assert!(first["files_new"].as_u64().unwrap() > 20000, "{first}");
    let first_point = first["point"].as_str().unwrap().to_string();
    assert_restores_as(&env, &first_point, &src, "restore-1");

    // Changes: one file rewritten, one added, one removed.
    std::fs::write(src.join("sizes/f4096"), vec![7u8; 4096]).unwrap();
    std::fs::write(src.join("added-by-host"), b"new on the host\n").unwrap();
    std::fs::remove_file(src.join("sizes/f0")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = host.backup(&src);
    // Incremental from the writer's own cache: only what changed is read.
    assert_eq!(second["bytes_read"], 4096 + 16, "{second}");
    assert_eq!(second["files_new"], 1, "{second}");
    let second_point = second["point"].as_str().unwrap().to_string();
    assert_restores_as(&env, &second_point, &src, "restore-2");

    std::fs::write(src.join("added-by-host"), b"changed again on the host\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let third = host.backup(&src);
    assert_eq!(third["bytes_read"], 26, "{third}");
    let third_point = third["point"].as_str().unwrap().to_string();
    assert_restores_as(&env, &third_point, &src, "restore-3");

    // The key holder sees the three points, checks them with their data.
    let v = env.vault_str();
    let listed = env.ok(&["--json", "points", "list", "--vault", &v]);
    let points: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for p in [&first_point, &second_point, &third_point] {
        assert!(ids.contains(&p.as_str()), "{points}");
    }
    // Each records the credential that wrote it.
    assert!(
        points
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["written_by"].as_str().is_some_and(|s| s.len() == 16)),
        "{points}"
    );
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        stderr(&check)
    );

    // The host's cache lost: every file is read again, and what is
    // uploaded is at most the trees of the directories above the source
    // (this test and others add entries to them): no chunk of data.
    std::fs::remove_dir_all(host.cache()).unwrap();
    let fourth = host.backup(&src);
    // Every file is read again (how many bytes that is, with the holes of
    // the tree's sparse files, varies by a few between runs).
    let read_first = first["bytes_read"].as_u64().unwrap();
    let read_now = fourth["bytes_read"].as_u64().unwrap();
    assert!(read_now.abs_diff(read_first) < 1024, "{fourth}");
    assert_eq!(fourth["files_unchanged"], 0, "{fourth}");
    assert_eq!(fourth["files_new"], fourth["files"], "{fourth}");
    assert!(fourth["bytes_new"].as_u64().unwrap() < 4096, "{fourth}");
    assert!(fourth["packs_written"].as_u64().unwrap() <= 1, "{fourth}");
    assert_restores_as(&env, fourth["point"].as_str().unwrap(), &src, "restore-4");
}

/// Every file under `dir`, with its bytes.
fn every_object(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_stolen_credential_with_the_storage_opens_nothing_of_anyones() {
    let env = Env::new();
    let v = env.vault_str();
    let tree = |dir: &str, name: &str, content: &str| {
        let src = env.path(dir);
        std::fs::create_dir_all(src.join(format!("{name}-folder"))).unwrap();
        std::fs::write(
            src.join(format!("{name}-folder/{name}-file.txt")),
            content.repeat(2000),
        )
        .unwrap();
        src
    };
    // The key holder's data and journal, another host's, and the thief's own.
    let holder = tree(
        "holder-tree",
        "keyholdersecretname",
        "KEYHOLDER-SECRET-CONTENT ",
    );
    env.backup(&["--item", "keyholderitem"], &[&holder]);
    env.ok(&[
        "policy",
        "create",
        "KeyholderSecretPolicy",
        "--daily",
        "3",
        "--vault",
        &v,
    ]);
    let host_a = Host {
        env: &env,
        name: "host-a",
        credential: add_credential(&env, "host-a"),
    };
    let a_src = tree("hosta-tree", "hostasecretname", "HOSTA-SECRET-CONTENT ");
    host_a.backup(&a_src);
    let thief = Host {
        env: &env,
        name: "thief",
        credential: add_credential(&env, "stolen"),
    };
    let t_src = tree("thief-tree", "thiefownname", "THIEF-OWN-CONTENT ");
    let own = thief.backup(&t_src);

    // Everything at the location, as read access gives it: no name, no
    // content, no item, policy or path in the clear.
    let needles: [&[u8]; 10] = [
        b"keyholdersecretname",
        b"KEYHOLDER-SECRET",
        b"keyholderitem",
        b"KeyholderSecretPolicy",
        b"hostasecretname",
        b"HOSTA-SECRET",
        b"hosta-tree",
        b"thiefownname",
        b"THIEF-OWN",
        b"host-files",
    ];
    let objects = every_object(&env.vault());
    assert!(objects.len() > 10);
    for (path, bytes) in &objects {
        for n in needles {
            assert!(
                !contains(bytes, n),
                "{} shows {:?}",
                path.display(),
                String::from_utf8_lossy(n)
            );
        }
    }

    // With the credential: its index key opens its own index files and no
    // one else's, and those hold chunk ids and sizes only.
    let credential = coffer_engine::credential::WriterCredential::parse(&thief.credential).unwrap();
    let mut opened = 0;
    for (path, bytes) in &objects {
        let rel = path
            .strip_prefix(env.vault())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !rel.starts_with("index/") {
            continue;
        }
        let decoded = coffer_engine::index::decode_writer_index(
            &credential.secret,
            &credential.vault_id,
            &credential.slot,
            &rel,
            bytes,
        );
        let mine = rel.starts_with(&format!("index/{}/", credential.slot_id()));
        assert_eq!(decoded.is_ok(), mine, "{rel}");
        if let Ok(records) = decoded {
            opened += 1;
            let shown = format!("{records:?}");
            for n in needles {
                assert!(!shown.contains(&*String::from_utf8_lossy(n)));
            }
        }
    }
    assert_eq!(opened, 1);

    // Its own point is as closed to it as the others: the session key is
    // gone, and a key pair of its own making recomputes nothing.
    let own_point = std::fs::read(
        env.vault()
            .join("points")
            .join(own["point"].as_str().unwrap()),
    )
    .unwrap();
    let header = coffer_engine::credential::SessionHeader::read("point", &own_point[8..]).unwrap();
    let (guess, _) =
        coffer_engine::credential::vault_keypair(&coffer_engine::crypto::MasterKeys::random());
    let key = coffer_engine::credential::session_key(
        &header,
        &guess,
        &credential.vault_id,
        &credential.secret,
    )
    .unwrap();
    let keys = coffer_engine::credential::session_object_keys(&key, &credential.secret);
    assert!(coffer_engine::point::Manifest::decode_written(&keys, "point", &own_point).is_err());

    // And the command line refuses it everything but backing up.
    for args in [
        vec![
            "restore",
            "--vault",
            &v,
            "latest",
            "--target",
            "/var/tmp/never",
        ],
        vec!["ls", "latest", "--vault", &v],
        vec!["points", "show", "latest", "--vault", &v],
        vec!["points", "delete", "latest", "--vault", &v],
        vec!["prune", "--vault", &v],
    ] {
        let out = thief.run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("write-only credential"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!std::path::Path::new("/var/tmp/never").exists());
}

#[test]
fn a_revoked_credential_is_refused_and_check_names_what_it_wrote_afterwards() {
    let env = Env::new();
    let v = env.vault_str();
    let host = Host {
        env: &env,
        name: "host-r",
        credential: add_credential(&env, "host-r"),
    };
    let src = env.path("r-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"before the revocation\n").unwrap();
    let before = host.backup(&src);

    let listed = env.ok(&["--json", "key", "list", "--vault", &v]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let slot = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "host-r")
        .unwrap()["slot"]
        .as_str()
        .unwrap()
        .to_string();
    let out = env.ok(&["key", "remove", &slot, "--vault", &v]);
    assert!(
        stderr(&out).contains("revoked the write-only credential host-r"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("1 point(s)"), "{}", stderr(&out));
    let again = env.run(&["key", "remove", &slot, "--vault", &v]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("revoked already"),
        "{}",
        stderr(&again)
    );
    let listed = env.ok(&["--json", "key", "list", "--vault", &v]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["slot"] == slot.as_str() && r["revoked"] == true),
        "{rows}"
    );

    // The host is refused at once, saying so.
    let out = host.run(&[
        "backup",
        "--vault",
        &v,
        "--item",
        "host-files",
        src.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("was revoked"), "{}", stderr(&out));
    // The point it wrote before stays, restorable and clean in check.
    assert!(env.check(&[]).status.success());
    assert_restores_as_bytes(
        &env,
        before["point"].as_str().unwrap(),
        &src.join("f"),
        b"before the revocation\n",
    );

    // Whoever removes the notice at the storage gets the host writing
    // again: check names what it wrote after the revocation, and fails.
    std::fs::remove_file(env.vault().join(format!("keys/{slot}.revoked"))).unwrap();
    std::fs::write(src.join("f"), b"after the revocation\n").unwrap();
    let after = host.backup(&src);
    let out = env.check(&[]);
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let after_id = &after["point"].as_str().unwrap()[..16];
    let before_id = &before["point"].as_str().unwrap()[..16];
    assert!(
        text.contains(after_id) && text.contains("after it was revoked"),
        "{text}"
    );
    assert!(!text.contains(before_id), "{text}");
    let listed = env.ok(&["--json", "points", "list", "--vault", &v]);
    let points: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    for p in points.as_array().unwrap() {
        let untrusted = p["status"].as_str().unwrap().starts_with("UNTRUSTED");
        assert_eq!(
            untrusted,
            p["id"].as_str().unwrap().starts_with(after_id),
            "{points}"
        );
        assert_eq!(p["written_by"], slot.as_str());
    }
}

/// Restores `point` as the key holder and compares one file's bytes.
fn assert_restores_as_bytes(env: &Env, point: &str, file: &std::path::Path, expected: &[u8]) {
    let target = env.path(&format!("restore-{}", &point[..8]));
    let out = env.restore(point, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(under(&target, file)).unwrap(), expected);
}

/// The JSON a `--json` command printed.
fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_writer_whose_storage_cannot_delete_backs_up_and_the_key_holder_prunes_what_it_wrote() {
    use coffer_testservers::{azure_sas, http, Kind, Server, AZURITE_ACCOUNT};
    let env = Env::without_vault();
    let az = Server::start(Kind::AzBlob);
    let loc = az.location.clone();
    // The key holder has the account key; the host a SAS token that may
    // read, create, write and list, but not delete.
    let holder = |args: &[&str]| {
        let mut cmd = env.command();
        az.apply_env(&mut cmd);
        let out = cmd.args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    holder(&["vault", "init", "--location", &loc]);
    let out = holder(&[
        "key",
        "add",
        "--write-only",
        "--name",
        "web-1",
        "--vault",
        &loc,
    ]);
    let credential = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let sas = azure_sas("rcwl");
    let host = |args: &[&str]| {
        let out = env
            .command()
            .env("COFFER_KEY", &credential)
            .env("COFFER_CACHE_DIR", env.path("host-cache"))
            .env("AZURE_STORAGE_SAS_TOKEN", &sas)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        // It never tried to delete anything (a refused delete would warn).
        assert!(!stderr(&out).contains("could not"), "{}", stderr(&out));
        summary(&out)
    };
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let backup = |generation: u8| {
        random_file(&src.join("kept.bin"), 300_000, 1);
        random_file(&src.join("changing.bin"), 200_000, generation);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let s = host(&[
            "backup",
            "--json",
            "--vault",
            &loc,
            "--item",
            "web",
            src.to_str().unwrap(),
        ]);
        s["point"].as_str().unwrap().to_string()
    };
    let first = backup(1);
    let second = backup(2);

    // The token really cannot delete: the storage refuses it.
    let container_path = loc
        .strip_prefix("azblob://")
        .and_then(|l| l.split_once('?'))
        .unwrap()
        .0;
    let status = http(
        az.port,
        "DELETE",
        &format!("/{AZURITE_ACCOUNT}/{container_path}/vault?{sas}"),
        &[],
    );
    assert_eq!(status, 403, "a delete with the host's token");

    // The key holder deletes the first point and prunes twice, 15 days on:
    // the first repacks what the second point still uses out of the first
    // point's data pack, the second deletes that pack.
    let p = holder(&["--json", "points", "list", "--vault", &loc]);
    let listed: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    holder(&["points", "delete", &first, "--vault", &loc]);
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(15 * 24))
        .unwrap()
        .to_string();
    let prune = |label: &str| {
        let mut cmd = env.command();
        az.apply_env(&mut cmd);
        let out = cmd
            .args([
                "--json",
                "prune",
                "--grace",
                "0s",
                "--repack-below",
                "90",
                "--now",
                &later,
                "--vault",
                &loc,
            ])
            .output()
            .unwrap();
        let j = json_of(&out);
        eprintln!("{label}: {}", j["done"]);
        j["done"].clone()
    };
    let condemned = prune("first");
    assert!(condemned["condemned"].as_u64().unwrap() >= 2, "{condemned}");
    assert!(condemned["repacked"].as_u64().unwrap() >= 1, "{condemned}");
    let deleted = prune("second");
    assert!(deleted["deleted"].as_u64().unwrap() >= 1, "{deleted}");
    assert!(
        deleted["bytes_deleted"].as_u64().unwrap() >= 200_000,
        "{deleted}"
    );

    // The host backs up on, and every point left restores whole.
    let third = backup(3);
    for (point, generation) in [(&second, 2u8), (&third, 3)] {
        let target = env.path(&format!("restore-{generation}"));
        holder(&[
            "restore",
            point,
            "--vault",
            &loc,
            "--target",
            target.to_str().unwrap(),
        ]);
        let expect = env.path("expect");
        random_file(&expect, 200_000, generation);
        assert_eq!(
            std::fs::read(under(&target, &src).join("changing.bin")).unwrap(),
            std::fs::read(&expect).unwrap()
        );
    }
    holder(&["check", "--read-data", "--vault", &loc]);
}

#[test]
fn a_writer_says_so_when_its_previous_point_was_deleted_at_the_storage() {
    let env = Env::new();
    let host = Host {
        env: &env,
        name: "host-c",
        credential: add_credential(&env, "host-c"),
    };
    let src = env.path("src");
    random_file(&src.join("a.bin"), 100_000, 1);
    let first = host.backup(&src);
    let point = first["point"].as_str().unwrap();
    std::fs::remove_file(env.vault().join("points").join(point)).unwrap();
    let v = env.vault_str();
    let out = host.run(&[
        "backup",
        "--vault",
        &v,
        "--item",
        "host-files",
        src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("previous point of the item is gone from the vault"),
        "{said}"
    );
    assert!(said.contains(point), "{said}");
}

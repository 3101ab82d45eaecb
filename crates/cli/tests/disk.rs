//! `coffer disk` on the command line: two qcow2 disks of one item backed up
//! together, the second backup through their bitmaps, each disk restored as
//! qcow2 and as raw and compared with `qemu-img compare`; the disk point
//! restored as files by the plain `restore`, and a format 5 vault asking
//! for `vault upgrade`.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn qemu(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compare(a: &Path, a_fmt: &str, b: &Path) {
    qemu(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            a_fmt,
            "-F",
            "qcow2",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
    );
}

#[test]
fn two_qcow2_disks_back_up_incrementally_and_restore_as_qcow2_or_raw() {
    let env = Env::new();
    let v = env.vault_str();
    let a = env.path("a.qcow2");
    let b = env.path("b.qcow2");
    for (img, pattern) in [(&a, "0x1a"), (&b, "0x1b")] {
        qemu(
            "qemu-img",
            &["create", "-q", "-f", "qcow2", img.to_str().unwrap(), "64M"],
        );
        qemu(
            "qemu-io",
            &[
                "-f",
                "qcow2",
                "-c",
                &format!("write -P {pattern} 5M 9M"),
                img.to_str().unwrap(),
            ],
        );
    }
    let backup = |json: bool| {
        let mut args = vec![
            "disk", "backup", "--vault", &v, "--item", "vm", "--format", "qcow2",
        ];
        if json {
            args.push("--json");
        }
        let (a, b) = (
            a.to_str().unwrap().to_string(),
            b.to_str().unwrap().to_string(),
        );
        let out = env.ok(&[args.as_slice(), &[a.as_str(), b.as_str()]].concat());
        summary(&out)
    };
    let first = backup(true);
    assert_eq!(first["disks"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["disks"][0]["method"], "full");

    qemu(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x2a 40M 4k",
            a.to_str().unwrap(),
        ],
    );
    let second = backup(true);
    for d in second["disks"].as_array().unwrap() {
        assert_eq!(d["method"], "bitmap", "{second}");
    }
    assert_eq!(second["disks"][0]["blocks_changed"], 1, "{second}");
    assert_eq!(second["disks"][1]["blocks_changed"], 0, "{second}");

    // Several disks: the one to restore must be named.
    let out = env.run(&[
        "disk",
        "restore",
        "--vault",
        &v,
        "latest",
        "--target",
        env.path("x").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--disk"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let back_a = env.path("a-back.qcow2");
    env.ok(&[
        "disk",
        "restore",
        "--vault",
        &v,
        "latest",
        "--disk",
        "a.qcow2",
        "--format",
        "qcow2",
        "--target",
        back_a.to_str().unwrap(),
    ]);
    compare(&back_a, "qcow2", &a);
    let raw_b = env.path("b-back.raw");
    env.ok(&[
        "disk",
        "restore",
        "--vault",
        &v,
        "latest",
        "--disk",
        "b.qcow2",
        "--target",
        raw_b.to_str().unwrap(),
    ]);
    compare(&raw_b, "raw", &b);
    // An existing target is replaced only on request.
    let out = env.run(&[
        "disk",
        "restore",
        "--vault",
        &v,
        "latest",
        "--disk",
        "b.qcow2",
        "--target",
        raw_b.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));

    // The plain restore writes every disk of the point as a raw image.
    let files = env.path("files");
    let out = env.restore("latest", &files, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    compare(&files.join("a.qcow2"), "raw", &a);
    compare(&files.join("b.qcow2"), "raw", &b);
    let check = env.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn a_format_5_vault_asks_for_an_upgrade_before_its_first_disk_point() {
    let env = Env::without_vault();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vault-v5");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(env.vault())
        .status()
        .unwrap();
    assert!(status.success());
    let key = std::fs::read_to_string(fixture.with_extension("key")).unwrap();
    let img = env.path("d.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let v = env.vault_str();
    let args = [
        "disk",
        "backup",
        "--vault",
        v.as_str(),
        "--item",
        "d",
        img.to_str().unwrap(),
    ];
    let out = env.run_with_key(key.trim(), &args);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vault upgrade"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run_with_key(key.trim(), &["vault", "upgrade", "--vault", v.as_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run_with_key(key.trim(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Disk items against Debian's QEMU tools: qcow2 images written with
//! `qemu-io` between backups, every point restored and compared with
//! `qemu-img compare`; persistent bitmaps across closes, an unclean close,
//! a bitmap cleared by another tool; raw images.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use coffer_engine::backup::{BackupOptions, Progress, ReadMethod};
use coffer_engine::keys::GENERATED_KEY_KDF;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Storage, Vault, VaultKey};
use coffer_sources::{back_up, restore, verify, Destination, DiskFormat, DiskSpec, ItemDef, Kind};

const MIB: u64 = 1 << 20;

fn vault(dir: &Path) -> Vault {
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let (key, _) = VaultKey::generate();
    Vault::init(&storage, &key, GENERATED_KEY_KDF).unwrap();
    Vault::open(storage, &key, None).unwrap()
}

fn item(name: &str, format: DiskFormat, paths: &[&Path]) -> ItemDef {
    ItemDef {
        name: name.into(),
        kind: Kind::Disk,
        paths: paths.iter().map(|p| p.to_string_lossy().into()).collect(),
        excludes: Vec::new(),
        postgresql: None,
        command: None,
        disk: Some(DiskSpec { format }),
        pre: None,
        post: None,
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `count` random 64 KiB pieces at random 4 KiB-aligned offsets of
/// the first `span` bytes, each in its own pattern, and returns how many
/// distinct 1 MiB blocks they touch.
fn scribble(img: &Path, seed: u64, count: usize, span: u64) -> usize {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut commands = Vec::new();
    let mut blocks = std::collections::BTreeSet::new();
    for _ in 0..count {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let offset = ((x >> 20) % (span / 4096 - 16)) * 4096;
        let pattern = (x >> 8) as u8 | 1;
        commands.push(format!("write -P {pattern} {offset} 64k"));
        blocks.insert(offset / MIB);
        blocks.insert((offset + (64 << 10) - 1) / MIB);
    }
    let mut args = vec!["-f", "qcow2"];
    for c in &commands {
        args.extend(["-c", c.as_str()]);
    }
    let path = img.to_str().unwrap();
    args.push(path);
    run("qemu-io", &args);
    blocks.len()
}

/// Restores the point of `it` under `target` and compares the image with
/// `source` as it is now.
fn assert_restores_identical(
    v: &Vault,
    it: &ItemDef,
    point: &coffer_engine::ObjectId,
    source: &Path,
    target: &Path,
) {
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir_all(target).unwrap();
    let p = v.read_point(point).unwrap();
    let to = Destination {
        target: Some(target.to_path_buf()),
        ..Destination::default()
    };
    restore(v, it, &p, &to, &RestoreProgress::default()).unwrap();
    let back = target.join(source.file_name().unwrap());
    let fmt = match it.disk.as_ref().unwrap().format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    };
    run(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            fmt,
            "-F",
            fmt,
            back.to_str().unwrap(),
            source.to_str().unwrap(),
        ],
    );
}

#[test]
fn qcow2_incrementals_read_only_changed_blocks_across_closes_and_fall_back_when_the_bitmap_cannot_be_trusted(
) {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let img = tmp.path().join("vm.qcow2");
    let img_s = img.to_str().unwrap();
    run("qemu-img", &["create", "-q", "-f", "qcow2", img_s, "256M"]);
    scribble(&img, 1, 200, 256 * MIB);
    let it = item("vm", DiskFormat::Qcow2, &[&img]);
    let restored = tmp.path().join("restored");

    let first = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    assert_eq!(first.disks[0].method, ReadMethod::Full);
    assert_restores_identical(&v, &it, &first.point, &img, &restored);
    // The bitmap of the point is in the image, which is closed.
    assert!(
        run("qemu-img", &["info", img_s]).contains(&coffer_sources::disk::bitmaps::prefix("vm"))
    );

    // Written by another process (qemu-io opens and closes the image): the
    // persistent bitmap saw it, and only those blocks are read.
    for round in 0..3 {
        let touched = scribble(&img, 10 + round, 6, 256 * MIB) as u64;
        let report = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
            .unwrap()
            .report;
        let disk = &report.disks[0];
        assert_eq!(disk.method, ReadMethod::Bitmap, "{disk:?}");
        // The changed blocks, and at most 64 spot-checked clean ones.
        assert!(
            disk.bytes_read <= (touched + 64) * MIB,
            "{disk:?}, {touched} blocks touched"
        );
        assert!(disk.blocks_changed <= touched, "{disk:?}");
        assert_restores_identical(&v, &it, &report.point, &img, &restored);
    }

    // A writer killed mid-write: the image is left with its bitmap in use.
    let mut writer = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            "write -P 0x77 100M 1M",
            "-c",
            "sleep 100000",
            img_s,
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    writer.kill().unwrap();
    writer.wait().unwrap();
    let report = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    let disk = &report.disks[0];
    assert_eq!(disk.method, ReadMethod::Compared, "{disk:?}");
    assert!(
        disk.note
            .as_deref()
            .unwrap_or("")
            .contains("not closed cleanly"),
        "{disk:?}"
    );
    assert_restores_identical(&v, &it, &report.point, &img, &restored);
    // And the next one trusts the bitmap it made.
    scribble(&img, 40, 3, 256 * MIB);
    let report = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    assert_eq!(
        report.disks[0].method,
        ReadMethod::Bitmap,
        "{:?}",
        report.disks[0]
    );
    assert_restores_identical(&v, &it, &report.point, &img, &restored);

    // Another tool clears the bitmap, then the image changes everywhere:
    // the spot check sees changes the bitmap does not, and the disk is
    // read whole.
    let bitmap = String::from_utf8_lossy(
        &Command::new("qemu-img")
            .args(["info", "--output=json", img_s])
            .output()
            .unwrap()
            .stdout,
    )
    .split('"')
    .find(|s| s.starts_with(&coffer_sources::disk::bitmaps::prefix("vm")))
    .unwrap()
    .to_string();
    run("qemu-img", &["bitmap", "--disable", img_s, &bitmap]);
    let writes: Vec<String> = (0..256).map(|m| format!("write -P 0x5c {m}M 4k")).collect();
    let mut args = vec!["-f", "qcow2"];
    for w in &writes {
        args.extend(["-c", w.as_str()]);
    }
    args.push(img_s);
    run("qemu-io", &args);
    run(
        "qemu-img",
        &["bitmap", "--clear", "--enable", img_s, &bitmap],
    );
    let report = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    let disk = &report.disks[0];
    assert_eq!(disk.method, ReadMethod::Compared, "{disk:?}");
    assert!(
        disk.note
            .as_deref()
            .unwrap_or("")
            .contains("dirty bitmap says"),
        "{disk:?}"
    );
    assert_restores_identical(&v, &it, &report.point, &img, &restored);

    // The drill restores each disk in its format and checks it.
    let p = v.read_point(&report.point).unwrap();
    let drill = verify(&v, &it, &p, Some(tmp.path())).unwrap();
    assert!(drill.contains("every block verified"), "{drill}");
}

#[test]
fn a_qcow2_restored_in_place_carries_a_bitmap_so_the_next_backup_is_incremental() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let img = tmp.path().join("disk.qcow2");
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", img.to_str().unwrap(), "64M"],
    );
    scribble(&img, 2, 50, 64 * MIB);
    let it = item("db-vm", DiskFormat::Qcow2, &[&img]);
    let report = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    let copy = tmp.path().join("before.qcow2");
    std::fs::copy(&img, &copy).unwrap();

    // The disk is lost; in place, without overwrite, is refused while it exists.
    let p = v.read_point(&report.point).unwrap();
    let e = restore(
        &v,
        &it,
        &p,
        &Destination::default(),
        &RestoreProgress::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("overwrite"), "{e}");
    std::fs::remove_file(&img).unwrap();
    restore(
        &v,
        &it,
        &p,
        &Destination::default(),
        &RestoreProgress::default(),
    )
    .unwrap();
    run(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            img.to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );

    scribble(&img, 3, 2, 64 * MIB);
    let next = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    assert_eq!(
        next.disks[0].method,
        ReadMethod::Bitmap,
        "{:?}",
        next.disks[0]
    );
}

#[test]
fn raw_images_round_trip_sparse_and_compare_every_block() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let img = tmp.path().join("data.img");
    let img_s = img.to_str().unwrap();
    run("qemu-img", &["create", "-q", "-f", "raw", img_s, "100M"]);
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x31 7M 3M",
            "-c",
            "write -P 0x32 90M 64k",
            img_s,
        ],
    );
    let it = item("data", DiskFormat::Raw, &[&img]);
    let restored = tmp.path().join("restored");
    let first = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    assert!(first.disks[0].bytes_read <= 5 * MIB, "{:?}", first.disks[0]);
    assert_restores_identical(&v, &it, &first.point, &img, &restored);
    let back = restored.join("data.img");
    let used = std::fs::metadata(&back)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap();
    assert!(used <= 4 * MIB, "the restored image uses {used} bytes");

    run(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 0x33 8M 4k", img_s],
    );
    let second = back_up(&v, &it, &BackupOptions::default(), &Progress::default())
        .unwrap()
        .report;
    assert_eq!(second.disks[0].method, ReadMethod::Compared);
    assert_eq!(second.disks[0].blocks_changed, 1);
    assert_restores_identical(&v, &it, &second.point, &img, &restored);
}

//! The client against the real `qemu-nbd` (Debian's qemu-utils): sizes,
//! allocation and dirty-bitmap extents, pipelined reads, writes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_nbd::proto::{dirty_bitmap_context, BASE_ALLOCATION, STATE_DIRTY, STATE_HOLE};
use coffer_nbd::{Address, Client, ReadRequest};

const MIB: u64 = 1 << 20;

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A qemu-nbd serving one image on a unix socket, killed on drop.
struct QemuNbd {
    child: Child,
    socket: PathBuf,
}

impl QemuNbd {
    fn start(image: &Path, socket: &Path, extra: &[&str]) -> QemuNbd {
        let child = Command::new("qemu-nbd")
            .args(["--format=qcow2", "--persistent", "--shared=4", "-k"])
            .arg(socket)
            .args(extra)
            .arg(image)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        // The file appears at bind(), a moment before qemu-nbd listens.
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(Instant::now() < deadline, "qemu-nbd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        QemuNbd {
            child,
            socket: socket.to_path_buf(),
        }
    }

    fn address(&self) -> Address {
        Address::Unix(self.socket.clone())
    }
}

impl Drop for QemuNbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 64 MiB qcow2 image with a persistent bitmap `b` added before two
/// writes: 1 MiB of 0x11 at 8 MiB (before the bitmap, so clean) and 64 KiB
/// of 0x22 at 40 MiB (after, so dirty).
fn image(dir: &Path) -> PathBuf {
    let img = dir.join("disk.qcow2");
    let path = img.to_str().unwrap();
    run("qemu-img", &["create", "-q", "-f", "qcow2", path, "64M"]);
    run(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x11 8M 1M", path],
    );
    run("qemu-img", &["bitmap", "--add", "-g", "64K", path, "b"]);
    run(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x22 40M 64K", path],
    );
    img
}

#[test]
fn reads_extents_and_data_of_a_qcow2_export() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let nbd = QemuNbd::start(&img, &dir.path().join("s"), &["--read-only", "-B", "b"]);
    let bitmap = dirty_bitmap_context("b");
    let mut client = Client::connect(
        &nbd.address(),
        "",
        &[BASE_ALLOCATION.to_string(), bitmap.clone()],
    )
    .unwrap();
    assert_eq!(client.size(), 64 * MIB);
    assert!(client.read_only());
    assert!(client.has_context(BASE_ALLOCATION) && client.has_context(&bitmap));

    let allocated: Vec<(u64, u64)> = client
        .extents(BASE_ALLOCATION, 0, client.size())
        .unwrap()
        .into_iter()
        .filter(|e| e.flags & STATE_HOLE == 0)
        .map(|e| (e.offset, e.len))
        .collect();
    assert_eq!(allocated, vec![(8 * MIB, MIB), (40 * MIB, 64 << 10)]);
    let dirty: Vec<(u64, u64)> = client
        .extents(&bitmap, 0, client.size())
        .unwrap()
        .into_iter()
        .filter(|e| e.flags & STATE_DIRTY != 0)
        .map(|e| (e.offset, e.len))
        .collect();
    assert_eq!(dirty, vec![(40 * MIB, 64 << 10)]);

    // A window of reads in flight: data, a hole, and the dirty range.
    let mut batch: Vec<ReadRequest> = [8 * MIB, 20 * MIB, 40 * MIB]
        .into_iter()
        .map(|offset| ReadRequest {
            offset,
            data: vec![0xff; MIB as usize],
        })
        .collect();
    client.read_many(&mut batch).unwrap();
    assert!(batch[0].data.iter().all(|b| *b == 0x11));
    assert!(batch[1].data.iter().all(|b| *b == 0));
    assert!(batch[2].data[..64 << 10].iter().all(|b| *b == 0x22));
    assert!(batch[2].data[64 << 10..].iter().all(|b| *b == 0));

    // Past the end is refused before anything is sent.
    let mut beyond = [0u8; 16];
    assert!(client.read_at(64 * MIB - 8, &mut beyond).is_err());
    client.disconnect().unwrap();
}

#[test]
fn writes_reach_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("new.qcow2");
    let path = img.to_str().unwrap();
    run("qemu-img", &["create", "-q", "-f", "qcow2", path, "16M"]);
    {
        let nbd = QemuNbd::start(&img, &dir.path().join("s"), &[]);
        let mut client = Client::connect(&nbd.address(), "", &[]).unwrap();
        assert!(!client.read_only());
        client
            .write_at(3 * MIB, &vec![0x5a; 3 * MIB as usize])
            .unwrap();
        client.flush().unwrap();
        let mut back = vec![0u8; 3 * MIB as usize];
        client.read_at(3 * MIB, &mut back).unwrap();
        assert!(back.iter().all(|b| *b == 0x5a));
        client.disconnect().unwrap();
    }
    run(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "read -P 0x5a 3M 3M",
            "-c",
            "read -P 0 0 3M",
            path,
        ],
    );
}

#[test]
fn a_missing_export_or_bitmap_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let nbd = QemuNbd::start(&img, &dir.path().join("s"), &["--read-only", "-x", "disk"]);
    let e = Client::connect(&nbd.address(), "other", &[]).err().unwrap();
    assert!(e.to_string().contains("\"other\""), "{e}");
    // A bitmap the export does not carry is simply not granted.
    let ghost = dirty_bitmap_context("ghost");
    let client = Client::connect(&nbd.address(), "disk", std::slice::from_ref(&ghost)).unwrap();
    assert!(!client.has_context(&ghost));
}

//! `qemu-storage-daemon` as Coffer's own hypervisor for images at rest: it
//! opens qcow2 images with QEMU's block layer (its image locking keeps a VM
//! from starting on an image while Coffer holds it, and its persistent
//! dirty bitmaps are stored in the image when it closes), exports them over
//! NBD on a private unix socket, and takes QMP commands.
//!
//! Everything is configured through QMP with JSON arguments, never through
//! command-line option strings, so an image path with commas or equals
//! signs is just a path. The daemon's sockets live in a private directory
//! (mode 0700); the daemon is asked to quit (which writes the bitmaps) and
//! killed only if it does not.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::qmp::Qmp;
use crate::{DiskFormat, Error, Result};

pub struct StorageDaemon {
    child: Child,
    dir: tempfile::TempDir,
    qmp: Qmp,
    nbd_started: bool,
    nodes: Vec<String>,
    exports: Vec<String>,
}

impl StorageDaemon {
    /// Starts a daemon with only its monitor.
    pub fn start() -> Result<StorageDaemon> {
        let dir = tempfile::Builder::new()
            .prefix("coffer-qsd-")
            .tempdir()
            .map_err(|e| Error::Disk(format!("cannot make a private directory: {e}")))?;
        let qmp_path = dir.path().join("qmp");
        let log = std::fs::File::create(dir.path().join("stderr"))
            .map_err(|e| Error::Disk(format!("cannot make the daemon's log: {e}")))?;
        let mut monitor = std::ffi::OsString::from("socket,id=m,server=on,wait=off,path=");
        monitor.push(&qmp_path);
        let mut child = crate::process::program("qemu-storage-daemon")
            .arg("--chardev")
            .arg(monitor)
            .args(["--monitor", "chardev=m"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                Error::Disk(format!(
                    "cannot run qemu-storage-daemon ({e}): qcow2 images need QEMU's tools (Debian: apt install qemu-utils qemu-system-common)"
                ))
            })?;
        // The socket's file appears at bind(), a moment before the daemon
        // listens: a refused connection is retried until it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        let qmp = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                return Err(Error::Disk(format!(
                    "qemu-storage-daemon exited at start ({status}): {}",
                    said.trim()
                )));
            }
            let attempt = if qmp_path.exists() {
                Some(Qmp::connect(&qmp_path, "qemu-storage-daemon"))
            } else {
                None
            };
            match attempt {
                Some(Ok(q)) => break q,
                Some(Err(e)) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Disk(
                        "qemu-storage-daemon did not open its monitor within 20 s".into(),
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        Ok(StorageDaemon {
            child,
            dir,
            qmp,
            nbd_started: false,
            nodes: Vec::new(),
            exports: Vec::new(),
        })
    }

    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// Opens `path` as block node `node`.
    pub fn add_image(
        &mut self,
        node: &str,
        path: &Path,
        format: DiskFormat,
        writable: bool,
    ) -> Result<()> {
        let device = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
            .unwrap_or(false);
        let protocol = if device { "host_device" } else { "file" };
        let filename = path.to_str().ok_or_else(|| {
            Error::Disk(format!(
                "{} is not UTF-8: QEMU cannot open it",
                path.display()
            ))
        })?;
        self.qmp.execute(
            "blockdev-add",
            json!({
                "driver": format.as_str(),
                "node-name": node,
                "read-only": !writable,
                "file": { "driver": protocol, "filename": filename },
            }),
        )?;
        self.nodes.push(node.to_string());
        Ok(())
    }

    /// Exports `node` as NBD export `node` with the dirty bitmaps named.
    pub fn export(&mut self, node: &str, bitmaps: &[String], writable: bool) -> Result<()> {
        if !self.nbd_started {
            let path = self.nbd_socket();
            self.qmp.execute(
                "nbd-server-start",
                // nbd-server-start takes QEMU's legacy socket address form.
                json!({ "addr": { "type": "unix", "data": { "path": path.to_string_lossy() } } }),
            )?;
            self.nbd_started = true;
        }
        let mut args = json!({
            "type": "nbd",
            "id": node,
            "node-name": node,
            "name": node,
            "writable": writable,
        });
        if !bitmaps.is_empty() {
            args["bitmaps"] = Value::from(bitmaps.to_vec());
        }
        self.qmp.execute("block-export-add", args)?;
        self.exports.push(node.to_string());
        Ok(())
    }

    pub fn nbd_socket(&self) -> PathBuf {
        self.dir.path().join("nbd")
    }

    /// Closes every export and image (QEMU stores persistent bitmaps into
    /// an image as it closes it) and ends the daemon.
    pub fn quit(mut self) -> Result<()> {
        let result = self.close_all();
        let _ = self.qmp.execute("quit", json!({}));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(Error::Disk(
                        "qemu-storage-daemon did not quit; it was killed, so the images' dirty bitmaps will not be trusted next time".into(),
                    ));
                }
            }
        }
        result
    }

    /// Ends every export and the NBD server: an exported bitmap is busy
    /// until then.
    pub fn close_exports(&mut self) -> Result<()> {
        for id in std::mem::take(&mut self.exports) {
            self.qmp
                .execute("block-export-del", json!({ "id": id, "mode": "hard" }))?;
        }
        if self.nbd_started {
            self.qmp.execute("nbd-server-stop", json!({}))?;
            self.nbd_started = false;
        }
        // An export is gone only once QEMU has finished with it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let left = self.qmp.execute("query-block-exports", json!({}))?;
            if left.as_array().is_none_or(|a| a.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn close_all(&mut self) -> Result<()> {
        self.close_exports()?;
        // Deleting a node still held by a closing export fails as "in use".
        for node in std::mem::take(&mut self.nodes) {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match self
                    .qmp
                    .execute("blockdev-del", json!({ "node-name": node }))
                {
                    Ok(_) => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

impl Drop for StorageDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

//! The location test: everything a backup will ask of a storage location,
//! tried once with a small probe object, before a vault is created there
//! and at any time after.
//!
//! Steps run in the order a failure is easiest to explain: reach the
//! service and authenticate (a listing), write, read back and compare,
//! delete, then report free capacity where the service can tell. The first
//! failing step stops the test and carries the classified failure
//! ([`StorageFailure`]) with its remedy.

use std::time::Instant;

use crate::error::Error;
use crate::location::StorageFailure;
use crate::storage::Storage;

/// One step of the test.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    /// What was found (on success) or the error (on failure).
    pub detail: String,
    pub millis: u64,
}

/// The whole test.
#[derive(Debug, Clone)]
pub struct Report {
    pub location: String,
    pub kind: &'static str,
    pub steps: Vec<Step>,
    /// Why the test failed, when it did.
    pub failure: Option<StorageFailure>,
    /// Free bytes, when the service reports them.
    pub free_bytes: Option<u64>,
    /// Whether a Coffer vault is already there.
    pub holds_vault: bool,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

fn classify(e: &Error) -> StorageFailure {
    match e {
        Error::Storage { failure, .. } => *failure,
        // Anything else, such as a probe object gone between write and read.
        _ => StorageFailure::Other,
    }
}

/// Runs the location test. Leaves nothing behind when it succeeds; when a
/// step after the write fails, the probe object is deleted if possible.
pub fn run(storage: &Storage) -> Report {
    let storage = &storage.with_quick_retries();
    let mut report = Report {
        location: storage.display().to_string(),
        kind: storage.scheme().name(),
        steps: Vec::new(),
        failure: None,
        free_bytes: None,
        holds_vault: false,
    };
    let step =
        |report: &mut Report, name: &'static str, f: &mut dyn FnMut() -> crate::Result<String>| {
            let started = Instant::now();
            let result = f();
            let millis = started.elapsed().as_millis() as u64;
            match result {
                Ok(detail) => {
                    report.steps.push(Step {
                        name,
                        ok: true,
                        detail,
                        millis,
                    });
                    true
                }
                Err(e) => {
                    // The first failure is the one to fix.
                    report.failure.get_or_insert(classify(&e));
                    report.steps.push(Step {
                        name,
                        ok: false,
                        detail: e.to_string(),
                        millis,
                    });
                    false
                }
            }
        };

    let mut holds_vault = false;
    if !step(&mut report, "connect and authenticate", &mut || {
        let found = storage.list_top()?;
        holds_vault = found.iter().any(|name| name == "vault");
        Ok(match (holds_vault, found.len()) {
            (true, _) => "a Coffer vault is there".to_string(),
            (false, 0) => "reached; the location is empty".to_string(),
            (false, n) => format!("reached; {n} entries there, no Coffer vault"),
        })
    }) {
        return report;
    }
    report.holds_vault = holds_vault;

    let name = format!("coffer-location-test-{:016x}", rand::random::<u64>());
    let mut payload = vec![0u8; 64 << 10];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut payload);
    if !step(&mut report, "write a probe object", &mut || {
        storage.put(&name, payload.clone())?;
        Ok(format!("{} bytes written", payload.len()))
    }) {
        return report;
    }
    let read_ok = step(&mut report, "read it back", &mut || {
        let back = storage.get(&name)?;
        if back != payload {
            return Err(Error::Storage {
                path: name.clone(),
                failure: StorageFailure::Other,
                message: format!(
                    "the probe object came back different ({} bytes instead of {}): the location does not keep data intact",
                    back.len(),
                    payload.len()
                ),
            });
        }
        Ok("identical".to_string())
    });
    let deleted = step(&mut report, "delete it", &mut || {
        storage.delete(&name)?;
        match storage.size(&name)? {
            None => Ok("deleted".to_string()),
            Some(_) => Err(Error::Storage {
                path: name.clone(),
                failure: StorageFailure::PermissionDenied,
                message: "the probe object is still there after a delete".into(),
            }),
        }
    });
    if !(read_ok && deleted) {
        return report;
    }
    let free = storage.free_bytes();
    report.free_bytes = free;
    report.steps.push(Step {
        name: "free capacity",
        ok: true,
        detail: match free {
            Some(b) => format!("{b} bytes free"),
            None => format!("{} does not report free capacity", storage.scheme().name()),
        },
        millis: 0,
    });
    report
}

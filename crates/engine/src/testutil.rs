//! Helpers shared by the engine's tests: a fresh vault on disk and a backup
//! that must succeed without entry errors.

use std::path::Path;

use crate::backup::{backup, BackupOptions, Progress};
use crate::keys::{VaultKey, GENERATED_KEY_KDF};
use crate::storage::Storage;
use crate::vault::Vault;

/// A new vault in `dir` (format 1 when asked), opened, with its key.
pub fn new_vault(dir: &Path, format_1: bool) -> (Vault, VaultKey) {
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let (key, _) = VaultKey::generate();
    if format_1 {
        Vault::init_format(&storage, &key, GENERATED_KEY_KDF, 1).unwrap();
    } else {
        Vault::init(&storage, &key, GENERATED_KEY_KDF).unwrap();
    }
    (Vault::open(storage, &key, None).unwrap(), key)
}

/// Backs up `src` and fails the test on any entry error.
pub fn back_up(vault: &Vault, src: &Path) {
    let report = backup(
        vault,
        &[src.to_path_buf()],
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    assert!(
        report.manifest.errors.is_empty(),
        "{:?}",
        report.manifest.errors
    );
}

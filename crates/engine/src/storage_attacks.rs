//! The vault against whoever owns its storage: objects written, copied or
//! changed there without the key are refused or detected, never obeyed.

use crate::keys::{KeySlot, GENERATED_KEY_KDF};
use crate::testutil::new_vault;
use crate::vault::Vault;
use crate::{Error, Storage, VaultKey};

/// Rewrites a slot's Argon2 memory and its checksum, as anyone can.
fn with_memory(slot: &[u8], memory_kib: u32) -> Vec<u8> {
    let mut bytes = slot.to_vec();
    bytes[12..16].copy_from_slice(&memory_kib.to_le_bytes());
    let split = bytes.len() - 32;
    let sum = *blake3::hash(&bytes[..split]).as_bytes();
    bytes[split..].copy_from_slice(&sum);
    bytes
}

#[test]
fn a_slot_asking_for_16_gib_is_skipped_and_never_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let (vault, key) = new_vault(&dir, false);
    let good = vault
        .add_key(&VaultKey::generate().0, GENERATED_KEY_KDF)
        .unwrap();
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let bytes = storage.get(&format!("keys/{}", good.id)).unwrap();
    storage
        .put("keys/00000000000000ff", with_memory(&bytes, 16 << 20))
        .unwrap();
    // The vault still opens with its own key, past the hostile slot.
    Vault::open(Storage::open(dir.to_str().unwrap()).unwrap(), &key, None).unwrap();

    // With only hostile slots left, the answer says what is wrong.
    for obj in storage.list("keys/").unwrap() {
        if !obj.path.ends_with("00000000000000ff") {
            storage.delete(&obj.path).unwrap();
        }
    }
    let e = Vault::open(storage, &key, None).err().unwrap();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("16384 MiB") && text.contains("coffer key remove"),
        "{text}"
    );
    assert!(KeySlot::parse("x", &with_memory(&bytes, 1 << 20)).is_ok());
}

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

#[test]
fn a_journal_record_copied_under_a_later_name_is_left_out_and_stops_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let (mut vault, _) = new_vault(&dir, false);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"kept").unwrap();
    crate::testutil::back_up(&vault, &src);
    let point = vault.resolve_point("latest", None).unwrap();
    crate::changes::delete_points(&vault, std::slice::from_ref(&point), "by hand").unwrap();
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let names = |s: &Storage| -> Vec<String> {
        let mut n: Vec<String> = s
            .list("journal/")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        n.sort();
        n
    };
    let deletion = names(&storage).pop().unwrap();
    assert_eq!(vault.header().version, crate::keys::FORMAT_VERSION);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    crate::changes::undelete(&vault, &[point.id]).unwrap();
    assert!(vault.state().unwrap().soft_deleted.is_empty());

    // The storage owner replays the soft delete after the undelete.
    let later = crate::journal::record_path(jiff::Timestamp::now().as_nanosecond() + 5_000_000_000);
    storage
        .put(&later, storage.get(&deletion).unwrap())
        .unwrap();
    // Format 4 seals the name in: even a copy within the same second,
    // which the time check alone lets through, does not open.
    let same_second = format!("{}-{}", &deletion[..deletion.len() - 17], "0".repeat(16));
    storage
        .put(&same_second, storage.get(&deletion).unwrap())
        .unwrap();
    let state = vault.state().unwrap();
    assert!(state.soft_deleted.is_empty(), "the copy was obeyed");
    assert_eq!(state.unreadable.len(), 2, "{:?}", state.unreadable);
    assert!(
        state.unreadable[0].contains("copied or renamed"),
        "{:?}",
        state.unreadable
    );
    let plan = crate::prune::plan(&vault, &state, jiff::Timestamp::now().as_second()).unwrap();
    let e = crate::prune::execute(&vault, &state, &plan).err().unwrap();
    assert!(e.to_string().contains("prune refused"), "{e}");
    let report = crate::check::check(&mut vault, crate::check::ReadData::None).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("copied or renamed")),
        "{:?}",
        report.problems
    );
    // The point is still there to restore.
    assert!(vault.resolve_point(&point.id.to_hex(), None).is_ok());
}

#[test]
fn an_upgraded_format_3_journal_reads_on_and_refuses_old_style_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let key = VaultKey::generate().0;
    Vault::init_format(&storage, &key, GENERATED_KEY_KDF, 3).unwrap();
    let reopen = || Vault::open(Storage::open(dir.to_str().unwrap()).unwrap(), &key, None).unwrap();
    let vault = reopen();
    assert_eq!(vault.header().version, 3);
    let point = crate::ids::ObjectId([7; 32]);
    let held = vault
        .record_named(crate::journal::Event::Hold { point })
        .unwrap();
    vault
        .record(crate::journal::Event::SoftDeleteDays(20))
        .unwrap();

    let mut vault = reopen();
    assert_eq!(vault.upgrade().unwrap(), 3);
    let mut vault = reopen();
    assert_eq!(vault.header().version, crate::keys::FORMAT_VERSION);
    let state = vault.state().unwrap();
    assert!(state.unreadable.is_empty(), "{:?}", state.unreadable);
    assert!(state.holds.contains(&point) && state.soft_delete_days == 20);
    // Upgrading again changes nothing.
    assert_eq!(vault.upgrade().unwrap(), crate::keys::FORMAT_VERSION);
    assert_eq!(vault.state().unwrap().records, 3);

    // A format 3 record copied within its second, now: left out.
    let copy = format!("{}-{}", &held[..held.len() - 17], "f".repeat(16));
    storage.put(&copy, storage.get(&held).unwrap()).unwrap();
    let state = vault.state().unwrap();
    assert_eq!(state.unreadable.len(), 1);
    assert!(
        state.unreadable[0].contains("not in the journal when the vault moved to format 4"),
        "{:?}",
        state.unreadable
    );
    storage.delete(&copy).unwrap();

    // The upgrade's record gone (an interrupted upgrade, or the storage
    // owner): the old records are not read until the upgrade runs again.
    let upgraded = storage
        .list("journal/")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .max()
        .unwrap();
    storage.delete(&upgraded).unwrap();
    let state = vault.state().unwrap();
    assert_eq!(state.unreadable.len(), 2, "{:?}", state.unreadable);
    assert!(state.unreadable[0].contains("coffer vault upgrade"));
    vault.upgrade().unwrap();
    let state = vault.state().unwrap();
    assert!(state.unreadable.is_empty() && state.holds.contains(&point));
}

#[test]
fn locations_named_by_the_journal_open_only_as_the_opener_allows() {
    use crate::journal::ReplicaMode;
    use crate::vault::JournalLocations;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let (vault, key) = new_vault(&dir, false);
    let replica = tmp.path().join("replica");
    let tier = tmp.path().join("tier");
    crate::replica::add(&vault, replica.to_str().unwrap(), ReplicaMode::Sync).unwrap();
    crate::tier::set(&vault, tier.to_str().unwrap(), 3).unwrap();
    let open = |allowed: JournalLocations| {
        let storage = Storage::open(dir.to_str().unwrap()).unwrap();
        Vault::open_with(storage, &key, None, allowed).unwrap()
    };

    let guarded = open(JournalLocations::Configured(Default::default()));
    let unattached = guarded.unattached();
    assert_eq!(unattached.len(), 2, "{unattached:?}");
    assert!(unattached.iter().all(|u| u.contains("has not been given")));
    let e = guarded
        .open_journal_location(replica.to_str().unwrap())
        .err()
        .unwrap();
    assert!(e.to_string().contains("has not been given"), "{e}");
    // Nothing this opening writes reaches the replica or the tier.
    let count = |d: &std::path::Path| walk_count(d);
    let (replica_before, tier_before) = (count(&replica), count(&tier));
    guarded
        .record(crate::journal::Event::SoftDeleteDays(5))
        .unwrap();
    assert_eq!(
        (count(&replica), count(&tier)),
        (replica_before, tier_before)
    );

    let allowed = JournalLocations::Configured(
        [replica.to_str().unwrap(), tier.to_str().unwrap()]
            .into_iter()
            .map(|l| (l.to_string(), crate::location::Credentials::new()))
            .collect(),
    );
    let trusted = open(allowed);
    assert!(trusted.unattached().is_empty());
    trusted
        .record(crate::journal::Event::SoftDeleteDays(6))
        .unwrap();
    assert_eq!(count(&replica), replica_before + 1);
    assert_eq!(count(&tier), tier_before + 1);
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_process_that_opened_the_vault_before_an_upgrade_writes_records_the_new_way() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let key = VaultKey::generate().0;
    Vault::init_format(&storage, &key, GENERATED_KEY_KDF, 3).unwrap();
    let open = || Vault::open(Storage::open(dir.to_str().unwrap()).unwrap(), &key, None).unwrap();
    let early = open();
    open().upgrade().unwrap();
    early
        .record(crate::journal::Event::SoftDeleteDays(9))
        .unwrap();
    let state = open().state().unwrap();
    assert!(state.unreadable.is_empty(), "{:?}", state.unreadable);
    assert_eq!(state.soft_delete_days, 9);
}

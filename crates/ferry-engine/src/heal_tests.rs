//! Stores that lose, roll back or gain objects behind the devices' backs: the devices notice
//! and repair what they can, and say what they cannot.

use crate::blob::BlobId;
use crate::identity::{DeviceKeys, VaultKeys};
use crate::sync_tests::{handle, sync, two_synced_devices};
use crate::*;
use ferry_format::objects::paths;
use ferry_format::seal::{self, ObjectId, ObjectKind};
use ferry_store::{MemoryStore, Store};
use serde_json::json;

#[test]
fn a_stray_object_at_a_devices_next_segment_is_replaced_and_a_true_clash_still_lets_it_pull() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = two_synced_devices(dir.path(), &store);

    // Junk where a's first segment goes (a sync tool's leftover, a hostile writer).
    let first = paths::segment(a.device_id(), 1);
    store.put(&first, b"not a ferry object").unwrap();
    a.put("notes", "n1", &json!("from a")).unwrap();
    let report = a.sync(handle(&store), Direction::Both).unwrap();
    assert_eq!(report.push.unwrap().replaced_strays, vec![first]);
    sync(&mut b, &store);
    assert!(b.get("notes", "n1").unwrap().is_some(), "the repaired segment reaches b");

    // A different segment signed with a's own key: another copy of a writes here. a refuses to
    // push over it, says so, and still receives b's writes.
    let keys = VaultKeys::load(&a.conn).unwrap();
    let device = DeviceKeys::load(&a.conn).unwrap();
    let clash = seal::seal(
        ObjectKind::Segment,
        keys.vault_id,
        a.device_id(),
        ObjectId::segment(2),
        [9; 24],
        &keys.sealing(&device),
        b"written by a copy of a",
    )
    .unwrap();
    store.put(&paths::segment(a.device_id(), 2), &clash).unwrap();
    b.put("notes", "from-b", &json!(1)).unwrap();
    sync(&mut b, &store);
    a.put("notes", "n2", &json!("from a again")).unwrap();
    let err = a.sync(handle(&store), Direction::Both).unwrap_err();
    assert!(matches!(err, Error::ForeignOwnObject { .. }), "{err:?}");
    assert!(err.to_string().contains("another copy of this device"), "{err}");
    assert!(a.get("notes", "from-b").unwrap().is_some(), "the pull ran despite the push's refusal");
}

#[test]
fn damaged_store_files_and_bad_values_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (_a, _b) = two_synced_devices(dir.path(), &store);
    let slot = paths::key_slot(&ferry_format::EpochRef::FIRST, "passphrase");
    let good_slot = store.get(&slot).unwrap().unwrap();

    // A damaged passphrase slot is damage, not a wrong passphrase.
    store.put(&slot, b"this is not an age file").unwrap();
    let err = crate::sync_tests::try_join(dir.path(), "c", &store).unwrap_err();
    assert!(matches!(err, Error::BadStoreObject { .. }), "{err:?}");
    assert!(err.to_string().contains("damaged") && err.to_string().contains("not a wrong passphrase"), "{err}");
    store.put(&slot, &good_slot).unwrap();

    // A vault file whose vault id was edited names the mismatch.
    let mut file: serde_json::Value = serde_json::from_slice(&store.get(paths::VAULT_FILE).unwrap().unwrap()).unwrap();
    file["vault_id"] = json!("0123456789abcdef0123456789abcdef");
    store.put(paths::VAULT_FILE, &serde_json::to_vec(&file).unwrap()).unwrap();
    let err = crate::sync_tests::try_join(dir.path(), "d", &store).unwrap_err();
    assert!(err.to_string().contains("vault file was edited or replaced"), "{err}");

    // A lone UTF-16 surrogate is explained.
    let err = ferry_format::JsonValue::parse(r#""\ud800""#).unwrap_err();
    assert!(err.to_string().contains("half of a pair"), "{err}");
}

#[test]
fn a_blob_put_clears_what_a_killed_one_left_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, _b) = two_synced_devices(dir.path(), &store);
    let fan_out = a.home.blob_dir().join("ab");
    std::fs::create_dir_all(&fan_out).unwrap();
    let left = fan_out.join("abab.tmp");
    std::fs::write(&left, b"half a chunk").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 60 * 60);
    std::fs::File::options().write(true).open(&left).unwrap().set_modified(two_hours_ago).unwrap();
    a.put_blob(&b"a new blob"[..]).unwrap();
    assert!(!left.exists());
}

#[test]
fn an_emptied_store_is_rebuilt_by_the_next_sync_and_a_new_device_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, phrase) = crate::sync_tests::first_device_with_phrase(dir.path(), "a", &store);
    sync(&mut a, &store);
    let mut b = crate::sync_tests::join(dir.path(), "b", &store);
    b.put("notes", "from-b", &json!("b's")).unwrap();
    let blob = b.put_blob(&b"a blob of b"[..]).unwrap();
    sync(&mut b, &store);
    a.put("notes", "from-a", &json!("a's")).unwrap();
    sync(&mut a, &store);

    // Someone empties the store (rm -rf, a wiped bucket).
    for path in store.list("").unwrap() {
        store.delete(&path).unwrap();
    }
    let report = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap();
    assert!(report.rebuilt_store && report.republished_head, "{report:?}");
    assert!(store.get(paths::VAULT_FILE).unwrap().is_some());

    // A device joining now (with the recovery phrase: the passphrase slot needs the passphrase)
    // finds everything, b's data and blob included, relayed by a.
    let phrase = ferry_format::RecoveryPhrase::parse(&phrase).unwrap();
    let mut c = crate::sync_tests::join_with_phrase(dir.path(), "c", &store, &phrase).unwrap();
    sync(&mut c, &store);
    assert!(c.get("notes", "from-a").unwrap().is_some());
    assert!(c.get("notes", "from-b").unwrap().is_some());
    // b, syncing later, finds its log there (a relayed it) and carries on.
    b.put("notes", "later", &json!(1)).unwrap();
    sync(&mut b, &store);
    sync(&mut c, &store);
    assert!(c.get("notes", "later").unwrap().is_some());
    // a's own blobs come back with the rebuild; b's blob, which a never fetched, comes back
    // with b's next store check (its HEAD is intact: only the listing shows the loss).
    let mut out = Vec::new();
    assert!(c.get_blob(&blob.id.parse().unwrap(), &[handle(&store)], &mut out).is_err());
    audit_at_next_push(&b, &store);
    let report = b.sync(handle(&store), Direction::Both).unwrap().push.unwrap();
    let audit = report.audit.expect("the check ran");
    assert!(audit.missing.contains(&paths::blob(&blob.id.parse::<BlobId>().unwrap().0)), "{audit:?}");
    c.get_blob(&blob.id.parse().unwrap(), &[handle(&store)], &mut out).unwrap();
    assert_eq!(out, b"a blob of b");
}

/// Makes the next push list the store (as it does every [`AUDIT_EVERY`]).
fn audit_at_next_push(vault: &Vault, store: &dyn Store) {
    vault.check_store_at_next_push(handle(store).id).unwrap();
}

#[test]
fn segments_lost_in_the_middle_of_a_log_are_put_back_by_their_writer_and_by_relays() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = two_synced_devices(dir.path(), &store);
    for n in 0..6 {
        a.put("notes", &format!("a{n}"), &json!(n)).unwrap();
        sync(&mut a, &store);
    }
    sync(&mut b, &store);
    let a_id = a.device_id();
    let lost: Vec<String> = (2..=4).map(|seq| paths::segment(a_id, seq)).collect();
    for path in &lost {
        store.delete(path).unwrap();
    }
    // A new device stops at the gap; a's HEAD is intact, so only a listing shows the loss.
    let mut c = crate::sync_tests::join(dir.path(), "c", &store);
    let pulled = c.sync(handle(&store), Direction::Both).unwrap().pull.unwrap();
    assert!(pulled.skipped.iter().any(|(_, why)| why.contains("missing")), "{pulled:?}");
    assert!(c.get("notes", "a5").unwrap().is_none());
    // Within the hour, a push is not the moment to list the store...
    let report = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap();
    assert!(report.audit.is_none(), "{report:?}");
    // ...at the next check b (which imported them) relays them before a even looks.
    audit_at_next_push(&b, &store);
    let audit = b.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert_eq!(audit.missing, lost);
    assert_eq!(audit.restored, 3);
    sync(&mut c, &store);
    assert!(c.get("notes", "a5").unwrap().is_some(), "c reads past the repaired gap");
    // a's own check finds nothing left to do.
    audit_at_next_push(&a, &store);
    let audit = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert!(audit.is_complete() && audit.restored == 0, "{audit:?}");
    // And its writer puts them back alone when no other device holds them.
    store.delete(&lost[0]).unwrap();
    let audit = a.check_store_contents(handle(&store)).unwrap();
    assert_eq!(audit.missing, vec![lost[0].clone()], "a check without repair only reports");
    assert!(store.get(&lost[0]).unwrap().is_none());
    audit_at_next_push(&a, &store);
    let audit = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert_eq!(audit.restored, 1);
    assert!(store.get(&lost[0]).unwrap().is_some());
}

#[test]
fn a_damaged_copy_of_anothers_segment_is_replaced_by_a_verified_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = two_synced_devices(dir.path(), &store);
    a.put("notes", "n", &json!("a")).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    let path = paths::segment(a.device_id(), 1);
    let mut damaged = store.get(&path).unwrap().unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    store.put(&path, &damaged).unwrap();
    let mut c = crate::sync_tests::join(dir.path(), "c", &store);
    let pulled = c.sync(handle(&store), Direction::Both).unwrap().pull.unwrap();
    assert!(pulled.skipped.iter().any(|(p, _)| *p == path), "{pulled:?}");
    // c's check cannot help (it holds no good copy); b's replaces it.
    audit_at_next_push(&c, &store);
    let audit = c.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert!(audit.damaged.is_empty(), "{audit:?}");
    audit_at_next_push(&b, &store);
    let audit = b.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert!(audit.damaged.is_empty(), "b never pulled the damaged copy, so it skipped nothing: {audit:?}");
    // The device that saw the damage and later got a good copy (through another store or a
    // peer) is the one that repairs: give c a's segment through a second store.
    let other = MemoryStore::default();
    for key in store.list("").unwrap() {
        other.put(&key, &store.get(&key).unwrap().unwrap()).unwrap();
    }
    other.put(&path, &b.held_object(&path).unwrap().unwrap()).unwrap();
    let id = c.attach_store("test:other", &other, None).unwrap();
    c.sync(StoreHandle { id, store: &other }, Direction::Both).unwrap();
    assert!(c.get("notes", "n").unwrap().is_some());
    audit_at_next_push(&c, &store);
    let audit = c.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert_eq!(audit.damaged, vec![path.clone()]);
    assert_eq!(store.get(&path).unwrap().unwrap(), b.held_object(&path).unwrap().unwrap());
}

#[test]
fn lost_key_slots_are_written_again_by_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, _b) = two_synced_devices(dir.path(), &store);
    let epoch = ferry_format::EpochRef::FIRST;
    let slots = [paths::key_slot(&epoch, &a.device_id().to_string()), paths::key_slot(&epoch, "recovery")];
    for slot in &slots {
        store.delete(slot).unwrap();
    }
    audit_at_next_push(&a, &store);
    let audit = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert!(audit.keys_missing, "{audit:?}");
    for slot in &slots {
        assert!(store.get(slot).unwrap().is_some(), "{slot} is back");
    }
}

#[test]
fn a_damaged_vault_file_is_written_again_where_this_devices_objects_are() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = two_synced_devices(dir.path(), &store);
    a.put("notes", "n", &json!(1)).unwrap();
    sync(&mut a, &store);
    let good = store.get(paths::VAULT_FILE).unwrap().unwrap();
    store.put(paths::VAULT_FILE, &good[..good.len() / 2]).unwrap();

    // A device with something to push writes it again before anything else.
    b.put("notes", "m", &json!(2)).unwrap();
    let report = b.sync(handle(&store), Direction::Both).unwrap().push.unwrap();
    assert_eq!(report.replaced_strays, vec![paths::VAULT_FILE.to_owned()]);
    assert!(crate::sync::enroll::read_vault_file(&store).unwrap().is_some());

    // Damaged together with a rolled-back HEAD (a restored backup of the share): both mended.
    let head = paths::head(b.device_id());
    let old_head = store.get(&head).unwrap().unwrap();
    b.put("notes", "m2", &json!(3)).unwrap();
    sync(&mut b, &store);
    store.put(&head, &old_head).unwrap();
    store.put(paths::VAULT_FILE, &good[..10]).unwrap();
    b.put("notes", "m3", &json!(4)).unwrap();
    let report = b.sync(handle(&store), Direction::Both).unwrap().push.unwrap();
    assert!(report.republished_head, "{report:?}");
    assert_eq!(report.replaced_strays, vec![paths::VAULT_FILE.to_owned()]);

    // One with nothing to push finds it at its store check.
    store.put(paths::VAULT_FILE, b"{\"format\": \"ferry-va").unwrap();
    audit_at_next_push(&a, &store);
    let audit = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert_eq!(audit.damaged, vec![paths::VAULT_FILE.to_owned()]);
    crate::sync_tests::join(dir.path(), "c", &store);

    // Its first segment and record lost too: any other of its objects proves the store.
    store.delete(&paths::segment(a.device_id(), 1)).unwrap();
    store.delete(&paths::device_record(a.device_id())).unwrap();
    store.put(paths::VAULT_FILE, b"{").unwrap();
    audit_at_next_push(&a, &store);
    let audit = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert!(audit.damaged.contains(&paths::VAULT_FILE.to_owned()), "{audit:?}");

    // A store whose damaged vault file sits beside none of this device's objects is not taken.
    let elsewhere = MemoryStore::default();
    elsewhere.put(paths::VAULT_FILE, b"{").unwrap();
    let audit = a.check_store_contents(handle(&elsewhere)).unwrap();
    assert!(audit.damaged.is_empty(), "{audit:?}");
}

#[test]
fn truncated_objects_are_found_by_their_listed_size_and_replaced_by_good_copies() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = two_synced_devices(dir.path(), &store);
    for n in 0..3 {
        b.put("notes", &format!("b{n}"), &json!("many words ".repeat(n * 20))).unwrap();
        sync(&mut b, &store);
    }
    sync(&mut a, &store);
    // A full disk cut b's record and b's second segment; the devices that hold them never
    // read them again, so only a new device would notice.
    let record = paths::device_record(b.device_id());
    let segment = paths::segment(b.device_id(), 2);
    for path in [&record, &segment] {
        let bytes = store.get(path).unwrap().unwrap();
        store.put(path, &bytes[..bytes.len() - 10]).unwrap();
    }
    let audit = a.check_store_contents(handle(&store)).unwrap();
    assert_eq!(audit.damaged, vec![record.clone(), segment.clone()], "{audit:?}");
    audit_at_next_push(&a, &store);
    let audit = a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().audit.unwrap();
    assert_eq!(audit.restored, 2, "{audit:?}");
    let mut c = crate::sync_tests::join(dir.path(), "c", &store);
    sync(&mut c, &store);
    assert!(c.get("notes", "b2").unwrap().is_some(), "a new device reads all of b's log");

    // A copy of another size that b signed (as after b re-sealed its log for a forget) is
    // left alone: only a copy that does not verify is damage.
    let resealed = store.get(&paths::segment(b.device_id(), 3)).unwrap().unwrap();
    assert_ne!(resealed.len(), store.get(&segment).unwrap().unwrap().len());
    store.put(&segment, &resealed).unwrap();
    let audit = a.check_store_contents(handle(&store)).unwrap();
    assert!(audit.damaged.is_empty(), "{audit:?}");
}

//! Stores that lose, roll back or gain objects behind the devices' backs: the devices notice
//! and repair what they can, and say what they cannot.

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

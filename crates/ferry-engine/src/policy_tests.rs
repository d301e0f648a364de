//! Merge policies between real devices: what each one shows after concurrent edits.

use crate::sync_tests::{devices, sync};
use crate::*;
use ferry_format::OpId;
use ferry_store::MemoryStore;
use serde_json::json;

/// Two devices that both edit `notes/n1` (starting from `base`) without seeing each other.
fn concurrent_edits(
    policy: Option<Policy>,
    base: serde_json::Value,
    a_edit: serde_json::Value,
    b_edit: serde_json::Value,
) -> (Vault, Vault, MemoryStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    if let Some(policy) = policy {
        a.set_policy("notes", &policy).unwrap();
    }
    a.put("notes", "n1", &base).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    a.put("notes", "n1", &a_edit).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3)); // b's write is the later one
    b.put("notes", "n1", &b_edit).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    sync(&mut a, &store);
    (a, b, store, dir)
}

fn value(vault: &Vault) -> serde_json::Value {
    serde_json::from_str(vault.get("notes", "n1").unwrap().unwrap().value.as_str()).unwrap()
}

#[test]
fn fields_keeps_a_title_edited_here_and_a_body_edited_there() {
    let (a, b, _store, _dir) = concurrent_edits(
        Some(Policy::Fields),
        json!({"title": "Draft", "body": "text", "tags": ["x"]}),
        json!({"title": "Final", "body": "text", "tags": ["x"]}),
        json!({"title": "Draft", "body": "better text"}),
    );
    let expected = json!({"title": "Final", "body": "better text"});
    assert_eq!(value(&a), expected, "title from a, body and removed tags from b");
    assert_eq!(value(&b), expected);
    assert_eq!(a.get("notes", "n1").unwrap().unwrap().heads, 2);
}

#[test]
fn lww_takes_the_later_whole_value() {
    let (a, b, _store, _dir) = concurrent_edits(
        None,
        json!({"title": "Draft", "body": "text"}),
        json!({"title": "Final", "body": "text"}),
        json!({"title": "Draft", "body": "better text"}),
    );
    // b wrote second, so its clock is later.
    assert_eq!(value(&a), json!({"title": "Draft", "body": "better text"}));
    assert_eq!(value(&a), value(&b));
}

#[test]
fn priority_prefers_the_first_device_then_the_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = crate::sync_tests::two_synced_devices(dir.path(), &store);
    a.set_policy("notes", &Policy::Priority { order: vec![a.device_id().to_string(), b.device_id().to_string()] })
        .unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    a.put("notes", "n1", &json!("from a, earlier")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    b.put("notes", "n1", &json!("from b, later")).unwrap();
    for vault in [&mut a, &mut b] {
        sync(vault, &store);
    }
    sync(&mut a, &store);
    assert_eq!(value(&a), json!("from a, earlier"));
    assert_eq!(value(&b), json!("from a, earlier"));
    // A later write that saw both wins whatever its device: priority only orders concurrent writes.
    b.put("notes", "n1", &json!("b, after seeing both")).unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    assert_eq!(value(&a), json!("b, after seeing both"));

    // Changing the policy folds the records with several heads again, on every device.
    a.put("notes", "n2", &json!("a")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    b.put("notes", "n2", &json!("b")).unwrap();
    for vault in [&mut a, &mut b] {
        sync(vault, &store);
    }
    sync(&mut a, &store);
    assert_eq!(a.get("notes", "n2").unwrap().unwrap().value.as_str(), "\"a\"");
    a.set_policy("notes", &Policy::Lww).unwrap();
    assert_eq!(a.get("notes", "n2").unwrap().unwrap().value.as_str(), "\"b\"");
    sync(&mut a, &store);
    sync(&mut b, &store);
    assert_eq!(b.get("notes", "n2").unwrap().unwrap().value.as_str(), "\"b\"");
    assert!(matches!(
        a.set_policy("notes", &Policy::Priority { order: vec!["00".repeat(16)] }),
        Err(Error::UnknownDevice(_))
    ));
}

#[test]
fn manual_flags_the_conflict_until_a_person_resolves_it() {
    let (mut a, mut b, store, _dir) =
        concurrent_edits(Some(Policy::Manual), json!("base"), json!("mine"), json!("theirs"));
    let record = a.get("notes", "n1").unwrap().unwrap();
    assert!(record.conflict && record.heads == 2);
    let report = a.conflicts().unwrap();
    assert_eq!(report.unresolved.len(), 1);
    assert_eq!((report.unresolved[0].key.as_str(), report.unresolved[0].heads), ("n1", 2));
    let notes = report.collections.iter().find(|c| c.collection == "notes").unwrap();
    assert_eq!((notes.policy.as_str(), notes.records_with_heads), ("manual", 1));
    let heads = a.heads("notes", "n1").unwrap();
    assert_eq!(heads.len(), 2);
    let mine = heads.iter().find(|h| h.value.as_ref().map(|v| v.as_str()) == Some("\"mine\"")).unwrap();
    assert_eq!(mine.device_name.as_deref(), Some("a"));

    let err = a.resolve("notes", "n1", &Resolution::Pick(OpId { device: a.device_id(), counter: 999 })).unwrap_err();
    assert!(matches!(err, Error::NotAHead { .. }), "{err:?}");
    let op: OpId = mine.op.parse().unwrap();
    a.resolve("notes", "n1", &Resolution::Pick(op)).unwrap();
    assert!(!a.get("notes", "n1").unwrap().unwrap().conflict);
    assert_eq!(value(&a), json!("mine"));
    sync(&mut a, &store);
    sync(&mut b, &store);
    let on_b = b.get("notes", "n1").unwrap().unwrap();
    assert!(!on_b.conflict && on_b.heads == 1, "the resolution syncs like any write");
    assert_eq!(value(&b), json!("mine"));
    assert!(b.conflicts().unwrap().unresolved.is_empty());
}

/// The merge vectors of docs/FORMAT.md ("Merge order"), recomputed between two real devices.
#[test]
fn format_document_states_the_merge_vectors() {
    let format = include_str!("../../../docs/FORMAT.md");
    let base = json!({"title": "Draft", "body": "text", "n": 1});
    let a_edit = json!({"title": "Final", "body": "text", "n": 1});
    let b_edit = json!({"title": "Draft", "body": "better", "n": 2});
    for name in ["lww", "fields", "priority"] {
        let (mut a, mut b, store, _dir) = concurrent_edits(None, base.clone(), a_edit.clone(), b_edit.clone());
        let order = vec![a.device_id().to_string(), b.device_id().to_string()];
        let policy = match name {
            "fields" => Some(Policy::Fields),
            "priority" => Some(Policy::Priority { order }),
            _ => None,
        };
        if let Some(policy) = policy {
            a.set_policy("notes", &policy).unwrap();
            for vault in [&mut a, &mut b] {
                sync(vault, &store);
            }
        }
        let shown = a.get("notes", "n1").unwrap().unwrap().value;
        assert_eq!(shown, b.get("notes", "n1").unwrap().unwrap().value, "{name}: both devices agree");
        let line = format!("{name} merge: `{}`", shown.as_str());
        assert!(format.contains(&line), "docs/FORMAT.md must contain the line\n{line}");
    }
}

//! Retention end to end: compaction, snapshots and prune across devices that write, sync, stay
//! offline and join late, through the real sync paths.

use crate::sync_tests::{devices, handle, join, state, sync};
use crate::*;
use ferry_format::objects::paths;
use ferry_store::{MemoryStore, Store};
use serde_json::json;

/// Prune now: keep no superseded history, no grace period.
fn prune_now(vault: &mut Vault, store: &dyn Store) -> PruneReport {
    let options = PruneOptions { keep: Some(Retention::Keep { ms: 0 }), grace_ms: 0, dry_run: false };
    vault.prune(&[handle(store)], &options).unwrap()
}

fn values(vault: &Vault) -> Vec<(String, String, String, usize)> {
    state(vault).0
}

fn segments_in(store: &dyn Store) -> usize {
    store.list("log/").unwrap().iter().filter(|p| p.ends_with(".seg")).count()
}

#[test]
fn after_a_prune_every_device_converges_a_new_one_joins_from_the_snapshot_and_an_offline_one_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "offline"]);
    let mut joined = joined.into_iter();
    let (mut b, mut offline) = (joined.next().unwrap(), joined.next().unwrap());
    for vault in [&mut b, &mut offline, &mut a] {
        sync(vault, &store);
    }
    // History: each record rewritten many times, from both devices.
    for round in 0..6 {
        a.put("notes", "n1", &json!({"round": round, "by": "a"})).unwrap();
        sync(&mut a, &store);
        b.put("notes", "n2", &json!({"round": round, "by": "b"})).unwrap();
        sync(&mut b, &store);
    }
    a.delete("notes", "n2").unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    // The offline device wrote before the prune and never published.
    offline.put("notes", "from-offline", &json!("written offline")).unwrap();
    let before = segments_in(&store);

    let report = prune_now(&mut a, &store);
    assert!(report.local.ops >= 8, "superseded ops dropped: {report:?}");
    let snapshot = report.snapshot.clone().expect("a snapshot was written");
    let (_, pruned) = &report.stores[0];
    let pruned = pruned.as_ref().unwrap();
    assert!(pruned.deleted_objects >= 12, "{pruned:?}");
    assert!(segments_in(&store) < before / 4, "{} of {before} segments left", segments_in(&store));
    assert!(store.get(&snapshot.path).unwrap().is_some());
    for device in [&a, &b] {
        assert!(store.get(&paths::head(device.device_id())).unwrap().is_some(), "HEADs are never pruned");
    }
    assert_eq!(a.repair().unwrap().corrected, 0, "what compaction left folds to the same state");

    // b keeps syncing through the pruned store.
    b.put("notes", "n3", &json!("after the prune")).unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    assert_eq!(values(&a), values(&b));

    // A new device starts from the snapshot, then the tail.
    let mut c = join(dir.path(), "c", &store);
    let report = sync(&mut c, &store);
    assert_eq!(report.pull.unwrap().snapshot.as_deref(), Some(snapshot.path.as_str()));
    assert_eq!(values(&c), values(&a));

    // The offline device comes back: the segments after its cursors are gone, it loads the
    // snapshot, and its unpublished write reaches everyone.
    let report = sync(&mut offline, &store);
    assert!(report.pull.unwrap().snapshot.is_some());
    for vault in [&mut a, &mut b, &mut c] {
        sync(vault, &store);
    }
    let expected = values(&a);
    assert!(expected.iter().any(|(_, key, ..)| key == "from-offline"));
    for vault in [&b, &c, &offline] {
        assert_eq!(values(vault), expected);
    }
    for vault in [&b, &c, &offline] {
        let skipped = vault.sync_status().unwrap().skipped;
        assert!(skipped.is_empty(), "nothing skipped: {skipped:?}");
    }
}

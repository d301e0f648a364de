//! `ferry prune` and `ferry policy retention` through the real binary and a folder store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Store, laptop_and_phone};

fn segments(store: &Store) -> usize {
    store.files().iter().filter(|f| f.ends_with(".seg")).count()
}

#[test]
fn prune_drops_superseded_history_here_and_in_the_store_and_a_new_device_joins_from_the_snapshot() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    // The retention is a synced setting, 30 days unless set.
    assert!(laptop.ok(&["policy", "retention"]).contains("retention: 30d"));
    laptop.ok(&["policy", "retention", "90d"]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    assert!(phone.ok(&["policy", "retention"]).contains("retention: 90d"), "it syncs");
    let bad = laptop.fails(&["policy", "retention", "soon"], 2);
    assert!(bad.contains("not a duration") && bad.contains("30d"), "{bad}");

    for round in 0..8 {
        laptop.ok(&["put", "notes", "n1", &format!(r#"{{"round":{round}}}"#)]);
        laptop.ok(&["sync"]);
    }
    phone.ok(&["sync"]);
    let before = segments(&store);

    // A dry run changes nothing and says what a prune with the default grace would do.
    let dry = laptop.ok(&["prune", "--keep", "0", "--dry-run"]);
    assert!(dry.contains("would drop") && dry.contains("would remove 0 objects"), "{dry}");
    assert_eq!(segments(&store), before);

    // With the default grace period the snapshot is written but nothing is deleted yet.
    let first = laptop.ok(&["prune", "--keep", "0"]);
    assert!(first.contains("snapshot: snapshots/") && first.contains("removed 0 objects"), "{first}");
    assert!(first.contains("go from") && first.contains("prune again then"), "{first}");
    assert_eq!(segments(&store), before);

    let now = laptop.ok(&["prune", "--keep", "0", "--grace", "0", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&now).unwrap();
    let pruned = &report["stores"][0][1]["Ok"];
    assert!(pruned["deleted_objects"].as_u64().unwrap() >= 8, "{now}");
    assert!(segments(&store) < before / 2, "{} of {before} segments left", segments(&store));
    assert_eq!(laptop.ok(&["get", "notes", "n1"]), "{\"round\":7}\n");

    // The phone keeps syncing; a new device joins from the snapshot.
    phone.ok(&["put", "notes", "n2", r#""from the phone""#]);
    phone.ok(&["sync"]);
    let tablet = Device::new();
    let joined = tablet.ok(&["join", &store.url(), "--name", "tablet"]);
    assert!(joined.contains("snapshot"), "{joined}");
    for device in [&laptop, &phone] {
        device.ok(&["sync"]);
    }
    tablet.ok(&["sync"]);
    for device in [&phone, &tablet] {
        assert_eq!(device.ok(&["ls", "notes", "--json"]), laptop.ok(&["ls", "notes", "--json"]));
    }
    let check = tablet.ok(&["store", "check"]);
    assert!(check.contains("holds everything"), "{check}");
    // `sync status` says how much history is kept and how big the store was when listed.
    let status = laptop.ok(&["sync", "status"]);
    assert!(
        status.contains("history: ")
            && status.contains("retention 90d")
            && status.contains("newest snapshot: snapshots/"),
        "{status}"
    );
    assert!(status.contains("holds ") && status.contains(" objects, "), "{status}");
}

//! What a sync costs in requests and bytes, counted by a `CountingStore`:
//!
//! 1. a no-op pull (nothing new) from a store holding 10 devices × S segments each: the
//!    requests it makes (goal ≤ 11: one listing and one conditional HEAD read per device);
//! 2. one changed record pushed: the bytes uploaded (goal ≤ 1 KiB + the sealing overhead of the
//!    objects written: the segment and the HEAD);
//! 3. the hourly store check of that store: its calls (goal ≤ 2: one listing, one read of the
//!    vault file; an S3 listing pages by 1,000 objects).
//!
//! Run: `cargo bench -p ferry-engine --bench requests [-- --segments S]` (default 1,000;
//! `--quick`: 20). The store is in memory: only counts are measured here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;

use common::report::{Goal, Row, record};
use ferry_engine::{
    CreateOptions, Direction, Home, JoinOptions, JoinWith, KdfCost, Passphrase, StoreHandle, Unlock, Vault,
};
use ferry_format::seal::SEAL_OVERHEAD;
use ferry_store::{CountingStore, MemoryStore, Store};

const DEVICES: usize = 10;

fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("bench"), kdf_cost: KdfCost::WorkFactor(10) }
}

fn handle<'a>(vault: &Vault, store: &'a dyn Store) -> StoreHandle<'a> {
    StoreHandle { id: vault.stores().unwrap()[0].id, store }
}

fn main() {
    let segments = common::size_arg("--segments", 1_000, 20);
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let options = CreateOptions { device_name: "d0".into(), unlock: unlock() };
    let mut devices =
        vec![Vault::create_for_store(&Home::new(dir.path().join("d0")), options, "memory", &store).unwrap().vault];
    let first = handle(&devices[0], &store);
    devices[0].sync(first, Direction::Both).unwrap();
    for i in 1..DEVICES {
        let name = format!("d{i}");
        let options = JoinOptions { device_name: name.clone(), unlock: unlock(), with: JoinWith::Passphrase };
        devices.push(Vault::join(&Home::new(dir.path().join(&name)), options, "memory", &store).unwrap());
    }
    for (i, device) in devices.iter_mut().enumerate() {
        for s in 0..segments {
            // One record and one push per segment: a history of many small segments.
            device
                .put_json("notes", &format!("d{i}-{s}"), r#"{"title":"a note","body":"typed on one device"}"#)
                .unwrap();
            device.push(handle(device, &store)).unwrap();
        }
    }
    let reader = &mut devices[0];
    reader.pull(handle(reader, &store)).unwrap();
    assert_eq!(reader.status().unwrap().records as usize, DEVICES * segments);

    let counting = CountingStore::new(&store);
    let report = reader.pull(handle(reader, &counting)).unwrap();
    assert_eq!(report.imported_ops, 0);
    let noop = counting.counts();
    println!(
        "no-op pull, {DEVICES} devices × {segments} segments: {} requests ({} lists, {} reads)",
        noop.total(),
        noop.lists,
        noop.reads
    );
    record(&Row {
        figure: "no-op pull, 10 devices",
        value: noop.total() as f64,
        unit: "requests",
        reference: None,
        ratio: None,
        goal: Goal::AtMost((DEVICES + 1) as f64),
        how: format!("{DEVICES} devices × {segments} segments each in the store, the reader up to date; one run"),
    });

    counting.reset();
    let value = format!(r#"{{"title":"edited","body":"{}"}}"#, "x".repeat(150));
    reader.put_json("notes", "d0-0", &value).unwrap();
    let pushed = reader.push(handle(reader, &counting)).unwrap();
    let sent = counting.counts();
    let objects = sent.writes as usize;
    println!(
        "one changed record ({} B of JSON): {} bytes uploaded in {objects} objects ({} segments)",
        value.len(),
        sent.bytes_written,
        pushed.uploaded_segments
    );
    record(&Row {
        figure: "bytes uploaded for one changed record",
        value: sent.bytes_written as f64,
        unit: "bytes",
        reference: None,
        ratio: None,
        goal: Goal::AtMost((1024 + objects * SEAL_OVERHEAD) as f64),
        how: format!(
            "one {} B JSON value changed, then a push: {objects} objects (segment + HEAD), sealing overhead \
             {SEAL_OVERHEAD} B each",
            value.len()
        ),
    });

    counting.reset();
    let audit = reader.check_store_contents(handle(reader, &counting)).unwrap();
    assert!(audit.is_complete(), "{audit:?}");
    let checked = counting.counts();
    println!(
        "store check of {} objects: {} calls ({} lists, {} reads)",
        audit.listed,
        checked.total(),
        checked.lists,
        checked.reads
    );
    record(&Row {
        figure: "hourly store check, 10 devices",
        value: checked.total() as f64,
        unit: "calls",
        reference: None,
        ratio: None,
        goal: Goal::AtMost(2.0),
        how: format!(
            "listing {} objects and comparing with what the reader holds (S3: one request per 1,000 listed)",
            audit.listed
        ),
    });
}

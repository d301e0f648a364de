//! Retention against its goals, measured in the same run:
//!
//! 1. store bytes after many updates to few records, then a prune: against the sealed size of
//!    one snapshot of the current state (goal: at most 2×);
//! 2. a new device joining a vault of N records from a snapshot (the segments pruned): records/s
//!    against one raw INSERT per row into a plain SQLCipher table (goal: ratio at least 0.3);
//!    peak RSS of the joining process.
//!
//! Run: `cargo bench -p ferry-engine --bench retention [-- --updates N --records R --join N]`
//! (defaults 1,000,000 updates to 1,000 records and a 1,000,000-record join; `--quick`:
//! 20,000 updates to 200 records, a 20,000-record join).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;

use common::report::{Goal, Row, record};
use common::workload::{BATCH, Joined, child_args, join_child, join_in_child, key, raw_insert, unlock, value, walk};
use ferry_engine::{CreateOptions, Direction, Home, PruneOptions, Retention, StoreHandle, Vault};
use ferry_store::FolderStore;
use std::path::Path;
use std::time::Instant;

/// Prune now: no superseded history kept, no grace period (one process writes).
const NOW: PruneOptions =
    PruneOptions { keep: Some(Retention::Keep { ms: 0 }), grace_ms: 0, dry_run: false, scheduled: false };

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap()
}

fn writer(dir: &Path, store: &FolderStore) -> Vault {
    let home = Home::new(dir.join("writer"));
    Vault::create_for_store(&home, CreateOptions { device_name: "writer".into(), unlock: unlock() }, "bench", store)
        .unwrap()
        .vault
}

fn handle<'a>(vault: &Vault, store: &'a FolderStore) -> StoreHandle<'a> {
    StoreHandle { id: vault.stores().unwrap()[0].id, store }
}

fn bench_store_bytes(updates: usize, records: usize) {
    let dir = bench_dir();
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = FolderStore::new(&store_dir);
    let mut vault = writer(dir.path(), &store);
    let start = Instant::now();
    let indices: Vec<usize> = (0..updates).collect();
    for batch in indices.chunks(BATCH) {
        vault
            .write(|w| {
                for &i in batch {
                    w.put_json("notes", &key(i % records), &value(i))?;
                }
                Ok(())
            })
            .unwrap();
        vault.sync(handle(&vault, &store), Direction::Push).unwrap();
    }
    let write_seconds = start.elapsed().as_secs_f64();
    let before = walk(&store_dir);
    let start = Instant::now();
    let report = vault.prune(&[handle(&vault, &store)], &NOW).unwrap();
    let prune_seconds = start.elapsed().as_secs_f64();
    let after = walk(&store_dir);
    let snapshot = report.snapshot.expect("prune wrote a snapshot");
    assert_eq!(snapshot.ops, records as u64, "the snapshot holds one op per record");
    let ratio = after as f64 / snapshot.bytes as f64;
    println!("\nstore bytes: {updates} updates to {records} records (~200 B JSON), pushed in {BATCH}s");
    println!("  write + push: {write_seconds:.1} s; store before prune {:.1} MiB", before as f64 / 1048576.0);
    println!(
        "  prune (compact, snapshot, push, delete): {prune_seconds:.2} s; store after {:.1} KiB; snapshot {:.1} KiB",
        after as f64 / 1024.0,
        snapshot.bytes as f64 / 1024.0
    );
    println!(
        "  local database {:.1} MiB -> {:.1} MiB",
        report.local.database_bytes.0 as f64 / 1048576.0,
        report.local.database_bytes.1 as f64 / 1048576.0
    );
    record(&Row {
        figure: "store bytes after prune",
        value: ratio,
        unit: "x snapshot",
        reference: None,
        ratio: None,
        goal: Goal::AtMost(2.0),
        how: format!(
            "{updates} updates to {records} records pushed to a folder store in batches of {BATCH}, then \
             `prune --keep 0 --grace 0`: every file of the store ({after} B, vault file, keys, device record \
             and HEAD included) over the sealed bytes of the snapshot of the current state ({} B)",
            snapshot.bytes
        ),
    });
}

fn bench_join(count: usize) {
    let dir = bench_dir();
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = FolderStore::new(&store_dir);
    let mut vault = writer(dir.path(), &store);
    let indices: Vec<usize> = (0..count).collect();
    for batch in indices.chunks(BATCH) {
        vault
            .write(|w| {
                for &i in batch {
                    w.put_json("notes", &key(i), &value(i))?;
                }
                Ok(())
            })
            .unwrap();
    }
    vault.prune(&[handle(&vault, &store)], &NOW).unwrap();
    let raw = raw_insert(dir.path(), count);
    let Joined { seconds, peak_kib, imported } = join_in_child(&dir.path().join("joiner"), &store_dir);
    assert_eq!(imported, count as u64);
    println!("\njoin from a snapshot: {count} records of ~200 B JSON, segments pruned, folder store");
    println!("{:<32} {:>10} {:>14}", "", "seconds", "records/s");
    for (name, s) in [("raw insert (plain table)", raw), ("ferry join + snapshot load", seconds)] {
        println!("{name:<32} {s:>10.2} {:>14.0}", count as f64 / s);
    }
    println!("ratio to raw insert: {:.2} (goal >= 0.3)", raw / seconds);
    println!(
        "  the joiner's home {:.1} MiB; the raw table's database {:.1} MiB",
        walk(&dir.path().join("joiner")) as f64 / 1048576.0,
        std::fs::metadata(dir.path().join("raw.db")).map_or(0, |m| m.len()) as f64 / 1048576.0
    );
    let how = format!(
        "{count} records of ~200 B JSON, pseudo-random keys, written by one device, pruned (`--keep 0 --grace 0`) \
         so the store holds a snapshot and no segments; a new device (child process) joins and pulls; one run; \
         raw: one prepared INSERT per row into a plain SQLCipher table, same pragmas"
    );
    record(&Row {
        figure: "join from a snapshot",
        value: count as f64 / seconds,
        unit: "records/s",
        reference: Some(("raw SQLite insert", count as f64 / raw)),
        ratio: Some(raw / seconds),
        goal: Goal::RatioAtLeast(0.3),
        how: how.clone(),
    });
    record(&Row {
        figure: "peak RSS, join from a snapshot",
        value: peak_kib as f64 / 1024.0,
        unit: "MiB",
        reference: None,
        ratio: None,
        goal: Goal::AtMost(256.0),
        how: format!("VmHWM of the joining child process (the bulk load's page cache is 128 MiB); {how}"),
    });
}

fn main() {
    if let Some((home, store)) = child_args() {
        return join_child(&home, &store, |pulled| assert!(pulled.snapshot.is_some(), "joined from the snapshot"));
    }
    let updates = common::size_arg("--updates", 1_000_000, 20_000);
    let records = common::size_arg("--records", 1_000, 200);
    bench_store_bytes(updates, records);
    bench_join(common::size_arg("--join", 1_000_000, 20_000));
}

//! Local put throughput against the physical limit, measured in the same run.
//!
//! Writes N small JSON records (about 200 bytes), once with keys in pseudo-random order from a
//! fixed seed and once with time-ordered keys, in transactions of 10,000, three ways, each into a fresh SQLCipher database on the same disk
//! with the same page size, journal mode and cache:
//! - `raw plain`: one INSERT per row into a table with no index (the physical limit);
//! - `raw keyed`: the same into a table keyed by (collection, key) (a minimal key-value store);
//! - `ferry put`: the public API an app uses, `ferry::Vault::records().batch(…put_json…)`,
//!   i.e. op log + derived state.
//!
//! Run: `cargo bench -p ferry --bench put [-- --records N]` (default 1,000,000; `--quick` for
//! 20,000). Prints records/s and ferry's ratio to each raw rate; goals: ≥ 0.8 of the raw keyed
//! insert with random keys, ≥ 0.5 with time-ordered keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

#[path = "../../ferry-engine/benches/common/mod.rs"]
mod common;

use ferry::{CreateOptions, Home, KdfCost, Passphrase, Unlock, Vault};
use std::time::Instant;

const BATCH: usize = 10_000;

struct Row {
    key: String,
    value: String,
}

#[derive(Clone, Copy)]
enum KeyOrder {
    /// Random keys (UUIDv4-like): every insert lands on a random B-tree page.
    Random,
    /// Time-ordered keys (ULID/UUIDv7-like, shell history, events): inserts append.
    Sequential,
}

/// Deterministic rows: xorshift64 or counting keys, ~200-byte JSON values.
fn rows(count: usize, order: KeyOrder) -> Vec<Row> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = match order {
                KeyOrder::Random => format!("{state:016x}"),
                KeyOrder::Sequential => format!("{i:016x}"),
            };
            let value = format!(
                r#"{{"body":"{}","n":{i},"tags":["bench","ferry"],"title":"note {i}"}}"#,
                "lorem ipsum dolor sit amet ".repeat(5)
            );
            Row { key, value }
        })
        .collect()
}

fn raw_sqlcipher(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", "ab".repeat(32))).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
    )
    .unwrap();
    conn
}

fn raw_insert(dir: &std::path::Path, name: &str, schema: &str, rows: &[Row]) -> f64 {
    let mut conn = raw_sqlcipher(&dir.join(format!("{name}.db")));
    conn.execute_batch(schema).unwrap();
    let start = Instant::now();
    for batch in rows.chunks(BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO kv (collection, key, value) VALUES ('notes', ?1, ?2)").unwrap();
            for row in batch {
                stmt.execute([&row.key, &row.value]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed().as_secs_f64()
}

fn ferry_put(dir: &std::path::Path, rows: &[Row]) -> f64 {
    let unlock = Unlock { passphrase: Passphrase::new("bench"), kdf_cost: KdfCost::WorkFactor(10) };
    let home = Home::new(dir.join("ferry"));
    let mut vault = Vault::create(&home, CreateOptions { device_name: "bench".into(), unlock }).unwrap().vault;
    let start = Instant::now();
    for batch in rows.chunks(BATCH) {
        vault
            .records()
            .batch(|w| {
                for row in batch {
                    w.put_json("notes", &row.key, &row.value)?;
                }
                Ok(())
            })
            .unwrap();
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let count = common::record_count();
    println!("local put, {count} records of ~200 B JSON, transactions of {BATCH}, SQLCipher on");
    for (label, order, goal) in
        [("random keys", KeyOrder::Random, 0.8), ("time-ordered keys", KeyOrder::Sequential, 0.5)]
    {
        measure(label, &rows(count, order), goal);
    }
}

fn measure(label: &str, rows: &[Row], goal: f64) {
    let count = rows.len();
    let dir = tempfile::tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    let plain = raw_insert(
        dir.path(),
        "plain",
        "CREATE TABLE kv (collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);",
        rows,
    );
    let keyed = raw_insert(
        dir.path(),
        "keyed",
        "CREATE TABLE kv (collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (collection, key)) WITHOUT ROWID;",
        rows,
    );
    let ferry = ferry_put(dir.path(), rows);

    let rate = |seconds: f64| count as f64 / seconds;
    println!("\n{label}:");
    println!("{:<12} {:>12} {:>14} {:>16}", "writer", "seconds", "records/s", "ferry / this");
    for (name, seconds) in [("raw plain", plain), ("raw keyed", keyed), ("ferry put", ferry)] {
        println!("{name:<12} {seconds:>12.2} {:>14.0} {:>16.2}", rate(seconds), seconds / ferry);
    }
    println!(
        "ratio to raw plain insert: {:.2}, to raw keyed insert: {:.2} (goal >= {goal:.2})",
        plain / ferry,
        keyed / ferry
    );
    common::report::record(&common::report::Row {
        figure: &format!("local put through the public API, {label}"),
        value: rate(ferry),
        unit: "records/s",
        reference: Some(("raw keyed insert", rate(keyed))),
        ratio: Some(keyed / ferry),
        goal: common::report::Goal::RatioAtLeast(goal),
        how: format!(
            "{count} records of ~200 B JSON (deterministic keys: multiplicative hash of the index), \
             transactions of {BATCH}, SQLCipher on both sides, same pragmas and 4 KiB pages; one run \
             each; raw plain (append-only) insert: {:.0}/s",
            rate(plain)
        ),
    });
}

//! The records the benchmarks write, and the physical limit they are compared with: one raw
//! INSERT per row into a plain SQLCipher table.

use ferry_engine::{KdfCost, Passphrase, Unlock};
use std::path::Path;
use std::time::Instant;

/// Records per write transaction.
pub const BATCH: usize = 10_000;

/// A cheap passphrase cost: the benchmarks measure sync, not key stretching.
pub fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("bench"), kdf_cost: KdfCost::WorkFactor(10) }
}

/// Pseudo-random keys (UUIDv4-like), or time-ordered ones (ULID-like) with `--time-ordered-keys`.
pub fn key(i: usize) -> String {
    static ORDERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ORDERED.get_or_init(|| std::env::args().any(|a| a == "--time-ordered-keys")) {
        return format!("{i:016x}");
    }
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    format!("{x:016x}")
}

/// A ~200 B JSON record.
pub fn value(i: usize) -> String {
    format!(
        r#"{{"body":"{}","n":{i},"tags":["bench","ferry"],"title":"note {i}"}}"#,
        "lorem ipsum dolor sit amet ".repeat(5)
    )
}

/// Seconds to insert `count` records, one prepared INSERT per row in transactions of
/// [`BATCH`], into a plain SQLCipher table with ferry's pragmas: the median of three runs,
/// each into a new database (the disk's speed varies from run to run).
pub fn raw_insert(dir: &Path, count: usize) -> f64 {
    let mut runs: Vec<f64> = (0..3).map(|_| raw_insert_once(dir, count)).collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

fn raw_insert_once(dir: &Path, count: usize) -> f64 {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("raw.db{suffix}")));
    }
    let mut conn = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", "ab".repeat(32))).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;
         CREATE TABLE kv (collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);",
    )
    .unwrap();
    let start = Instant::now();
    for batch in (0..count).collect::<Vec<_>>().chunks(BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO kv (collection, key, value) VALUES ('notes', ?1, ?2)").unwrap();
            for &i in batch {
                stmt.execute([key(i), value(i)]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed().as_secs_f64()
}

/// Bytes of every file under `dir`.
pub fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| if e.path().is_dir() { walk(&e.path()) } else { e.metadata().map_or(0, |m| m.len()) })
                .sum()
        })
        .unwrap_or(0)
}

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

/// What a joining child process measured.
pub struct Joined {
    /// Seconds from the start of the join to the end of the pull.
    pub seconds: f64,
    /// Its peak RSS (VmHWM), KiB.
    pub peak_kib: u64,
    /// Ops the pull imported.
    pub imported: u64,
}

/// In the child process (`--join-child HOME STORE`): joins the vault in the folder store, pulls
/// once, and prints what it measured on one line for [`join_in_child`]. `check` looks at the
/// pull's report first.
pub fn join_child(home: &Path, store: &Path, check: impl FnOnce(&ferry_engine::PullReport)) {
    use ferry_engine::{Direction, Home, JoinOptions, JoinWith, StoreHandle, Vault};
    let store = ferry_store::FolderStore::new(store);
    let start = Instant::now();
    let mut vault = Vault::join(
        &Home::new(home),
        JoinOptions { device_name: "joiner".into(), unlock: unlock(), with: JoinWith::Passphrase },
        "bench",
        &store,
    )
    .unwrap();
    let joined = start.elapsed().as_secs_f64();
    let handle = StoreHandle { id: vault.stores().unwrap()[0].id, store: &store };
    let report = vault.sync(handle, Direction::Pull).unwrap().pull.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    check(&report);
    eprintln!("join {joined:.2} s, then pull {:.2} s", seconds - joined);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).map_or("0", |v| v.trim().trim_end_matches(" kB"));
    println!("CHILD {seconds} {peak_kib} {}", report.imported_ops);
}

/// Runs this benchmark again as a child process that joins from `store` into `home` (see
/// [`join_child`]), so its peak RSS is its own; passes on what it printed to standard error.
pub fn join_in_child(home: &Path, store: &Path) -> Joined {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--join-child", home.to_str().unwrap(), store.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("CHILD "))
        .unwrap_or_else(|| panic!("child failed: {}", String::from_utf8_lossy(&output.stderr)));
    print!("{}", String::from_utf8_lossy(&output.stderr));
    let fields: Vec<&str> = line.split_whitespace().collect();
    Joined {
        seconds: fields[1].parse().unwrap(),
        peak_kib: fields[2].parse().unwrap(),
        imported: fields[3].parse().unwrap(),
    }
}

/// `--join-child HOME STORE` on the command line, if this process is the child.
pub fn child_args() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--join-child")?;
    Some((args[i + 1].clone().into(), args[i + 2].clone().into()))
}

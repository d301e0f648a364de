//! What the benchmarks share: the record count from the command line, and the row format of
//! the suite's table.

#![allow(dead_code)] // each bench uses a part

pub mod report;

/// `--records N` (default 1,000,000), or 20,000 with `--quick` (the CI smoke run).
pub fn record_count() -> usize {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--quick") {
        return 20_000;
    }
    args.iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .map_or(1_000_000, |n| n.parse().expect("--records takes a number"))
}

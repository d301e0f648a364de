//! What the benchmarks share: the record count from the command line, and the row format of
//! the suite's table.

#![allow(dead_code)] // each bench uses a part

pub mod report;
pub mod workload;

/// `--records N` (default 1,000,000), or 20,000 with `--quick` (the CI smoke run).
pub fn record_count() -> usize {
    size_arg("--records", 1_000_000, 20_000)
}

/// The number after `flag` on the command line, else `default`, or `quick` with `--quick`.
pub fn size_arg(flag: &str, default: usize, quick: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--quick") {
        return quick;
    }
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |n| n.parse().unwrap_or_else(|_| panic!("{flag} takes a number")))
}

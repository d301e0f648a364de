//! One row of the benchmark suite's table (`bench/run`): a figure, what it was compared with in
//! the same run, the goal, and how it was measured. Each bench prints its rows; with
//! `FERRY_BENCH_JSON=FILE` it also appends them to FILE as JSON lines, which `bench/run` turns
//! into one table and one JSON document.

use std::io::Write;

/// Whether the goal asks for a ratio of at least, or a value of at most, some figure.
#[derive(Clone, Copy)]
pub enum Goal {
    /// `ratio >= x` (ferry's speed over the reference's).
    RatioAtLeast(f64),
    /// `ratio > 1`: faster than the reference.
    Faster,
    /// `value <= x` in the row's unit.
    AtMost(f64),
}

/// One measured figure.
pub struct Row<'a> {
    /// What is measured, e.g. "local put, 1M small records".
    pub figure: &'a str,
    /// ferry's value.
    pub value: f64,
    /// Its unit, e.g. "records/s", "ms", "MiB", "requests".
    pub unit: &'a str,
    /// The reference measured in the same run and its value (same unit), if any.
    pub reference: Option<(&'a str, f64)>,
    /// ferry / reference as a speed ratio (> 1: ferry is faster), if there is a reference.
    pub ratio: Option<f64>,
    /// The goal.
    pub goal: Goal,
    /// How it was measured: dataset, seed, runs, median.
    pub how: String,
}

impl Row<'_> {
    fn met(&self) -> bool {
        match self.goal {
            Goal::RatioAtLeast(x) => self.ratio.is_some_and(|r| r >= x),
            Goal::Faster => self.ratio.is_some_and(|r| r > 1.0),
            Goal::AtMost(x) => self.value <= x,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::RatioAtLeast(x) => format!("ratio >= {x}"),
            Goal::Faster => "faster (ratio > 1)".to_owned(),
            Goal::AtMost(x) => format!("<= {x} {}", self.unit),
        }
    }
}

/// Prints `row` and appends it to `$FERRY_BENCH_JSON` when set.
pub fn record(row: &Row<'_>) {
    let reference = row.reference.map_or(String::new(), |(name, value)| format!(" vs {name} {value:.1}"));
    let ratio = row.ratio.map_or(String::new(), |r| format!(", ratio {r:.2}"));
    println!(
        "ROW {}: {:.1} {}{reference}{ratio} (goal {}: {})",
        row.figure,
        row.value,
        row.unit,
        row.goal_text(),
        if row.met() { "met" } else { "MISSED" }
    );
    let Ok(path) = std::env::var("FERRY_BENCH_JSON") else { return };
    let json = serde_json::json!({
        "figure": row.figure,
        "value": row.value,
        "unit": row.unit,
        "reference": row.reference.map(|(name, _)| name),
        "reference_value": row.reference.map(|(_, value)| value),
        "ratio": row.ratio,
        "goal": row.goal_text(),
        "met": row.met(),
        "how": row.how,
        "quick": std::env::args().any(|a| a == "--quick"),
    });
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("FERRY_BENCH_JSON is writable");
    writeln!(file, "{json}").expect("FERRY_BENCH_JSON is writable");
}

//! Formatting for people: times, shortened values, aligned tables.

use std::io::{self, Write};

/// An RFC 3339 UTC timestamp with milliseconds, from milliseconds since the Unix epoch.
pub fn timestamp(ms: u64) -> String {
    ferry_engine::rfc3339(ms)
}

/// The first `max` characters of `text`, with `…` when cut.
/// A size for people: bytes, KiB, MiB or GiB with one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Prints rows as columns separated by two spaces; the last column is not padded.
pub fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let cells: Vec<&str> = cells.collect();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                write!(out, "{cell}")?;
            } else {
                write!(out, "{cell:<width$}  ", width = widths[i])?;
            }
        }
        writeln!(out)
    };
    line(&mut header.iter().copied())?;
    for row in rows {
        line(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// The identity fields every `--json` report of a new device starts with.
pub fn device_json(status: &ferry_engine::Status) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert("vault_id".into(), status.vault_id.clone().into());
    map.insert("device_id".into(), status.device_id.clone().into());
    map.insert("device_name".into(), status.device_name.clone().into());
    map.insert("vault_key_fingerprint".into(), status.vault_key_fingerprint.clone().into());
    map.insert("home".into(), status.home.display().to_string().into());
    map.insert("key_in_keychain".into(), status.key_in_keychain.into());
    map
}

/// Prints a value as pretty JSON.
pub fn json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Long-running commands (`ferry serve`) log what changes to standard error: peers connected,
/// lost or refused, stores failing and back, imports with counts. `FERRY_LOG` filters
/// (`warn`, `ferry_net=debug`, …; default `info`). Nothing logged carries a secret.
pub fn start_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_on_character_boundaries() {
        assert_eq!(shorten("héllo", 3), "hél…");
        assert_eq!(shorten("hi", 3), "hi");
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(1_763_776_800_123), "2025-11-22T02:00:00.123Z");
    }

    #[test]
    fn table_aligns_columns() {
        let mut out = Vec::new();
        table(&mut out, &["KEY", "VALUE"], &[vec!["n1".into(), "x".into()], vec!["long-key".into(), "y".into()]])
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "KEY       VALUE\nn1        x\nlong-key  y\n");
    }
}

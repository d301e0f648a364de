//! Times for people.

/// An RFC 3339 UTC timestamp with milliseconds, from milliseconds since the Unix epoch.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| format!("{ms}ms"), |t| format!("{t:.3}"))
}

/// Reads a time a person typed: RFC 3339 (`2026-11-20T14:00:00Z`, `…+01:00`), or a date and
/// time without an offset (`2026-11-20T14:00`, `2026-11-20 14:00`, `2026-11-20`), taken as UTC.
/// Returns milliseconds since the Unix epoch.
///
/// # Errors
/// A message saying which forms are understood.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let timestamp = text.parse::<jiff::Timestamp>().or_else(|_| {
        let civil = text
            .replace(' ', "T")
            .parse::<jiff::civil::DateTime>()
            .or_else(|_| text.parse::<jiff::civil::Date>().map(|date| date.to_datetime(jiff::civil::Time::midnight())))
            .map_err(|e| e.to_string())?;
        civil.to_zoned(jiff::tz::TimeZone::UTC).map(|zoned| zoned.timestamp()).map_err(|e| e.to_string())
    });
    let timestamp = timestamp.map_err(|_: String| {
        format!("`{text}` is not a time: write 2026-11-20T14:00 (UTC), 2026-11-20T14:00:00+01:00 or 2026-11-20")
    })?;
    u64::try_from(timestamp.as_millisecond()).map_err(|_| format!("`{text}` is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_people_type_are_understood() {
        assert_eq!(parse_time("2025-11-22T02:00:00.123Z"), Ok(1_763_776_800_123));
        assert_eq!(parse_time("2025-11-22T03:00:00+01:00"), Ok(1_763_776_800_000));
        assert_eq!(parse_time("2025-11-22T02:00"), Ok(1_763_776_800_000));
        assert_eq!(parse_time("2025-11-22 02:00"), Ok(1_763_776_800_000));
        assert_eq!(parse_time("2025-11-22"), Ok(1_763_769_600_000));
        assert!(parse_time("yesterday").unwrap_err().contains("2026-11-20T14:00"));
    }
}

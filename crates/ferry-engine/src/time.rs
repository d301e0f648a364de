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

/// Reads a duration a person typed: a whole number and a unit, `s`, `m`, `h`, `d` or `w`
/// (`90s`, `12h`, `30d`, `2w`); `0` alone is nothing. Returns milliseconds.
///
/// # Errors
/// A message saying which forms are understood.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration: write a number and a unit, e.g. 90s, 12h, 30d or 2w");
    if text == "0" {
        return Ok(0);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit.trim() {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    number.checked_mul(unit_ms).ok_or_else(bad)
}

/// Writes a duration in the largest unit that divides it (`30d`, `36h`, `90s`, `1500ms`).
pub fn format_duration_ms(ms: u64) -> String {
    for (unit, size) in [("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_people_type_are_understood_and_written_back() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration(" 12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        for bad in ["", "d", "30", "30 days", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).unwrap_err().contains("not a duration"), "{bad}");
        }
        assert_eq!(format_duration_ms(30 * 86_400_000), "30d");
        assert_eq!(format_duration_ms(14 * 86_400_000), "2w");
        assert_eq!(format_duration_ms(36 * 3_600_000), "36h");
        assert_eq!(format_duration_ms(1_500), "1500ms");
        assert_eq!(format_duration_ms(0), "0ms");
    }

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

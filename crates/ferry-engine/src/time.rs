//! Times for people.

/// An RFC 3339 UTC timestamp with milliseconds, from milliseconds since the Unix epoch.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| format!("{ms}ms"), |t| format!("{t:.3}"))
}

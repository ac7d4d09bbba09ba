//! The times list feeds write: `2024-04-04 12:00:00 UTC`, RFC 3339, a bare date, Unix seconds.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Provider times: `2024-04-04 07:03:03` (UTC, optionally ` UTC` / ` (UTC)`), RFC 3339,
/// `2024-04-04` (midnight) or Unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let t = s.trim();
    let t = t
        .strip_suffix("(UTC)")
        .or_else(|| t.strip_suffix("UTC"))
        .map(str::trim)
        .unwrap_or(t);
    if let Ok(d) = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
        return Some(d.and_utc());
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S") {
        return Some(d.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
    }
    if t.len() >= 9 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .ok()
            .and_then(|n| DateTime::from_timestamp(n, 0));
    }
    None
}

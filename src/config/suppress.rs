//! `[[suppress]]`: suppression rules kept in the config (for teams that keep it in git), and
//! the one way a rule's fields and its `until` are read, shared with `outwatch suppress add`
//! (which keeps its rules in the store; `src/triage/suppress.rs` brings both together).
//!
//! ```toml
//! [[suppress]]
//! cidr = "192.0.2.0/24"          # or asn = 64496, or domain = "honeypot.example.org"
//! source = "shadowserver"        # optional: only this source, feed, identifier, port
//! feed = "scan_rdp"
//! until = 2027-01-31             # a date (through its end, UTC) or an RFC 3339 time
//! reason = "our honeypot"
//! by = "noc"                     # optional; default "config"
//! ```

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Asn, DomainName};

/// Longest reason, note or author kept (longer text is refused, not cut).
pub(crate) const MAX_TEXT: usize = 1000;

/// One `[[suppress]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressConfig {
    /// Findings whose address or network lies in (or overlaps) this prefix.
    #[serde(default)]
    pub cidr: Option<IpNet>,
    /// Findings whose `asn` is this one.
    #[serde(default)]
    pub asn: Option<Asn>,
    /// Findings about this domain or its subdomains (host, URL host, mail domain).
    #[serde(default)]
    pub domain: Option<DomainName>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub feed: Option<String>,
    /// The classification identifier (`open-rdp`, `c2-server`...).
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    pub until: Until,
    pub reason: String,
    #[serde(default)]
    pub by: Option<String>,
}

/// A reason, note, author or name that cannot be kept ([`check_text`]); `.0` is its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("`{0}` is empty: say who or why")]
    Empty(String),
    #[error("`{0}` is longer than {MAX_TEXT} characters")]
    TooLong(String),
    #[error("`{0}` holds a control character")]
    Control(String),
}

/// A `[[suppress]]` rule that cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a `[[suppress]]` rule names exactly one of `cidr`, `asn` or `domain`")]
    NotOneScope,
    #[error(transparent)]
    Text(#[from] TextError),
}

/// An end of a suppression that is no time ([`Until::parse`]); `text` as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UntilError {
    #[error("`{0}` is too far ahead")]
    TooFar(String),
    #[error("`{0}` is too long")]
    TooLong(String),
    #[error(
        "`{text}` is not a date: write YYYY-MM-DD (through that day, UTC), an RFC 3339 time{}",
        if *.durations { " or a duration from now (30d, 2weeks)" } else { "" }
    )]
    NotADate { text: String, durations: bool },
}

impl SuppressConfig {
    /// What serde cannot check: exactly one of `cidr`, `asn`, `domain`; a reason; text sizes.
    pub fn check(&self) -> Result<(), RuleError> {
        let n = [
            self.cidr.is_some(),
            self.asn.is_some(),
            self.domain.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(RuleError::NotOneScope);
        }
        check_text("reason", &self.reason, true)?;
        if let Some(by) = &self.by {
            check_text("by", by, true)?;
        }
        for (k, v) in [
            ("source", &self.source),
            ("feed", &self.feed),
            ("identifier", &self.identifier),
        ] {
            if let Some(v) = v {
                check_text(k, v, true)?;
            }
        }
        Ok(())
    }
}

/// A reason, note, author or name: not empty (when `required`), at most [`MAX_TEXT`]
/// characters, no control characters but in a note's line breaks.
pub(crate) fn check_text(key: &str, s: &str, required: bool) -> Result<(), TextError> {
    if required && s.trim().is_empty() {
        return Err(TextError::Empty(key.to_string()));
    }
    if s.chars().count() > MAX_TEXT {
        return Err(TextError::TooLong(key.to_string()));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(TextError::Control(key.to_string()));
    }
    Ok(())
}

/// When a suppression ends: an instant (a date means through its end, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Until(pub DateTime<Utc>);

impl Until {
    /// `YYYY-MM-DD` (through the end of that day, UTC: the rule ends at the next midnight) or
    /// an RFC 3339 time. `now` also allows a duration from now (`30d`, `2weeks`, `12h`: the
    /// command line; the config has no "now" to count from).
    pub fn parse(s: &str, now: Option<DateTime<Utc>>) -> Result<Until, UntilError> {
        let t = s.trim();
        if let Ok(d) = DateTime::parse_from_rfc3339(t) {
            return Ok(Until(d.with_timezone(&Utc)));
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            let end = d
                .succ_opt()
                .and_then(|n| n.and_hms_opt(0, 0, 0))
                .ok_or_else(|| UntilError::TooFar(t.to_string()))?;
            return Ok(Until(end.and_utc()));
        }
        if let Some(now) = now
            && let Ok(d) = humantime::parse_duration(t)
        {
            let d =
                chrono::Duration::from_std(d).map_err(|_| UntilError::TooLong(t.to_string()))?;
            return now
                .checked_add_signed(d)
                .map(Until)
                .ok_or_else(|| UntilError::TooLong(t.to_string()));
        }
        Err(UntilError::NotADate {
            text: t.to_string(),
            durations: now.is_some(),
        })
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

impl<'de> Deserialize<'de> for Until {
    /// A string, or a TOML date or date-time literal (`until = 2027-01-31`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Until;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date (2027-01-31) or an RFC 3339 time")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Until, E> {
                Until::parse(s, None).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Until, A::Error> {
                // A TOML date-time literal comes as a map of one private key and its text.
                let Some(_) = m.next_key::<String>()? else {
                    return Err(serde::de::Error::custom("expected a date"));
                };
                let text: String = m.next_value()?;
                Until::parse(&text, None).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Until {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_forms() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Until::parse("2026-12-31", None).unwrap().to_string(),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            Until::parse("2026-12-31T12:00:00+01:00", None)
                .unwrap()
                .to_string(),
            "2026-12-31T11:00:00Z"
        );
        assert_eq!(
            Until::parse("30d", Some(now)).unwrap().to_string(),
            "2027-01-06T10:00:00Z"
        );
        assert!(Until::parse("30d", None).is_err());
        assert!(Until::parse("soon", Some(now)).is_err());
    }

    #[derive(Deserialize)]
    struct Doc {
        suppress: Vec<SuppressConfig>,
    }

    #[test]
    fn toml_dates_and_strings() {
        let d: Doc = toml::from_str(
            "[[suppress]]\ncidr = \"192.0.2.0/24\"\nuntil = 2027-01-31\nreason = \"x\"\n\
             [[suppress]]\nasn = \"AS64496\"\nuntil = \"2027-01-31T08:00:00Z\"\nreason = \"y\"\n\
             [[suppress]]\ndomain = \"Honeypot.Example.org\"\nuntil = 2027-01-31T08:00:00Z\nreason = \"z\"\n",
        )
        .unwrap();
        assert_eq!(d.suppress[0].until.to_string(), "2027-02-01T00:00:00Z");
        assert_eq!(d.suppress[1].until.to_string(), "2027-01-31T08:00:00Z");
        assert_eq!(d.suppress[2].until.to_string(), "2027-01-31T08:00:00Z");
        assert_eq!(
            d.suppress[2].domain.as_ref().unwrap().0,
            "honeypot.example.org"
        );
        for r in &d.suppress {
            r.check().unwrap();
        }
        let bad: Doc = toml::from_str(
            "[[suppress]]\ncidr = \"192.0.2.0/24\"\nasn = 1\nuntil = 2027-01-31\nreason = \"x\"\n",
        )
        .unwrap();
        assert!(bad.suppress[0].check().is_err());
    }
}

//! Secrets (API keys, passwords) that never show in logs, errors, `Debug` or `check-config`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every redacted secret prints as.
pub const REDACTED: &str = "***redacted***";

/// A secret string. `Debug`, `Display` and `Serialize` print [`REDACTED`]; only
/// [`Secret::expose`] gives the value, at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value. Call only where it goes onto the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` (e.g. a URL in an error, or a body a
    /// provider echoed) by [`REDACTED`], in its raw form, its URL-encoded forms (`%XX`, and `+`
    /// for spaces) and its base64 forms (standard and URL-safe, with or without padding).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        let mut out = text.replace(&self.0, REDACTED);
        {
            use base64::Engine as _;
            use base64::engine::general_purpose::{STANDARD, URL_SAFE};
            for engine in [STANDARD, URL_SAFE] {
                let b64 = engine.encode(self.0.as_bytes());
                let bare = b64.trim_end_matches('=');
                // The padded form first, so no `=` is left behind.
                for form in [b64.as_str(), bare] {
                    if form.len() >= 4 && form != self.0 {
                        out = out.replace(form, REDACTED);
                    }
                }
            }
        }
        let encoded = percent_encode(&self.0);
        if encoded != self.0 {
            let lower = encoded_lowercase(&encoded);
            for form in [&encoded, &lower] {
                out = out.replace(form.as_str(), REDACTED);
                if self.0.contains(' ') {
                    out = out.replace(&form.replace("%20", "+"), REDACTED);
                }
            }
        }
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(Secret(s))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%2F` → `%2f` (some encoders write lower-case hex).
fn encoded_lowercase(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0;
    for c in s.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Resolves a credential given inline (`key = "..."`) or by environment variable
/// (`key_env = "VAR"`). `name` is the config key for messages, e.g. `sources.hibp.api_key`.
pub fn resolve(
    inline: &Option<Secret>,
    env: &Option<String>,
    name: &str,
) -> Result<Option<Secret>, String> {
    match (inline, env) {
        (Some(_), Some(_)) => Err(format!("give either `{name}` or `{name}_env`, not both")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
            Ok(_) => Err(format!("`{name}_env` names ${var}, which is empty")),
            Err(_) => Err(format!("`{name}_env` names ${var}, which is not set")),
        },
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), format!("{REDACTED} {REDACTED}"));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(
            s.scrub("https://x/?key=hunter2"),
            format!("https://x/?key={REDACTED}")
        );
    }

    #[test]
    fn scrubs_encoded_forms() {
        let s = Secret::new("k3y/with+odd chars?");
        let url = "https://x/?key=k3y%2Fwith%2Bodd%20chars%3F&q=k3y%2fwith%2bodd+chars%3f";
        assert!(!s.scrub(url).contains("k3y"), "{}", s.scrub(url));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode("k3y/with+odd chars?");
        let urlsafe =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("k3y/with+odd chars?");
        let text = format!("Authorization: Basic {b64}; token {urlsafe}.");
        assert_eq!(
            s.scrub(&text),
            format!("Authorization: Basic {REDACTED}; token {REDACTED}.")
        );
    }

    #[test]
    fn resolves_from_env() {
        // SAFETY: test-only env var with a unique name.
        unsafe { std::env::set_var("OUTWATCH_TEST_SECRET_RESOLVE", "abc") };
        let r = resolve(&None, &Some("OUTWATCH_TEST_SECRET_RESOLVE".into()), "k").unwrap();
        assert_eq!(r.unwrap().expose(), "abc");
        let e = resolve(&None, &Some("OUTWATCH_TEST_SECRET_MISSING".into()), "k").unwrap_err();
        assert!(e.contains("OUTWATCH_TEST_SECRET_MISSING"));
        assert!(resolve(&Some(Secret::new("a")), &Some("X".into()), "k").is_err());
    }
}

//! Secrets (API keys, passwords) that never show in logs, errors, `Debug` or `check-config`.
//!
//! - [`Secret`]: a value that prints as [`REDACTED`]; only [`Secret::expose`] gives it, at the
//!   one place it goes on the wire.
//! - [`Scrubber`]: removes secrets from text by value, in every form a provider may echo them
//!   (raw, URL-encoded, base64, JSON-escaped, in any letter case), and from messages also a key
//!   cut short by an excerpt ([`Scrubber::scrub`]); masks them in the data of findings before
//!   they are stored ([`Scrubber::mask_finding`]).
//! - [`resolve`]: a credential written inline or named by an environment variable, refused when
//!   it is too short to be real ([`min_len`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::finding::{ExtraView, Finding, FindingView};

/// What every redacted secret prints as.
pub const REDACTED: &str = "***redacted***";

/// The shortest start of a secret that [`Scrubber::scrub`] removes from a message when the rest
/// of the secret is missing (an excerpt cut through it). Shorter starts stay: they are as likely
/// to be ordinary text as a piece of a key.
pub const MIN_FRAGMENT: usize = 6;

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

    /// [`Scrubber::scrub`] with this secret alone.
    pub fn scrub(&self, text: &str) -> String {
        Scrubber::new(&[self]).scrub(text)
    }

    /// Every form a provider may echo the secret in: raw, URL-encoded (`%XX` in upper and lower
    /// case, `+` for spaces), base64 (standard and URL-safe, with or without padding) and
    /// JSON-escaped (`/` as `\/`, of the raw and the base64 forms). Each form once.
    fn forms(&self) -> Vec<String> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let raw = self.0.clone();
        if raw.is_empty() {
            return Vec::new();
        }
        let mut out = vec![raw.clone()];
        let encoded = percent_encode(&raw);
        for form in [encoded.clone(), encoded_lowercase(&encoded)] {
            if raw.contains(' ') {
                out.push(form.replace("%20", "+"));
            }
            out.push(form);
        }
        for engine in [STANDARD, URL_SAFE] {
            let b64 = engine.encode(raw.as_bytes());
            // The padded form first, so no `=` is left behind.
            out.push(b64.trim_end_matches('=').to_string());
            out.push(b64);
        }
        let escaped: Vec<String> = out.iter().filter_map(|f| json_escaped(f)).collect();
        out.extend(escaped);
        let mut seen = std::collections::HashSet::new();
        out.retain(|f| !f.is_empty() && seen.insert(f.to_ascii_lowercase()));
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

/// Removes a set of secrets from text and from findings, by value. Build it once per set (a
/// source's secrets) and use it for every message and finding of a run.
///
/// Matching ignores ASCII letter case: a provider that echoes a hex key in upper case still
/// shows the key.
pub struct Scrubber {
    /// Every form of every secret, ASCII-lower-cased, longest first.
    forms: Vec<Vec<u8>>,
    /// The same forms, found whole (for data fields), built when first needed; `None` without
    /// secrets.
    whole: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("forms", &self.forms.len())
            .finish()
    }
}

impl Scrubber {
    pub fn new(secrets: &[&Secret]) -> Self {
        let mut forms: Vec<Vec<u8>> = secrets
            .iter()
            .flat_map(|s| s.forms())
            .map(|f| f.to_ascii_lowercase().into_bytes())
            .collect();
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        Scrubber {
            forms,
            whole: std::sync::OnceLock::new(),
        }
    }

    /// The automaton of whole forms, `None` without secrets.
    fn whole(&self) -> Option<&aho_corasick::AhoCorasick> {
        self.whole
            .get_or_init(|| {
                if self.forms.is_empty() {
                    return None;
                }
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(&self.forms)
                    .ok()
            })
            .as_ref()
    }

    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` for a message (an error, a log line, a rejected row): every secret replaced by
    /// [`REDACTED`] in each of its forms, and also the start of one ([`MIN_FRAGMENT`] characters
    /// or more) whose end was cut off, as an excerpt of a provider's reply cuts it. Clip a
    /// message only after this, never before: a piece shorter than [`MIN_FRAGMENT`] is not
    /// recognised.
    pub fn scrub(&self, text: &str) -> String {
        if self.forms.is_empty() || text.is_empty() {
            return text.to_string();
        }
        let spans = self.fragment_spans(text.as_bytes());
        replace_spans(text, &spans)
    }

    /// `text` with every whole secret replaced, or `None` when it holds none. For data (a field
    /// of a finding), where a mere prefix of a key is more likely a value than a cut key.
    pub fn mask(&self, text: &str) -> Option<String> {
        let ac = self.whole()?;
        let spans: Vec<(usize, usize)> = ac.find_iter(text).map(|m| (m.start(), m.end())).collect();
        (!spans.is_empty()).then(|| replace_spans(text, &spans))
    }

    /// Whether `text` holds a whole secret.
    pub fn holds(&self, text: &str) -> bool {
        self.whole().is_some_and(|ac| ac.is_match(text))
    }

    /// Masks every secret in the text fields of `f` (its indicator fields, `extra`, `raw` and
    /// `identity`), so that a key a provider put into its data (a malware name, a comment) is
    /// never stored or shown; the finding is sealed again when an identity field changed.
    /// Returns whether anything was masked.
    pub fn mask_finding(&self, f: &mut Finding) -> bool {
        if self.whole().is_none() {
            return false;
        }
        let mut identity = false;
        for s in [&mut f.domain, &mut f.url, &mut f.email, &mut f.protocol]
            .into_iter()
            .flatten()
        {
            identity |= self.mask_in_place(s);
        }
        for s in &mut f.identity {
            identity |= self.mask_in_place(s);
        }
        let mut other = false;
        for s in [&mut f.raw].into_iter().flatten() {
            other |= self.mask_in_place(s);
        }
        for s in [&mut f.classification.identifier, &mut f.classification.kind] {
            identity |= self.mask_in_place(s);
        }
        other |= self.mask_in_place(&mut f.classification.taxonomy);
        let extra = std::mem::take(&mut f.extra);
        f.extra = extra
            .into_iter()
            .map(|(k, mut v)| {
                other |= self.mask_json(&mut v);
                match self.mask(&k) {
                    Some(m) => {
                        other = true;
                        (m, v)
                    }
                    None => (k, v),
                }
            })
            .collect();
        if identity {
            f.seal();
        }
        identity || other
    }

    /// Masks every finding of a unit ([`Scrubber::mask_finding`]); returns how many held a
    /// secret. Called where units are applied, before they are stored.
    pub fn mask_findings(&self, findings: &mut [Finding]) -> usize {
        if self.whole().is_none() {
            return 0;
        }
        findings
            .iter_mut()
            .map(|f| self.mask_finding(f))
            .filter(|m| *m)
            .count()
    }

    /// An owned, masked copy of `v` when it holds a secret (streamed units), else `None`.
    pub fn masked(&self, v: &FindingView<'_>) -> Option<Finding> {
        if !self.view_holds(v) {
            return None;
        }
        let mut f = v.to_finding();
        self.mask_finding(&mut f);
        Some(f)
    }

    /// Whether a finding view holds a secret in any text field (then mask an owned copy:
    /// [`FindingView::to_finding`], [`Scrubber::mask_finding`]).
    pub fn view_holds(&self, v: &FindingView<'_>) -> bool {
        if self.whole().is_none() {
            return false;
        }
        let texts = [v.domain, v.url, v.email, v.protocol, v.raw];
        if texts.into_iter().flatten().any(|s| self.holds(s))
            || v.identity.iter().any(|s| self.holds(s))
            || [
                &v.classification.identifier,
                &v.classification.kind,
                &v.classification.taxonomy,
            ]
            .iter()
            .any(|s| self.holds(s))
        {
            return true;
        }
        match v.extra {
            ExtraView::Map(m) => m.iter().any(|(k, v)| self.holds(k) || self.json_holds(v)),
            ExtraView::Pairs(p) => p.iter().any(|(k, v)| self.holds(k) || self.extra_holds(v)),
        }
    }

    /// Whether a parser's extra value holds a secret (its text read where it lies).
    fn extra_holds(&self, v: &crate::finding::ExtraVal<'_>) -> bool {
        use crate::finding::ExtraVal;
        match v {
            ExtraVal::Text(t) => self.holds(t),
            ExtraVal::Strs(a) => a.iter().any(|t| self.holds(t)),
            ExtraVal::Strings(a) => a.iter().any(|t| self.holds(t)),
            ExtraVal::Net(_) | ExtraVal::U64(_) => false,
        }
    }

    fn mask_in_place(&self, s: &mut String) -> bool {
        match self.mask(s) {
            Some(m) => {
                *s = m;
                true
            }
            None => false,
        }
    }

    fn mask_json(&self, v: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) => self.mask_in_place(s),
            Value::Array(a) => a.iter_mut().fold(false, |m, x| self.mask_json(x) | m),
            Value::Object(o) => {
                let mut masked = false;
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    masked |= self.mask_json(&mut x);
                    let k = match self.mask(&k) {
                        Some(m) => {
                            masked = true;
                            m
                        }
                        None => k,
                    };
                    o.insert(k, x);
                }
                masked
            }
            _ => false,
        }
    }

    fn json_holds(&self, v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) => self.holds(s),
            Value::Array(a) => a.iter().any(|x| self.json_holds(x)),
            Value::Object(o) => o.iter().any(|(k, x)| self.holds(k) || self.json_holds(x)),
            _ => false,
        }
    }

    /// The byte spans of `text` that hold a form, or the start of one of at least
    /// [`MIN_FRAGMENT`] bytes (the whole form when it is shorter), compared without regard to
    /// ASCII case; overlapping spans merged.
    fn fragment_spans(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut firsts = [false; 256];
        for f in &self.forms {
            firsts[usize::from(f[0])] = true;
        }
        let mut i = 0;
        while i < text.len() {
            let c = text[i].to_ascii_lowercase();
            if firsts[usize::from(c)] {
                let longest = self
                    .forms
                    .iter()
                    .filter(|f| f[0] == c)
                    .filter_map(|f| {
                        let n = common_prefix(&text[i..], f);
                        (n >= MIN_FRAGMENT.min(f.len())).then_some(n)
                    })
                    .max();
                if let Some(n) = longest {
                    match spans.last_mut() {
                        Some(last) if last.1 >= i => last.1 = last.1.max(i + n),
                        _ => spans.push((i, i + n)),
                    }
                }
            }
            i += 1;
        }
        spans
    }
}

/// How many leading bytes of `text` equal those of `form` (`form` lower-cased), ignoring case.
fn common_prefix(text: &[u8], form: &[u8]) -> usize {
    text.iter()
        .zip(form)
        .take_while(|(a, b)| a.to_ascii_lowercase() == **b)
        .count()
}

/// `text` with each span (sorted, not overlapping after merging) replaced by [`REDACTED`];
/// spans are widened to character boundaries.
fn replace_spans(text: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for &(s, e) in spans {
        let mut s = s.max(at);
        while !text.is_char_boundary(s) {
            s -= 1;
        }
        let mut e = e.min(text.len());
        while !text.is_char_boundary(e) {
            e += 1;
        }
        if e <= at {
            continue;
        }
        out.push_str(&text[at..s.max(at)]);
        out.push_str(REDACTED);
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

/// Replaces each secret in `text` by [`REDACTED`] (see [`Scrubber::scrub`]).
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    Scrubber::new(secrets).scrub(text)
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

/// `s` as it appears inside a JSON string when it differs from `s` itself: `serde_json`'s own
/// escapes, and `/` as `\/` (which other JSON writers use).
fn json_escaped(s: &str) -> Option<String> {
    let quoted = serde_json::to_string(s).ok()?;
    let inner = quoted[1..quoted.len() - 1].replace('/', "\\/");
    (inner != s).then_some(inner)
}

/// Why a credential could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("give either `{name}` or `{name}_env`, not both")]
    Both { name: String },
    #[error("`{name}_env` names ${var}, which is empty")]
    EmptyVar { name: String, var: String },
    #[error("`{name}_env` names ${var}, which is not set")]
    UnsetVar { name: String, var: String },
    #[error(
        "`{name}`{from} is {len} character(s) long: too short to be real (at least {min}; {real})"
    )]
    TooShort {
        name: String,
        /// ` (from $VAR)` when it came from the environment.
        from: String,
        len: usize,
        min: usize,
        real: &'static str,
    },
}

/// The shortest value a credential named `name` (`sources.hibp.api_key`) may have, and what
/// real ones look like. A shorter one is a placeholder or a typo, and scrubbing it by value
/// would cut every message apart (a one-letter key turns `ipblocklist` into
/// `ipbloc***redacted***list`, which also shows what the key is).
pub fn min_len(name: &str) -> (usize, &'static str) {
    match name {
        "sources.hibp.api_key" => (32, "HIBP keys are 32 hexadecimal characters"),
        "sources.safebrowsing.api_key" => (30, "Google API keys have 39 characters"),
        "sources.snds.key" => (16, "SNDS keys are GUIDs of 36 characters"),
        "sources.shadowserver.api_key" => (16, "Shadowserver issues long random API keys"),
        "sources.shadowserver.secret" => (8, "Shadowserver issues long random secrets"),
        "sources.cymru.password" => (8, "a CAP account password"),
        // Not a provider's key: the mail server's password is the owner's choice.
        "smtp.password" => (1, "any password"),
        n if n.ends_with(".auth_key") => (16, "abuse.ch Auth-Keys have 48 characters"),
        _ => (8, "a password or key"),
    }
}

/// Refuses a credential shorter than [`min_len`] of its name. `from` names the environment
/// variable it came from, if any.
pub fn check_len(name: &str, value: &Secret, from: Option<&str>) -> Result<(), SecretError> {
    let (min, real) = min_len(name);
    let len = value.0.chars().count();
    if len >= min {
        return Ok(());
    }
    Err(SecretError::TooShort {
        name: name.to_string(),
        from: from.map(|v| format!(" (from ${v})")).unwrap_or_default(),
        len,
        min,
        real,
    })
}

/// Resolves a credential given inline (`key = "..."`) or by environment variable
/// (`key_env = "VAR"`). `name` is the config key for messages, e.g. `sources.hibp.api_key`; a
/// value shorter than [`min_len`] of it is refused.
pub fn resolve(
    inline: &Option<Secret>,
    env: &Option<String>,
    name: &str,
) -> Result<Option<Secret>, SecretError> {
    let (s, var) = match (inline, env) {
        (Some(_), Some(_)) => {
            return Err(SecretError::Both {
                name: name.to_string(),
            });
        }
        (Some(s), None) => (s.clone(), None),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => (Secret(v.trim().to_string()), Some(var.as_str())),
            Ok(_) => {
                return Err(SecretError::EmptyVar {
                    name: name.to_string(),
                    var: var.clone(),
                });
            }
            Err(_) => {
                return Err(SecretError::UnsetVar {
                    name: name.to_string(),
                    var: var.clone(),
                });
            }
        },
        (None, None) => return Ok(None),
    };
    check_len(name, &s, var)?;
    Ok(Some(s))
}

#[cfg(test)]
mod tests;

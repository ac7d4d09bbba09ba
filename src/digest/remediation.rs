//! What a kind of finding means and what to do about it: data in `templates/remediation.toml`
//! (built in), optionally overridden entry by entry by a `remediation.toml` in the user's
//! template folder. Lookup order: classification type, then taxonomy, then `[default]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The built-in remediation texts.
pub(crate) const BUILTIN: &str = include_str!("../../templates/remediation.toml");

/// A one-line meaning and what to do.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub meaning: String,
    pub action: String,
}

/// The remediation table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// Used when neither the type nor the taxonomy has an entry.
    #[serde(default)]
    default: Option<Text>,
    /// Per RSIT taxonomy (`vulnerable`, `malicious-code`, ...): the fallback for its types.
    #[serde(default)]
    taxonomy: BTreeMap<String, Text>,
    /// Per classification type (`vulnerable-system`, `c2-server`, ...).
    #[serde(default, rename = "type")]
    types: BTreeMap<String, Text>,
    /// Extra advice per classification identifier (`open-dns`, `rdp`, ...).
    #[serde(default)]
    identifier: BTreeMap<String, String>,
    /// Which source-specific fields the digest shows, per feed or source.
    #[serde(default)]
    details: Details,
}

/// `[details]`: the `extra` fields worth a reader's time, per feed or source, as data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// Fields never shown (internal bookkeeping such as a cache flag).
    #[serde(default)]
    pub never: Vec<String>,
    /// `"<source>/<feed>"`, `"<feed>"` or `"<source>"` → the fields to show, in order;
    /// `default` for the rest (an empty `default`: any fields not in `never`).
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    /// Labels for field names (`data_classes = "exposed data"`); others are shown with spaces
    /// for underscores.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Details {
    /// The fields to show for a finding of `source`/`feed`: `None` means "any not hidden".
    pub fn fields_for(&self, source: &str, feed: &str) -> Option<&[String]> {
        self.fields
            .get(&format!("{source}/{feed}"))
            .or_else(|| self.fields.get(feed))
            .or_else(|| self.fields.get(source))
            .or_else(|| self.fields.get("default"))
            .filter(|v| !v.is_empty())
            .map(Vec::as_slice)
    }

    /// Whether a field is never shown.
    pub fn hidden(&self, key: &str) -> bool {
        self.never.iter().any(|k| k == key)
    }

    /// The label of a field.
    pub fn label(&self, key: &str) -> String {
        self.labels
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.replace('_', " "))
    }
}

/// Why the remediation table could not be read (shown with its causes by
/// [`crate::text::chain`]).
#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    /// A file that is no remediation table (`name`: its path, or the built-in one).
    #[error("{name}")]
    Parse {
        name: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Remediation {
    /// Parses one remediation file; `name` is used in the error message.
    pub fn parse(text: &str, name: &str) -> Result<Self, RemediationError> {
        toml::from_str(text).map_err(|source| RemediationError::Parse {
            name: name.to_string(),
            source,
        })
    }

    /// The built-in table.
    pub fn builtin() -> Result<Self, RemediationError> {
        Self::parse(BUILTIN, "built-in remediation.toml")
    }

    /// The built-in table with `<dir>/remediation.toml` (when present) laid over it.
    pub fn load(dir: Option<&Path>) -> Result<Self, RemediationError> {
        let mut r = Self::builtin()?;
        if let Some(dir) = dir {
            let p = dir.join("remediation.toml");
            if p.exists() {
                let text =
                    std::fs::read_to_string(&p).map_err(|source| RemediationError::Read {
                        path: p.clone(),
                        source,
                    })?;
                let o = Self::parse(&text, &p.display().to_string())?;
                if o.default.is_some() {
                    r.default = o.default;
                }
                r.taxonomy.extend(o.taxonomy);
                r.types.extend(o.types);
                r.identifier.extend(o.identifier);
                r.details.never.extend(o.details.never);
                r.details.fields.extend(o.details.fields);
                r.details.labels.extend(o.details.labels);
            }
        }
        Ok(r)
    }

    /// The text for a classification type (falling back to its taxonomy, then the default).
    pub fn lookup(&self, kind: &str, taxonomy: &str) -> Text {
        self.types
            .get(kind)
            .or_else(|| match kind {
                // One meaning, two names (RSIT renamed it): either entry serves both.
                "blocklist" => self.types.get("blacklist"),
                "blacklist" => self.types.get("blocklist"),
                _ => None,
            })
            .or_else(|| self.taxonomy.get(taxonomy))
            .or_else(|| self.taxonomy.get(crate::finding::taxonomy_for_type(kind)))
            .or(self.default.as_ref())
            .cloned()
            .unwrap_or_else(|| Text {
                meaning: "A watcher outside your network reported this.".into(),
                action: "Check the affected system and the source's documentation.".into(),
            })
    }

    /// Which fields the digest shows.
    pub fn details(&self) -> &Details {
        &self.details
    }

    /// Extra advice for one classification identifier, if any.
    pub fn identifier(&self, id: &str) -> Option<&str> {
        self.identifier.get(id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_falls_back() {
        let r = Remediation::builtin().unwrap();
        let t = r.lookup("c2-server", "malicious-code");
        assert!(t.meaning.to_lowercase().contains("command"));
        // Unknown type, known taxonomy.
        let v = r.lookup("something-new", "vulnerable");
        assert_eq!(v, r.taxonomy["vulnerable"]);
        // Unknown everything: the `other` taxonomy (unknown types belong to it), then the default.
        assert_eq!(r.lookup("zzz", "zzz"), r.taxonomy["other"]);
        let empty =
            Remediation::parse("[default]\nmeaning = \"m\"\naction = \"a\"\n", "t").unwrap();
        assert_eq!(empty.lookup("zzz", "zzz").meaning, "m");
        assert!(r.identifier("open-dns").is_some());
    }

    #[test]
    fn override_wins_entry_by_entry() {
        let dir = std::env::temp_dir().join(format!("ow-rem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("remediation.toml"),
            "[type.c2-server]\nmeaning = \"ours\"\naction = \"do it\"\n",
        )
        .unwrap();
        let r = Remediation::load(Some(&dir)).unwrap();
        assert_eq!(r.lookup("c2-server", "").meaning, "ours");
        assert_ne!(r.lookup("phishing", "fraud").meaning, "ours");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! What a kind of finding means and what to do about it: data in `templates/remediation.toml`
//! (built in), optionally overridden entry by entry by a `remediation.toml` in the user's
//! template folder. Lookup order: classification type, then taxonomy, then `[default]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The built-in remediation texts.
pub const BUILTIN: &str = include_str!("../../templates/remediation.toml");

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
}

impl Remediation {
    /// Parses one remediation file; `name` is used in the error message.
    pub fn parse(text: &str, name: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("{name}: {e}"))
    }

    /// The built-in table.
    pub fn builtin() -> Result<Self, String> {
        Self::parse(BUILTIN, "built-in remediation.toml")
    }

    /// The built-in table with `<dir>/remediation.toml` (when present) laid over it.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut r = Self::builtin()?;
        if let Some(dir) = dir {
            let p = dir.join("remediation.toml");
            if p.exists() {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                let o = Self::parse(&text, &p.display().to_string())?;
                if o.default.is_some() {
                    r.default = o.default;
                }
                r.taxonomy.extend(o.taxonomy);
                r.types.extend(o.types);
                r.identifier.extend(o.identifier);
            }
        }
        Ok(r)
    }

    /// The text for a classification type (falling back to its taxonomy, then the default).
    pub fn lookup(&self, kind: &str, taxonomy: &str) -> Text {
        self.types
            .get(kind)
            .or_else(|| self.taxonomy.get(taxonomy))
            .or_else(|| self.taxonomy.get(crate::finding::taxonomy_for_type(kind)))
            .or(self.default.as_ref())
            .cloned()
            .unwrap_or_else(|| Text {
                meaning: "A watcher outside your network reported this.".into(),
                action: "Check the affected system and the source's documentation.".into(),
            })
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

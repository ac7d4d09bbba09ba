//! The registry of sources: each kind of source registers once, in [`REGISTRY`], and whatever
//! must find every source asks here: reading the `[sources.*]` tables of the config file
//! ([`Registry`], the reader `Config::parse` is given), [`enabled_sources`], `check-config`,
//! feed health and `status`. Adding a source is one folder (`src/sources/<name>/`, its
//! `config.rs` implementing [`SourceKind`]) and one line in [`REGISTRY`].
//!
//! The config file is read in two steps, so that `config` knows no source: `config` parses its
//! own tables, then, through [`Registry`], each registration parses its `[sources.<name>]`
//! tables out of the same text (errors name the line) and checks them, and leaves them in
//! [`Config::sources`].

pub(crate) use super::registration::{Kind, Registration, SourceTableError};
use super::{BuiltSource, cymru, hibp, lists, safebrowsing, shadowserver, snds};
use crate::config::{Config, CronSchedule, SourceTables, closest, line_hint};
use crate::finding::SourceId;

/// Every kind of source, in the order `fetch` and `status` list them.
pub(crate) static REGISTRY: &[&dyn Registration] = &[
    &Kind::<shadowserver::ShadowserverConfig>::NEW,
    &Kind::<hibp::HibpConfig>::NEW,
    &Kind::<safebrowsing::SafeBrowsingConfig>::NEW,
    &Kind::<snds::SndsConfig>::NEW,
    &Kind::<cymru::CymruConfig>::NEW,
    &lists::config::ListFeeds,
];

/// The names of the single sources (reserved: no list feed may take them).
pub(crate) fn single_names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter_map(|r| r.single())
        .map(SourceId::name)
        .collect()
}

/// Every `[sources.NAME]` must name a source (before any table is read: a typo such as
/// `[sources.hipb]` would otherwise fail on its first key with another table's fields). The
/// error names the line and the closest names.
fn check_source_names(text: &str, cfg: &Config) -> Result<(), SourceTableError> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Ok(()); // the config's own parse named the syntax error
    };
    let Some(toml::Value::Table(sources)) = doc.get("sources") else {
        return Ok(());
    };
    let builtin = single_names();
    let mut known: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
    let mut feeds = Vec::new();
    for r in REGISTRY.iter().filter(|r| r.single().is_none()) {
        feeds.extend(r.names(cfg));
    }
    known.extend(feeds.iter().cloned());
    for name in sources.keys() {
        if known.iter().any(|k| k == name) {
            continue;
        }
        let near = closest(name, known.iter().map(String::as_str));
        let hint = match near.as_slice() {
            [] => String::new(),
            [one] => format!("did you mean `[sources.{one}]`? "),
            many => format!(
                "did you mean {}? ",
                many.iter()
                    .map(|n| format!("`[sources.{n}]`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
        let at = {
            let l = line_hint(text, &format!("[sources.{name}]"));
            if l.is_empty() {
                line_hint(text, &format!("sources.{name}"))
            } else {
                l
            }
        };
        return Err(SourceTableError::UnknownSource {
            at,
            name: name.clone(),
            hint,
            singles: builtin.join(", "),
            feeds: feeds.join(", "),
        });
    }
    Ok(())
}

/// Has every registered source read and check its tables of `text` into `cfg.sources`.
pub(crate) fn configure(cfg: &mut Config, text: &str) -> Result<(), SourceTableError> {
    check_source_names(text, cfg)?;
    let singles = single_names();
    for r in REGISTRY {
        r.configure(text, cfg, &singles)?;
    }
    Ok(())
}

/// The `[sources.*]` tables' reader of `Config::parse`: every registered source reads and
/// checks its tables ([`configure`]).
pub struct Registry;

impl SourceTables for Registry {
    fn read(
        &self,
        text: &str,
        cfg: &mut Config,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(configure(cfg, text)?)
    }
}

/// Builds every enabled source from the config, in [`REGISTRY`] order. A source whose settings
/// are unusable (a key named but missing) is reported as an error under its name rather than
/// silently skipped.
pub fn enabled_sources(cfg: &Config) -> Vec<BuiltSource> {
    REGISTRY.iter().flat_map(|r| r.build_enabled(cfg)).collect()
}

/// The `schedule` set in a source's config table, if any.
pub fn configured_schedule(cfg: &Config, name: &str) -> Option<CronSchedule> {
    REGISTRY
        .iter()
        .find_map(|r| r.configured_schedule(cfg, name))
}

/// Config keys that hold a secret written inline in the file, over every source.
pub(crate) fn inline_secrets(cfg: &Config) -> Vec<String> {
    REGISTRY
        .iter()
        .flat_map(|r| r.inline_secrets(cfg))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::registration::{table, tables};
    use std::path::Path;

    #[test]
    fn every_built_in_source_but_flows_is_registered_once() {
        // A single source's name is its `SourceId`'s (the `source_kind!` line), and feed files
        // may take none of them (`lists::definition`); flows is not fetched.
        let mut got = single_names();
        got.sort_unstable();
        let mut want: Vec<_> = SourceId::ALL
            .into_iter()
            .filter(|s| *s != SourceId::Flows)
            .map(SourceId::name)
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn tables_name_the_line_of_a_bad_key() {
        let text =
            "[organisation]\nname = \"x\"\n\n[sources.hibp]\napi_key_env = \"K\"\nbogus = 1\n";
        let e = tables::<hibp::HibpConfig>(text, &|n| n == "hibp")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6") && e.contains("bogus"), "{e}");
        let t =
            tables::<hibp::HibpConfig>("[sources.hibp]\napi_key_env = \"K\"\n", &|n| n == "hibp")
                .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].1.api_key_env.as_deref(), Some("K"));
        assert!(
            tables::<hibp::HibpConfig>("", &|_| true)
                .unwrap()
                .is_empty()
        );
    }

    /// A source without its credential is built as an error that says what to set.
    #[test]
    fn a_missing_credential_names_what_to_set() {
        let cfg = Config::parse(
            "[organisation]\nname = \"x\"\nprefixes = [\"192.0.2.0/24\"]\n\
             [sources.hibp]\n[sources.snds]\n[sources.safebrowsing]\nurls = [\"https://x.example/\"]\n\
             [sources.cymru]\nusername = \"u\"\nurl = \"https://cap.example/{date}.txt\"\n",
            Path::new("/x/outwatch.toml"),
            &Registry,
        )
        .unwrap();
        let built: std::collections::HashMap<String, String> = enabled_sources(&cfg)
            .into_iter()
            .filter_map(|(n, r)| Some((n, r.err()?.to_string())))
            .collect();
        for (name, says) in [
            (
                "hibp",
                "sources.hibp needs `api_key` or `api_key_env` (a paid HIBP API key)",
            ),
            (
                "snds",
                "sources.snds needs `key` or `key_env` (the key from the SNDS \"Automated Data \
                 Access\" page)",
            ),
            (
                "safebrowsing",
                "sources.safebrowsing needs `api_key` or `api_key_env` (a Google Cloud API key \
                 with the Safe Browsing API enabled)",
            ),
            ("cymru", "sources.cymru needs `password` or `password_env`"),
        ] {
            let e = built
                .get(name)
                .unwrap_or_else(|| panic!("{name}: {built:?}"));
            assert!(e.contains(says), "{name}: {e}");
        }
    }

    #[test]
    fn every_source_is_found_through_the_registry() {
        let cfg = Config::parse(
            "[organisation]\nname = \"x\"\nprefixes = [\"192.0.2.0/24\"]\n\
             [sources.snds]\nkey = \"1b4e28ba-2fa1-11d2-883f-0016d3cca427\"\nschedule = \"0 9 * * *\"\n\
             [sources.feodotracker]\nschedule = \"0 8 * * *\"\n",
            Path::new("/x/outwatch.toml"),
            &Registry,
        )
        .unwrap();
        let names: Vec<String> = enabled_sources(&cfg).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.first().map(String::as_str), Some("snds"), "{names:?}");
        assert!(names.iter().any(|n| n == "feodotracker"), "{names:?}");
        assert_eq!(
            configured_schedule(&cfg, "snds").unwrap().source,
            "0 9 * * *"
        );
        assert_eq!(
            configured_schedule(&cfg, "feodotracker").unwrap().source,
            "0 8 * * *"
        );
        assert!(configured_schedule(&cfg, "hibp").is_none());
        assert_eq!(inline_secrets(&cfg), ["sources.snds.key"]);
        assert!(table::<snds::SndsConfig>(&cfg).is_some());
        assert!(table::<hibp::HibpConfig>(&cfg).is_none());
    }

    #[test]
    fn check_config_prints_each_table_redacted_with_unset_keys_left_out() {
        let cfg = Config::parse(
            "[organisation]\nname = \"x\"\nprefixes = [\"192.0.2.0/24\"]\n\
             [sources.hibp]\napi_key = \"hunter2hunter2hunter2hunter2hunter2\"\n[sources.urlhaus]\nenabled = false\n",
            Path::new("/x/outwatch.toml"),
            &Registry,
        )
        .unwrap();
        let text = toml::to_string_pretty(&cfg).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("[sources.hibp]") && text.contains("***redacted***"),
            "{text}"
        );
        assert!(
            text.contains("[sources.urlhaus]") && !text.contains("base_url"),
            "{text}"
        );
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["sources"]["hibp"]["base_url"], serde_json::Value::Null);
        assert_eq!(json["sources"]["urlhaus"]["enabled"], false);
        assert!(!json.to_string().contains("hunter2"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

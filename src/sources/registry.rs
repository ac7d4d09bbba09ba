//! The registry of sources: each kind of source registers once, in [`REGISTRY`], and whatever
//! must find every source asks here: reading the `[sources.*]` tables of the config file
//! ([`Config::parse`], [`Config::load`]), [`enabled_sources`], `check-config`, feed health and
//! `status`. Adding a source is one folder (`src/sources/<name>/`, its `config.rs` implementing
//! [`SourceKind`]) and one line in [`REGISTRY`].
//!
//! The config file is read in two steps, so that `config` knows no source: `config` parses its
//! own tables, then each registration parses its `[sources.<name>]` tables out of the same text
//! (errors name the line) and checks them, and leaves them in [`Config::sources`].

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::{
    BuiltSource, FetchError, Source, cymru, hibp, lists, safebrowsing, shadowserver, snds,
};
use crate::config::{
    Config, ConfigError, CronSchedule, HumanDuration, check_url, closest, line_hint,
    table_line_hint, toml_error,
};

/// Every kind of source, in the order `fetch` and `status` list them.
pub static REGISTRY: &[&dyn Registration] = &[
    &Kind::<shadowserver::ShadowserverConfig>::NEW,
    &Kind::<hibp::HibpConfig>::NEW,
    &Kind::<safebrowsing::SafeBrowsingConfig>::NEW,
    &Kind::<snds::SndsConfig>::NEW,
    &Kind::<cymru::CymruConfig>::NEW,
    &lists::config::ListFeeds,
];

/// How a kind of source plugs in: which `[sources.*]` tables are its own, how they are read and
/// checked, and how its sources are built.
pub trait Registration: Sync {
    /// The name of a single source (`hibp`), or `None` for a family (the list feeds).
    fn single(&self) -> Option<&'static str>;
    /// The `[sources.NAME]` names it answers to with this config (the list feeds: every feed
    /// defined, built in or in `[feeds] dir`).
    fn names(&self, cfg: &Config) -> Vec<String>;
    /// Reads its tables out of the config `text` (an error names the line) into
    /// `cfg.sources`, and checks what serde cannot (URLs, feed files).
    fn configure(&self, text: &str, cfg: &mut Config) -> Result<(), String>;
    /// Builds its enabled sources; one that cannot be built is an error under its name.
    fn build_enabled(&self, cfg: &Config) -> Vec<BuiltSource>;
    /// The `schedule` set in the table of its source `name`, if any.
    fn configured_schedule(&self, cfg: &Config, name: &str) -> Option<CronSchedule>;
    /// The keys (`sources.hibp.api_key`) of its tables that hold a secret written inline.
    fn inline_secrets(&self, cfg: &Config) -> Vec<String>;
}

/// A configured URL to check: the key, the value, and whether a key is sent to it.
pub type ConfiguredUrl<'a> = (&'static str, &'a str, bool);

/// A single source's `[sources.<NAME>]` table: its struct, its defaults, and how the source is
/// built from it. [`Kind`] turns it into a [`Registration`].
pub trait SourceKind: DeserializeOwned + Serialize + fmt::Debug + Send + Sync + 'static {
    /// The table's and the source's name.
    const NAME: &'static str;
    /// When the daemon runs it unless `schedule` says otherwise (a cron literal).
    const DEFAULT_SCHEDULE: &'static str;
    /// How long a finding stays open after the source stops reporting it, unless
    /// `resolve_after` says otherwise.
    fn default_resolve_after() -> chrono::Duration;
    /// `enabled`.
    fn enabled(&self) -> bool;
    /// `schedule`, when set.
    fn schedule(&self) -> Option<&CronSchedule>;
    /// `resolve_after`, when set.
    fn resolve_after(&self) -> Option<HumanDuration>;
    /// The URLs set in the table (see [`ConfiguredUrl`]).
    fn urls(&self) -> Vec<ConfiguredUrl<'_>>;
    /// `allow_plain_http`: a key may travel to a plain `http://` URL that is not loopback.
    fn allow_plain_http(&self) -> bool;
    /// The keys of the table that hold a secret written inline (`api_key`).
    fn inline_secrets(&self) -> Vec<&'static str>;
    /// The secrets written inline, with their keys (checked for length when the file is read).
    fn inline_secret_values(&self) -> Vec<(&'static str, &crate::secret::Secret)>;
    /// Builds the source (resolving keys from the environment).
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError>;

    /// `schedule`, else [`SourceKind::DEFAULT_SCHEDULE`].
    fn run_schedule(&self) -> CronSchedule {
        self.schedule()
            .cloned()
            .unwrap_or_else(|| super::schedule(Self::DEFAULT_SCHEDULE))
    }
    /// `resolve_after`, else [`SourceKind::default_resolve_after`].
    fn resolve_window(&self) -> chrono::Duration {
        super::window_or(self.resolve_after(), Self::default_resolve_after())
    }
}

/// Implements [`SourceKind`] for a `[sources.<name>]` table struct that has the common fields
/// `enabled`, `schedule`, `resolve_after` and `allow_plain_http`, and builds with
/// `super::build(self, cfg)` (the source folder's `mod.rs`). Each source states only what
/// differs: its name, default schedule and window, its URL fields (`Option<String>`, with
/// whether a key is sent to them, in the order they are checked) and its inline-secret fields
/// (`Option<Secret>`).
macro_rules! source_kind {
    (
        $ty:ty,
        name: $name:literal,
        schedule: $schedule:literal,
        resolve_after: $resolve_after:expr,
        urls: [$($url:ident: $keyed:literal),* $(,)?],
        secrets: [$($secret:ident),* $(,)?] $(,)?
    ) => {
        impl $crate::sources::registry::SourceKind for $ty {
            const NAME: &'static str = $name;
            const DEFAULT_SCHEDULE: &'static str = $schedule;
            fn default_resolve_after() -> chrono::Duration {
                $resolve_after
            }
            fn enabled(&self) -> bool {
                self.enabled
            }
            fn schedule(&self) -> Option<&$crate::config::CronSchedule> {
                self.schedule.as_ref()
            }
            fn resolve_after(&self) -> Option<$crate::config::HumanDuration> {
                self.resolve_after
            }
            fn urls(&self) -> Vec<$crate::sources::registry::ConfiguredUrl<'_>> {
                let mut out = Vec::new();
                $(
                    if let Some(v) = &self.$url {
                        out.push((stringify!($url), v.as_str(), $keyed));
                    }
                )*
                out
            }
            fn allow_plain_http(&self) -> bool {
                self.allow_plain_http
            }
            fn inline_secrets(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(
                    if self.$secret.is_some() {
                        out.push(stringify!($secret));
                    }
                )*
                out
            }
            fn inline_secret_values(&self) -> Vec<(&'static str, &$crate::secret::Secret)> {
                let mut out = Vec::new();
                $(
                    if let Some(v) = &self.$secret {
                        out.push((stringify!($secret), v));
                    }
                )*
                out
            }
            fn build(
                &self,
                cfg: &$crate::config::Config,
            ) -> Result<std::sync::Arc<dyn $crate::sources::Source>, $crate::sources::FetchError>
            {
                super::build(self, cfg)
            }
        }
    };
}
pub(crate) use source_kind;

/// The [`Registration`] of a single source whose table is `T`.
pub struct Kind<T>(PhantomData<fn() -> T>);

impl<T> Kind<T> {
    /// The registration (a constant, for [`REGISTRY`]).
    pub const NEW: Kind<T> = Kind(PhantomData);
}

/// The table of source `T`, when the config has one.
pub fn table<T: SourceKind>(cfg: &Config) -> Option<&T> {
    cfg.sources.get::<T>(T::NAME)
}

impl<T: SourceKind> Registration for Kind<T> {
    fn single(&self) -> Option<&'static str> {
        Some(T::NAME)
    }

    fn names(&self, _cfg: &Config) -> Vec<String> {
        vec![T::NAME.to_string()]
    }

    fn configure(&self, text: &str, cfg: &mut Config) -> Result<(), String> {
        for (name, t) in tables::<T>(text, &|n| n == T::NAME)? {
            check_urls(text, &name, &t.urls(), t.allow_plain_http())?;
            check_secrets(text, &name, &t.inline_secret_values())?;
            cfg.sources.set(&name, t);
        }
        Ok(())
    }

    fn build_enabled(&self, cfg: &Config) -> Vec<BuiltSource> {
        match table::<T>(cfg) {
            Some(t) if t.enabled() => vec![(T::NAME.to_string(), t.build(cfg))],
            _ => Vec::new(),
        }
    }

    fn configured_schedule(&self, cfg: &Config, name: &str) -> Option<CronSchedule> {
        (name == T::NAME)
            .then(|| table::<T>(cfg).and_then(|t| t.schedule().cloned()))
            .flatten()
    }

    fn inline_secrets(&self, cfg: &Config) -> Vec<String> {
        table::<T>(cfg)
            .map(|t| {
                t.inline_secrets()
                    .into_iter()
                    .map(|k| format!("sources.{}.{k}", T::NAME))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Checks the URLs of table `[sources.<name>]`: `http(s)`, and `https` or loopback where a
/// key is sent (unless `allow_plain_http`). The error names the key and its line.
pub fn check_urls(
    text: &str,
    name: &str,
    urls: &[ConfiguredUrl<'_>],
    allow_plain_http: bool,
) -> Result<(), String> {
    let table = format!("sources.{name}");
    for &(key, value, keyed) in urls {
        if let Err(e) = check_url(value, keyed && !allow_plain_http) {
            return Err(format!(
                "{}`{table}.{key}` = `{value}`: {e}",
                table_line_hint(text, &table, key)
            ));
        }
    }
    Ok(())
}

/// Refuses a secret of table `[sources.<name>]` too short to be real
/// ([`crate::secret::min_len`]); the error names the key and its line.
pub fn check_secrets(
    text: &str,
    name: &str,
    secrets: &[(&'static str, &crate::secret::Secret)],
) -> Result<(), String> {
    let table = format!("sources.{name}");
    for &(key, value) in secrets {
        if let Err(e) = crate::secret::check_len(&format!("{table}.{key}"), value, None) {
            return Err(format!("{}{e}", table_line_hint(text, &table, key)));
        }
    }
    Ok(())
}

/// Every `[sources.NAME]` table of `text` whose NAME `pick` accepts, read as `T`, in file
/// order. The document is read again so that an error names the line of its key.
pub fn tables<T: DeserializeOwned>(
    text: &str,
    pick: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, T)>, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e))?;
    Root::<T> {
        pick,
        t: PhantomData,
    }
    .deserialize(de)
    .map_err(|e| toml_error(text, &e))
}

/// The document: only its `sources` table is read.
struct Root<'p, T> {
    pick: &'p dyn Fn(&str) -> bool,
    t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Root<'_, T> {
    type Value = Vec<(String, T)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Root<'_, T> {
    type Value = Vec<(String, T)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = m.next_key::<String>()? {
            if k == "sources" {
                out = m.next_value_seed(Tables::<T> {
                    pick: self.pick,
                    t: PhantomData,
                })?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// The `sources` table: the picked tables are read as `T`, the others skipped.
struct Tables<'p, T> {
    pick: &'p dyn Fn(&str) -> bool,
    t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Tables<'_, T> {
    type Value = Vec<(String, T)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Tables<'_, T> {
    type Value = Vec<(String, T)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of source tables")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = m.next_key::<String>()? {
            if (self.pick)(&k) {
                let v = m.next_value::<T>()?;
                out.push((k, v));
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// The names of the single sources (reserved: no list feed may take them).
pub fn single_names() -> Vec<&'static str> {
    REGISTRY.iter().filter_map(|r| r.single()).collect()
}

/// Every `[sources.NAME]` must name a source (before any table is read: a typo such as
/// `[sources.hipb]` would otherwise fail on its first key with another table's fields). The
/// error names the line and the closest names.
fn check_source_names(text: &str, cfg: &Config) -> Result<(), String> {
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
        return Err(format!(
            "{at}unknown source `sources.{name}`: {hint}the sources are {} and the list feeds {}",
            builtin.join(", "),
            feeds.join(", ")
        ));
    }
    Ok(())
}

/// Has every registered source read and check its tables of `text` into `cfg.sources`.
pub fn configure(cfg: &mut Config, text: &str) -> Result<(), String> {
    check_source_names(text, cfg)?;
    for r in REGISTRY {
        r.configure(text, cfg)?;
    }
    Ok(())
}

impl Config {
    /// Parses a config document: the config's own tables, then each source's (see the module
    /// documentation). `path` is used in messages and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg = Config::parse_own_tables(text, path)?;
        configure(&mut cfg, text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        Ok(cfg)
    }

    /// Reads and parses the config file at `path`. A file must name something as ours (see
    /// [`Config::require_something_ours`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = Config::read_text(path)?;
        let cfg = Config::parse(&text, path)?;
        cfg.require_something_ours(&text, path)?;
        Ok(cfg)
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
pub fn inline_secrets(cfg: &Config) -> Vec<String> {
    REGISTRY
        .iter()
        .flat_map(|r| r.inline_secrets(cfg))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_feeds_cannot_take_a_single_source_name() {
        // `lists::definition::RESERVED` refuses these names in feed files: it must follow the
        // registry (a new source is one registry line, and this test names the other place).
        assert_eq!(single_names(), lists::definition::RESERVED);
    }

    #[test]
    fn tables_name_the_line_of_a_bad_key() {
        let text =
            "[organisation]\nname = \"x\"\n\n[sources.hibp]\napi_key_env = \"K\"\nbogus = 1\n";
        let e = tables::<hibp::HibpConfig>(text, &|n| n == "hibp").unwrap_err();
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

    #[test]
    fn every_source_is_found_through_the_registry() {
        let cfg = Config::parse(
            "[organisation]\nname = \"x\"\nprefixes = [\"192.0.2.0/24\"]\n\
             [sources.snds]\nkey = \"1b4e28ba-2fa1-11d2-883f-0016d3cca427\"\nschedule = \"0 9 * * *\"\n\
             [sources.feodotracker]\nschedule = \"0 8 * * *\"\n",
            Path::new("/x/outwatch.toml"),
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

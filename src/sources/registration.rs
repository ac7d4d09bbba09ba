//! How a kind of source plugs into the registry (`registry::REGISTRY`): the
//! [`Registration`] trait, a single source's table ([`SourceTable`], written by the
//! [`source_kind!`] macro) and how the source is built from it ([`SourceKind`], written by the
//! source's `mod.rs`), [`Kind`], and the checks every table gets (URLs, inline secrets), read
//! out of the config text so that an error names its line.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::{BuiltSource, FetchError, Source};
use crate::config::{
    Config, CronSchedule, HumanDuration, UrlError, check_url, table_line_hint, toml_error,
};
use crate::finding::SourceId;
use crate::secret::SecretError;

/// A `[sources.*]` table that cannot be used. `at` is where (`line L: `, empty when the line
/// was not found); the message names the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum SourceTableError {
    /// The tables cannot be read: TOML's error as [`crate::config::toml_error`] writes it (the
    /// line quoted, a caret under the place).
    #[error("{0}")]
    Toml(String),
    /// `[sources.NAME]` names no source; `hint` proposes the closest names (or is empty).
    #[error(
        "{at}unknown source `sources.{name}`: {hint}the sources are {singles} and the list \
         feeds {feeds}"
    )]
    UnknownSource {
        at: String,
        name: String,
        hint: String,
        singles: String,
        feeds: String,
    },
    #[error("{at}`{table}.{key}` = `{value}`: {error}")]
    Url {
        at: String,
        table: String,
        key: &'static str,
        value: String,
        #[source]
        error: UrlError,
    },
    /// A secret written inline that is too short to be real.
    #[error("{at}{error}")]
    Secret {
        at: String,
        #[source]
        error: SecretError,
    },
    /// A kind's own check failed (a list feed's definition file); its error, whole.
    #[error(transparent)]
    Kind(Box<dyn std::error::Error + Send + Sync>),
}

/// How a kind of source plugs in: which `[sources.*]` tables are its own, how they are read and
/// checked, and how its sources are built.
pub trait Registration: Sync {
    /// Which single source it is (`hibp`), or `None` for a family (the list feeds).
    fn single(&self) -> Option<SourceId>;
    /// The `[sources.NAME]` names it answers to with this config (the list feeds: every feed
    /// defined, built in or in `[feeds] dir`).
    fn names(&self, cfg: &Config) -> Vec<String>;
    /// Reads its tables out of the config `text` (an error names the line) into
    /// `cfg.sources`, and checks what serde cannot (URLs, feed files).
    /// `singles` are the names of every single source (reserved: no list feed may take them).
    fn configure(
        &self,
        text: &str,
        cfg: &mut Config,
        singles: &[&str],
    ) -> Result<(), SourceTableError>;
    /// Builds its enabled sources; one that cannot be built is an error under its name.
    fn build_enabled(&self, cfg: &Config) -> Vec<BuiltSource>;
    /// The `schedule` set in the table of its source `name`, if any.
    fn configured_schedule(&self, cfg: &Config, name: &str) -> Option<CronSchedule>;
    /// The keys (`sources.hibp.api_key`) of its tables that hold a secret written inline.
    fn inline_secrets(&self, cfg: &Config) -> Vec<String>;
}

/// A configured URL to check: the key, the value, and whether a key is sent to it.
pub(crate) type ConfiguredUrl<'a> = (&'static str, &'a str, bool);

/// A single source's `[sources.<NAME>]` table: its struct and its defaults, implemented by the
/// [`source_kind!`] macro. How the source is built from it is [`SourceKind`].
pub trait SourceTable: DeserializeOwned + Serialize + fmt::Debug + Send + Sync + 'static {
    /// Which source it is; its name (`ID.name()`) is the table's and the source's.
    const ID: SourceId;
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

    /// `schedule`, else [`SourceTable::DEFAULT_SCHEDULE`].
    fn run_schedule(&self) -> CronSchedule {
        self.schedule()
            .cloned()
            .unwrap_or_else(|| super::schedule(Self::DEFAULT_SCHEDULE))
    }
    /// `resolve_after`, else [`SourceTable::default_resolve_after`].
    fn resolve_window(&self) -> chrono::Duration {
        super::window_or(self.resolve_after(), Self::default_resolve_after())
    }
}

/// A single source: its table, and how the source is built from it (each source's `mod.rs`
/// implements it next to its fetcher). [`Kind`] turns it into a [`Registration`].
pub trait SourceKind: SourceTable {
    /// Builds the source (resolving keys from the environment).
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError>;
}

/// Implements [`SourceTable`] for a `[sources.<name>]` table struct that has the common fields
/// `enabled`, `schedule`, `resolve_after` and `allow_plain_http`. Each source states only what
/// differs: which source it is (`id:`, a [`SourceId`] variant), its default schedule and
/// window, its URL fields (`Option<String>`, with whether a key is sent to them, in the order
/// they are checked) and its inline-secret fields (`Option<Secret>`); its `mod.rs` implements
/// [`SourceKind::build`].
macro_rules! source_kind {
    (
        $ty:ty,
        id: $id:ident,
        schedule: $schedule:literal,
        resolve_after: $resolve_after:expr,
        urls: [$($url:ident: $keyed:literal),* $(,)?],
        secrets: [$($secret:ident),* $(,)?] $(,)?
    ) => {
        impl $crate::sources::registration::SourceTable for $ty {
            const ID: $crate::finding::SourceId = $crate::finding::SourceId::$id;
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
            fn urls(&self) -> Vec<$crate::sources::registration::ConfiguredUrl<'_>> {
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
        }
    };
}
pub(crate) use source_kind;

/// The [`Registration`] of a single source whose table is `T`.
pub(crate) struct Kind<T>(PhantomData<fn() -> T>);

impl<T> Kind<T> {
    /// The registration (a constant, for `registry::REGISTRY`).
    pub(crate) const NEW: Kind<T> = Kind(PhantomData);
}

/// The table of source `T`, when the config has one.
pub fn table<T: SourceTable>(cfg: &Config) -> Option<&T> {
    cfg.sources.get::<T>(T::ID.name())
}

impl<T: SourceKind> Registration for Kind<T> {
    fn single(&self) -> Option<SourceId> {
        Some(T::ID)
    }

    fn names(&self, _cfg: &Config) -> Vec<String> {
        vec![T::ID.name().to_string()]
    }

    fn configure(
        &self,
        text: &str,
        cfg: &mut Config,
        _singles: &[&str],
    ) -> Result<(), SourceTableError> {
        for (name, t) in tables::<T>(text, &|n| T::ID.is(n))? {
            check_urls(text, &name, &t.urls(), t.allow_plain_http())?;
            check_secrets(text, &name, &t.inline_secret_values())?;
            cfg.sources.set(&name, t);
        }
        Ok(())
    }

    fn build_enabled(&self, cfg: &Config) -> Vec<BuiltSource> {
        match table::<T>(cfg) {
            Some(t) if t.enabled() => vec![(T::ID.name().to_string(), t.build(cfg))],
            _ => Vec::new(),
        }
    }

    fn configured_schedule(&self, cfg: &Config, name: &str) -> Option<CronSchedule> {
        T::ID
            .is(name)
            .then(|| table::<T>(cfg).and_then(|t| t.schedule().cloned()))
            .flatten()
    }

    fn inline_secrets(&self, cfg: &Config) -> Vec<String> {
        table::<T>(cfg)
            .map(|t| {
                t.inline_secrets()
                    .into_iter()
                    .map(|k| format!("sources.{}.{k}", T::ID.name()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Checks the URLs of table `[sources.<name>]`: `http(s)`, and `https` or loopback where a
/// key is sent (unless `allow_plain_http`). The error names the key and its line.
pub(crate) fn check_urls(
    text: &str,
    name: &str,
    urls: &[ConfiguredUrl<'_>],
    allow_plain_http: bool,
) -> Result<(), SourceTableError> {
    let table = format!("sources.{name}");
    for &(key, value, keyed) in urls {
        if let Err(error) = check_url(value, keyed && !allow_plain_http) {
            return Err(SourceTableError::Url {
                at: table_line_hint(text, &table, key),
                table,
                key,
                value: value.to_string(),
                error,
            });
        }
    }
    Ok(())
}

/// Refuses a secret of table `[sources.<name>]` too short to be real
/// ([`crate::secret::min_len`]); the error names the key and its line.
pub(crate) fn check_secrets(
    text: &str,
    name: &str,
    secrets: &[(&'static str, &crate::secret::Secret)],
) -> Result<(), SourceTableError> {
    let table = format!("sources.{name}");
    for &(key, value) in secrets {
        if let Err(error) = crate::secret::check_len(&format!("{table}.{key}"), value, None) {
            return Err(SourceTableError::Secret {
                at: table_line_hint(text, &table, key),
                error,
            });
        }
    }
    Ok(())
}

/// Every `[sources.NAME]` table of `text` whose NAME `pick` accepts, read as `T`, in file
/// order. The document is read again so that an error names the line of its key.
pub(crate) fn tables<T: DeserializeOwned>(
    text: &str,
    pick: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, T)>, SourceTableError> {
    let toml = |e: toml::de::Error| SourceTableError::Toml(toml_error(text, &e));
    let de = toml::Deserializer::parse(text).map_err(toml)?;
    Root::<T> {
        pick,
        t: PhantomData,
    }
    .deserialize(de)
    .map_err(toml)
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

//! The list feeds' registration: one for the whole family. Every feed defined (built in, or a
//! file in `[feeds] dir`) answers to `[sources.<feed>]`, read as [`ListSourceConfig`]; the
//! feed's defaults (schedule, `resolve_after`) are in its definition file.

use super::{ListSourceConfig, build_enabled, known_feed_names};
use crate::config::{Config, CronSchedule};
use crate::finding::SourceId;
use crate::sources::BuiltSource;
use crate::sources::registration::{
    Registration, SourceTableError, check_secrets, check_urls, tables,
};

/// The [`Registration`] of the list feeds.
pub(crate) struct ListFeeds;

impl Registration for ListFeeds {
    fn single(&self) -> Option<SourceId> {
        None
    }

    fn names(&self, cfg: &Config) -> Vec<String> {
        known_feed_names(cfg)
    }

    fn configure(
        &self,
        text: &str,
        cfg: &mut Config,
        singles: &[&str],
    ) -> Result<(), SourceTableError> {
        // The feed files first: a broken one is named by its file.
        super::validate(cfg).map_err(|e| SourceTableError::Kind(Box::new(e)))?;
        for (name, t) in tables::<ListSourceConfig>(text, &|n| !singles.contains(&n))? {
            let keyed = t.auth_key.is_some() || t.auth_key_env.is_some();
            let mut urls = Vec::new();
            for (k, v) in [("url", &t.url), ("base_url", &t.base_url)] {
                if let Some(v) = v {
                    urls.push((k, v.as_str(), keyed));
                }
            }
            check_urls(text, &name, &urls, t.allow_plain_http)?;
            if let Some(k) = &t.auth_key {
                check_secrets(text, &name, &[("auth_key", k)])?;
            }
            cfg.sources.set(&name, t);
        }
        Ok(())
    }

    fn build_enabled(&self, cfg: &Config) -> Vec<BuiltSource> {
        build_enabled(cfg)
    }

    fn configured_schedule(&self, cfg: &Config, name: &str) -> Option<CronSchedule> {
        cfg.sources
            .get::<ListSourceConfig>(name)
            .and_then(|c| c.schedule.clone())
    }

    fn inline_secrets(&self, cfg: &Config) -> Vec<String> {
        cfg.sources
            .all::<ListSourceConfig>()
            .filter(|(_, c)| c.auth_key.is_some())
            .map(|(name, _)| format!("sources.{name}.auth_key"))
            .collect()
    }
}

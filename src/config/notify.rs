//! `[notify]` and `[[contacts]]`: who owns which of our addresses and how they are told
//! (`outwatch notify`, `docs/notify.md`). Values are parsed while the TOML is read;
//! [`validate`] checks what serde cannot (mail addresses, names, templates) and names the
//! contact's `[[contacts]]` line on error.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Asn, Config, CronSchedule, DomainName, HumanDuration, Invalid, Problem, line_hint, mail_address,
};
use crate::finding::Severity;

/// `[notify]`: the notification run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// When the daemon runs `notify --send` (cron, seconds first); hourly by default.
    #[serde(default = "default_schedule")]
    pub schedule: CronSchedule,
    /// Sender of the notifications; `[digest] from` when absent.
    pub from: Option<String>,
    /// Where replies go (e.g. the abuse desk's ticket system).
    pub reply_to: Option<String>,
    /// CSV of contacts (`name,emails,prefixes,asns,domains`), relative to the config file;
    /// re-read when it changes.
    pub contacts_file: Option<PathBuf>,
    /// At most this many mails per run; a run that would send more stops there and says so.
    #[serde(default = "default_cap")]
    pub max_mails_per_run: usize,
    /// At least this long between two mails to one recipient address.
    #[serde(default = "default_min_interval")]
    pub min_interval: HumanDuration,
    /// Pause between two mails of a run (SMTP pacing).
    #[serde(default = "default_pace")]
    pub pace: HumanDuration,
    /// Folder of templates overriding the built-in `notify.txt`, `notify.html`,
    /// `notify_subject.txt` (relative to the config file).
    pub templates: Option<PathBuf>,
    /// The `List-Id` of the mails (`Name <id.domain>`); `outwatch notifications
    /// <notify.DOMAIN>` on the sender's domain by default.
    pub list_id: Option<String>,
    /// For an address no contact owns: the abuse contact the RIPE database names for it
    /// (RIPEstat's `abuse-contact-finder`, at `[scope] ripestat_url`), cached per address.
    #[serde(default)]
    pub ripe_abuse_c: bool,
    /// How long a looked-up abuse contact (or its absence) is kept before it is asked again.
    #[serde(default = "default_ripe_cache")]
    pub ripe_cache: HumanDuration,
    /// At most this many addresses looked up per run; the rest wait for the next runs.
    #[serde(default = "default_ripe_lookups")]
    pub ripe_max_lookups: usize,
    /// The policy of contacts that set none of their own (and of every `contacts_file` row,
    /// and of the RIPE abuse contacts).
    #[serde(default)]
    pub defaults: PolicyConfig,
}

fn default_schedule() -> CronSchedule {
    CronSchedule::from_str("0 0 * * * *").expect("valid default")
}
fn default_cap() -> usize {
    100
}
fn default_min_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_pace() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_ripe_cache() -> HumanDuration {
    HumanDuration(Duration::from_secs(7 * 86400))
}
fn default_ripe_lookups() -> usize {
    50
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            schedule: default_schedule(),
            from: None,
            reply_to: None,
            contacts_file: None,
            max_mails_per_run: default_cap(),
            min_interval: default_min_interval(),
            pace: default_pace(),
            templates: None,
            list_id: None,
            ripe_abuse_c: false,
            ripe_cache: default_ripe_cache(),
            ripe_max_lookups: default_ripe_lookups(),
            defaults: PolicyConfig::default(),
        }
    }
}

/// How often a contact may get a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// At every run that has something for it.
    Immediately,
    /// At most once a day.
    Daily,
    /// At most once a week.
    Weekly,
}

impl Interval {
    /// The least time between two mails to a contact.
    pub fn duration(self) -> chrono::Duration {
        match self {
            Interval::Immediately => chrono::Duration::zero(),
            Interval::Daily => chrono::Duration::days(1),
            Interval::Weekly => chrono::Duration::days(7),
        }
    }
}

/// Which findings a contact gets and how; every field optional (a contact's own value, else
/// `[notify.defaults]`, else the built-in default).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Only findings of these sources (all when absent).
    pub sources: Option<Vec<String>>,
    /// Only findings of these feeds (report types, list names).
    pub feeds: Option<Vec<String>>,
    /// Only these classifications: a taxonomy (`vulnerable`) or a type (`c2-server`).
    pub classifications: Option<Vec<String>>,
    /// Only findings at least this severe (default `low`).
    pub min_severity: Option<Severity>,
    /// Template name: the files `<template>.txt`, `<template>.html`,
    /// `<template>_subject.txt` (default `notify`).
    pub template: Option<String>,
    /// Language: `<template>.<language>.txt` etc. are preferred when present (default `en`).
    pub language: Option<String>,
    /// How often the contact may get a mail (default `immediately`).
    pub interval: Option<Interval>,
    /// Send a finding again after this long while it stays open (default: never).
    pub reminder: Option<HumanDuration>,
}

impl PolicyConfig {
    /// `self` where set, else `base`.
    pub fn over(&self, base: &PolicyConfig) -> PolicyConfig {
        PolicyConfig {
            sources: self.sources.clone().or_else(|| base.sources.clone()),
            feeds: self.feeds.clone().or_else(|| base.feeds.clone()),
            classifications: self
                .classifications
                .clone()
                .or_else(|| base.classifications.clone()),
            min_severity: self.min_severity.or(base.min_severity),
            template: self.template.clone().or_else(|| base.template.clone()),
            language: self.language.clone().or_else(|| base.language.clone()),
            interval: self.interval.or(base.interval),
            reminder: self.reminder.or(base.reminder),
        }
    }
}

/// `[[contacts]]`: one owner of some of our addresses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    pub name: String,
    pub emails: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    #[serde(default)]
    pub asns: Vec<Asn>,
    #[serde(default)]
    pub domains: Vec<DomainName>,
    pub sources: Option<Vec<String>>,
    pub feeds: Option<Vec<String>>,
    pub classifications: Option<Vec<String>>,
    pub min_severity: Option<Severity>,
    pub template: Option<String>,
    pub language: Option<String>,
    pub interval: Option<Interval>,
    pub reminder: Option<HumanDuration>,
}

impl ContactConfig {
    /// The contact's own policy values.
    pub fn policy(&self) -> PolicyConfig {
        PolicyConfig {
            sources: self.sources.clone(),
            feeds: self.feeds.clone(),
            classifications: self.classifications.clone(),
            min_severity: self.min_severity,
            template: self.template.clone(),
            language: self.language.clone(),
            interval: self.interval,
            reminder: self.reminder,
        }
    }
}

/// A template or language name: letters, digits, `-`, `_` (it becomes part of a file name).
pub(crate) fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A template or language name that cannot name files; `key` the table it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "`{key}.template` = `{name}`: a template name is letters, digits, `-` and `_` (it names \
         the files <template>.txt, .html and _subject.txt)"
    )]
    Template { key: &'static str, name: String },
    #[error("`{key}.language` = `{name}`: write a language tag such as \"en\" or \"de\"")]
    Language { key: &'static str, name: String },
}

/// What is wrong with one `[[contacts]]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactProblem {
    #[error("`name` is empty; every contact needs a name")]
    NoName,
    #[error("the name is used twice; contact names must be unique")]
    NameTwice,
    #[error("`emails` is empty; name at least one address")]
    NoEmails,
    #[error("`emails`: `{address}` is not a mail address ({why})")]
    Email {
        address: String,
        why: super::MailAddressError,
    },
    #[error("it owns nothing: give `prefixes`, `asns` or `domains` to route findings to it")]
    OwnsNothing,
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// What is wrong with `[notify]` or `[[contacts]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyConfigError {
    #[error("`{key}` = `{address}` is not a mail address ({why})")]
    Address {
        key: &'static str,
        address: String,
        why: super::MailAddressError,
    },
    #[error("`notify.max_mails_per_run` = 0 would never send anything; give at least 1")]
    NoMails,
    #[error(
        "`notify.ripe_max_lookups` = 0 would never look an address up; give at least 1 or set \
         `ripe_abuse_c = false`"
    )]
    NoRipeLookups,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `who`: `contact `name`` or `contact #n`.
    #[error("`[[contacts]]` {who}: {problem}")]
    Contact {
        who: String,
        problem: ContactProblem,
    },
}

fn check_policy(p: &PolicyConfig, key: &'static str) -> Result<(), PolicyError> {
    if let Some(t) = &p.template
        && !safe_name(t)
    {
        return Err(PolicyError::Template {
            key,
            name: t.clone(),
        });
    }
    if let Some(l) = &p.language
        && !safe_name(l)
    {
        return Err(PolicyError::Language {
            key,
            name: l.clone(),
        });
    }
    Ok(())
}

/// Checks `[notify]` and every `[[contacts]]`: names present and unique, at least one mail
/// address each (all valid), something owned, template and language names usable.
pub(crate) fn validate(cfg: &Config, text: &str) -> Result<(), Invalid> {
    let located = |at: String, e: NotifyConfigError| Invalid {
        at,
        problem: Problem::Notify(e),
    };
    if let Some(n) = &cfg.notify {
        for (key, v) in [("notify.from", &n.from), ("notify.reply_to", &n.reply_to)] {
            if let Some(a) = v
                && let Err(why) = mail_address(a)
            {
                return Err(located(
                    line_hint(text, &format!("\"{a}\"")),
                    NotifyConfigError::Address {
                        key,
                        address: a.clone(),
                        why,
                    },
                ));
            }
        }
        if n.max_mails_per_run == 0 {
            return Err(located(
                line_hint(text, "max_mails_per_run"),
                NotifyConfigError::NoMails,
            ));
        }
        if n.ripe_abuse_c && n.ripe_max_lookups == 0 {
            return Err(located(
                line_hint(text, "ripe_max_lookups"),
                NotifyConfigError::NoRipeLookups,
            ));
        }
        check_policy(&n.defaults, "notify.defaults")
            .map_err(|e| located(line_hint(text, "[notify.defaults]"), e.into()))?;
    }
    let headers: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[contacts]]"))
        .map(|(i, _)| i + 1)
        .collect();
    let mut names = std::collections::HashSet::new();
    for (i, c) in cfg.contacts.iter().enumerate() {
        let at = headers
            .get(i)
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        let who = if c.name.trim().is_empty() {
            format!("contact #{}", i + 1)
        } else {
            format!("contact `{}`", c.name)
        };
        contact_problem(c, &mut names)
            .map_err(|problem| located(at, NotifyConfigError::Contact { who, problem }))?;
    }
    Ok(())
}

/// What is wrong with one contact, if anything; `names` collects the names seen so far.
fn contact_problem(
    c: &ContactConfig,
    names: &mut std::collections::HashSet<String>,
) -> Result<(), ContactProblem> {
    if c.name.trim().is_empty() {
        return Err(ContactProblem::NoName);
    }
    if !names.insert(c.name.trim().to_string()) {
        return Err(ContactProblem::NameTwice);
    }
    if c.emails.is_empty() {
        return Err(ContactProblem::NoEmails);
    }
    for e in &c.emails {
        if let Err(why) = mail_address(e) {
            return Err(ContactProblem::Email {
                address: e.clone(),
                why,
            });
        }
    }
    if c.prefixes.is_empty() && c.asns.is_empty() && c.domains.is_empty() {
        return Err(ContactProblem::OwnsNothing);
    }
    check_policy(&c.policy(), "contacts")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!("[organisation]\nprefixes = [\"192.0.2.0/24\"]\n{extra}");
        Config::parse(
            &text,
            std::path::Path::new("x.toml"),
            &crate::config::NoSources,
        )
    }

    #[test]
    fn contacts_and_defaults_parse() {
        let c = parse(
            "[notify]\nfrom = \"abuse@example.net\"\ncontacts_file = \"c.csv\"\n\
             [notify.defaults]\nmin_severity = \"medium\"\ninterval = \"daily\"\n\
             [[contacts]]\nname = \"A\"\nemails = [\"a@example.org\"]\n\
             prefixes = [\"192.0.2.0/25\"]\nreminder = \"7d\"\n",
        )
        .unwrap();
        let n = c.notify.unwrap();
        assert_eq!(n.max_mails_per_run, 100);
        let p = c.contacts[0].policy().over(&n.defaults);
        assert_eq!(p.min_severity, Some(Severity::Medium));
        assert_eq!(p.interval, Some(Interval::Daily));
        assert_eq!(p.reminder.unwrap().0, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn ripe_abuse_c_keys_parse_and_are_checked() {
        let c = parse("[notify]\nripe_abuse_c = true\nripe_cache = \"2d\"\n").unwrap();
        let n = c.notify.unwrap();
        assert!(n.ripe_abuse_c);
        assert_eq!(n.ripe_cache.0, Duration::from_secs(2 * 86400));
        assert_eq!(n.ripe_max_lookups, 50);
        let e = parse("[notify]\nripe_abuse_c = true\nripe_max_lookups = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ripe_max_lookups") && e.contains("line 5"),
            "{e}"
        );
    }

    #[test]
    fn bad_contacts_name_their_line() {
        let e = parse(
            "[[contacts]]\nname = \"A\"\nemails = [\"a@example.org\"]\nasns = [1]\n\
             [[contacts]]\nname = \"B\"\nemails = [\"not an address\"]\nasns = [2]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 7:") && e.contains("contact `B`"), "{e}");
        let e = parse("[[contacts]]\nname = \"A\"\nemails = [\"a@example.org\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("owns nothing"), "{e}");
        let e = parse(
            "[[contacts]]\nname = \"A\"\nemails = [\"a@example.org\"]\nasns = [1]\n\
             template = \"../x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("template"), "{e}");
        let e = parse("[[contacts]]\nname = \"A\"\nemails = [\"a@x.org\"]\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
    }
}

//! Contacts: a name, mail addresses, what it owns (prefixes, ASNs, domains) and its policy.
//! They come from `[[contacts]]` in the config and from `[notify] contacts_file`, a CSV of
//! `name,emails,prefixes,asns,domains` for the hundreds of customers an ISP has. Config
//! contacts come first (they win a tie in routing). A bad row of the file is reported with its
//! line and skipped, never fatal; the file is read again when its modification time changes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ipnet::IpNet;

use crate::config::notify::{ContactConfig, Interval, PolicyConfig, safe_name};
use crate::config::{Asn, BadAsn, Config, MailAddressError, mail_address};
use crate::finding::{Finding, Severity, domain_name};

/// Most rows read from a contacts file; the rest are reported as one problem.
pub const MAX_ROWS: usize = 1_000_000;
/// Largest contacts file read (bytes).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Most values in one cell (addresses, prefixes, ...).
const MAX_VALUES: usize = 10_000;

/// A contact's resolved policy: which findings it gets and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub sources: Option<Vec<String>>,
    pub feeds: Option<Vec<String>>,
    pub classifications: Option<Vec<String>>,
    pub min_severity: Severity,
    pub template: String,
    pub language: String,
    pub interval: Interval,
    /// Send an open finding again after this long (`None`: never).
    pub reminder: Option<chrono::Duration>,
}

impl Policy {
    /// The policy a contact's own values, over `[notify.defaults]`, over the built-in defaults
    /// (everything from `low` up, template `notify`, language `en`, immediately, no reminder).
    pub fn resolve(own: &PolicyConfig, defaults: &PolicyConfig) -> Policy {
        let p = own.over(defaults);
        Policy {
            sources: p.sources,
            feeds: p.feeds,
            classifications: p.classifications,
            min_severity: p.min_severity.unwrap_or(Severity::Low),
            template: p.template.unwrap_or_else(|| "notify".into()),
            language: p.language.unwrap_or_else(|| "en".into()),
            interval: p.interval.unwrap_or(Interval::Immediately),
            reminder: p
                .reminder
                .map(|d| d.chrono())
                .filter(|d| *d > chrono::Duration::zero()),
        }
    }

    /// Whether a finding is one this contact wants (source, feed, classification, severity).
    pub fn wants(&self, f: &Finding) -> bool {
        let listed = |list: &Option<Vec<String>>, v: &[&str]| {
            list.as_ref().is_none_or(|l| {
                l.iter()
                    .any(|x| v.iter().any(|v| x.eq_ignore_ascii_case(v)))
            })
        };
        f.severity <= self.min_severity
            && listed(&self.sources, &[&f.source])
            && listed(&self.feeds, &[&f.feed])
            && listed(
                &self.classifications,
                &[&f.classification.taxonomy, &f.classification.kind],
            )
    }
}

/// Where a contact was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defined {
    /// The n-th `[[contacts]]` table (from 1).
    Config(usize),
    /// A line of the contacts file.
    File(usize),
    /// The RIPE database's abuse contact of some addresses (`[notify] ripe_abuse_c`).
    Ripe,
}

/// One owner of some of our addresses.
#[derive(Debug, Clone)]
pub struct Contact {
    pub name: String,
    /// Bare addresses (`noc@example.org`), at least one.
    pub emails: Vec<String>,
    pub prefixes: Vec<IpNet>,
    pub asns: Vec<u32>,
    /// Lower-case domain names; each covers its subdomains.
    pub domains: Vec<String>,
    pub policy: Policy,
    pub defined: Defined,
}

impl Contact {
    fn from_config(n: usize, c: &ContactConfig, defaults: &PolicyConfig) -> Contact {
        Contact {
            name: c.name.trim().to_string(),
            emails: c
                .emails
                .iter()
                .map(|e| mail_address(e).unwrap_or(e).to_string())
                .collect(),
            prefixes: c.prefixes.iter().map(IpNet::trunc).collect(),
            asns: c.asns.iter().map(|a| a.0).collect(),
            domains: c.domains.iter().map(|d| d.0.clone()).collect(),
            policy: Policy::resolve(&c.policy(), defaults),
            defined: Defined::Config(n),
        }
    }
}

/// A row of the contacts file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The values of a cell: separated by spaces, `;` or `,`; empty parts dropped.
fn values(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([' ', ';', ',', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A contacts-file row that is no contact (it is skipped and reported with its line); values
/// as written, clipped.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("{0} columns; expected name,emails,prefixes,asns,domains")]
    Columns(usize),
    #[error("the name is empty")]
    NoName,
    /// More values of one kind (`addresses`, `prefixes`...) than a cell may hold.
    #[error("more than {MAX_VALUES} {0}")]
    TooMany(&'static str),
    /// The address as written (clipped) and why it is none.
    #[error("`{0}` is not a mail address ({1})")]
    Address(String, MailAddressError),
    #[error("contact `{0}` has no mail address")]
    NoAddress(String),
    #[error("`{0}` is not a prefix (write 192.0.2.0/24)")]
    Prefix(String),
    #[error(transparent)]
    Asn(#[from] BadAsn),
    #[error("`{0}` is not a domain name")]
    Domain(String),
    #[error("contact `{0}` owns nothing (no prefix, ASN or domain)")]
    OwnsNothing(String),
}

/// A contacts file that cannot be read (its rows are not: a bad row is a [`RowError`]).
#[derive(Debug, thiserror::Error)]
pub enum ContactsFileError {
    #[error("cannot read the contacts file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the contacts file {} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error(
        "the contacts file {} is {len} bytes, more than the {MAX_FILE_BYTES} allowed",
        path.display()
    )]
    TooLarge { path: PathBuf, len: u64 },
}

/// One CSV row → a contact, or what is wrong with it.
fn row(rec: &csv::StringRecord, defaults: &Policy, line: usize) -> Result<Contact, RowError> {
    if rec.len() > 5 {
        return Err(RowError::Columns(rec.len()));
    }
    let cell = |i: usize| rec.get(i).unwrap_or("");
    let name = crate::text::clip(cell(0).trim(), 200);
    if name.is_empty() {
        return Err(RowError::NoName);
    }
    let count = |i: usize, what: &'static str| {
        if values(cell(i)).count() > MAX_VALUES {
            Err(RowError::TooMany(what))
        } else {
            Ok(())
        }
    };
    for (i, w) in [
        (1, "addresses"),
        (2, "prefixes"),
        (3, "ASNs"),
        (4, "domains"),
    ] {
        count(i, w)?;
    }
    let mut emails = Vec::new();
    for e in values(cell(1)) {
        let a = mail_address(e).map_err(|why| RowError::Address(crate::text::clip(e, 80), why))?;
        emails.push(a.to_ascii_lowercase());
    }
    if emails.is_empty() {
        return Err(RowError::NoAddress(name));
    }
    let mut prefixes = Vec::new();
    for p in values(cell(2)) {
        let net = p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| RowError::Prefix(crate::text::clip(p, 80)))?;
        prefixes.push(net.trunc());
    }
    let mut asns = Vec::new();
    for a in values(cell(3)) {
        asns.push(a.parse::<Asn>()?.0);
    }
    let mut domains = Vec::new();
    for d in values(cell(4)) {
        domains.push(domain_name(d).ok_or_else(|| RowError::Domain(crate::text::clip(d, 80)))?);
    }
    if prefixes.is_empty() && asns.is_empty() && domains.is_empty() {
        return Err(RowError::OwnsNothing(name));
    }
    Ok(Contact {
        name,
        emails,
        prefixes,
        asns,
        domains,
        policy: defaults.clone(),
        defined: Defined::File(line),
    })
}

/// Reads a contacts CSV: a header line `name,...` is optional, `#` starts a comment line.
/// Rows with a problem are skipped and returned with their line; the rest are read.
pub fn parse_csv(input: impl Read, defaults: &Policy) -> (Vec<Contact>, Vec<RowProblem>) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    loop {
        let line = rdr.position().line() as usize;
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line() as usize);
                problems.push(RowProblem {
                    line,
                    message: format!("unreadable row: {}", crate::text::clip(&e.to_string(), 200)),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = rec.position().map_or(line, |p| p.line() as usize);
        // A comment line (csv's own comment handling would miscount the lines).
        if rec.iter().all(str::is_empty) || rec.get(0).is_some_and(|c| c.starts_with('#')) {
            continue;
        }
        if std::mem::take(&mut first) && rec.get(0).is_some_and(|c| c.eq_ignore_ascii_case("name"))
        {
            continue;
        }
        if out.len() >= MAX_ROWS {
            problems.push(RowProblem {
                line,
                message: format!("more than {MAX_ROWS} contacts; the rest are not read"),
            });
            break;
        }
        match row(&rec, defaults, line) {
            Ok(c) => out.push(c),
            Err(e) => problems.push(RowProblem {
                line,
                message: e.to_string(),
            }),
        }
    }
    (out, problems)
}

/// All contacts of a config: `[[contacts]]` first, then the contacts file's rows. Keeps the
/// file's modification time so [`Contacts::reload_if_changed`] reads it again only after a
/// change.
#[derive(Debug, Clone, Default)]
pub struct Contacts {
    pub list: Vec<Contact>,
    /// The contacts file's skipped rows (and a duplicated name), with their lines.
    pub problems: Vec<RowProblem>,
    pub file: Option<PathBuf>,
    /// Addresses routed to a RIPE abuse contact of `list` (index), when no other contact owns
    /// their findings (`abuse_c::extend`).
    pub abuse_c: Vec<(std::net::IpAddr, usize)>,
    mtime: Option<SystemTime>,
    from_config: usize,
}

impl Contacts {
    /// Reads the contacts of `cfg`. An unreadable contacts file is an error (a run would
    /// otherwise tell nobody and look fine); bad rows are not.
    pub fn load(cfg: &Config) -> Result<Contacts, ContactsFileError> {
        let defaults = cfg
            .notify
            .as_ref()
            .map(|n| n.defaults.clone())
            .unwrap_or_default();
        let mut list: Vec<Contact> = cfg
            .contacts
            .iter()
            .enumerate()
            .map(|(i, c)| Contact::from_config(i + 1, c, &defaults))
            .collect();
        let from_config = list.len();
        let file = cfg
            .notify
            .as_ref()
            .and_then(|n| n.contacts_file.as_ref())
            .map(|p| cfg.resolve_path(p));
        let mut me = Contacts {
            list: Vec::new(),
            problems: Vec::new(),
            file,
            abuse_c: Vec::new(),
            mtime: None,
            from_config,
        };
        if let Some(path) = me.file.clone() {
            let policy = Policy::resolve(&PolicyConfig::default(), &defaults);
            let (rows, problems, mtime) = read_file(&path, &policy)?;
            list.extend(rows);
            me.problems = problems;
            me.mtime = mtime;
        }
        me.list = list;
        me.drop_duplicate_names();
        Ok(me)
    }

    /// Reads the contacts again when the contacts file changed since it was read (its
    /// modification time); returns whether it did.
    pub fn reload_if_changed(&mut self, cfg: &Config) -> Result<bool, ContactsFileError> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let now = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if now.is_some() && now == self.mtime {
            return Ok(false);
        }
        *self = Contacts::load(cfg)?;
        Ok(true)
    }

    /// A name defined twice: the first definition wins (config before file), the other is
    /// reported.
    fn drop_duplicate_names(&mut self) {
        let mut seen = std::collections::HashSet::with_capacity(self.list.len());
        let mut dropped = Vec::new();
        self.list.retain(|c| {
            if seen.insert(c.name.clone()) {
                true
            } else {
                if let Defined::File(line) = c.defined {
                    dropped.push(RowProblem {
                        line,
                        message: format!("contact `{}` is defined before; row skipped", c.name),
                    });
                }
                false
            }
        });
        self.problems.extend(dropped);
        self.problems.sort_by_key(|p| p.line);
    }

    /// How many contacts come from `[[contacts]]` (the rest from the file).
    pub fn from_config(&self) -> usize {
        self.from_config.min(self.list.len())
    }
}

/// A contacts file's contacts, skipped rows and modification time.
type FileRead = (Vec<Contact>, Vec<RowProblem>, Option<SystemTime>);

fn read_file(path: &Path, policy: &Policy) -> Result<FileRead, ContactsFileError> {
    let cannot = |source| ContactsFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(cannot)?;
    let meta = f.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(ContactsFileError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ContactsFileError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let (rows, problems) = parse_csv(std::io::BufReader::new(f.take(MAX_FILE_BYTES)), policy);
    Ok((rows, problems, meta.modified().ok()))
}

/// Whether `s` is usable as a template or language name (re-exported for the renderer).
pub fn usable_name(s: &str) -> bool {
    safe_name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Policy {
        Policy::resolve(&PolicyConfig::default(), &PolicyConfig::default())
    }

    #[test]
    fn rows_with_several_values_and_bad_rows_with_lines() {
        let csv = "name,emails,prefixes,asns,domains\n\
                   # a comment\n\
                   Uni,noc@uni.example;cert@uni.example,192.0.2.0/24 2001:db8::/32,AS64500,uni.example\n\
                   Broken,not-an-address,10.0.0.0/8,,\n\
                   \"Hosting, Inc\",\"abuse@host.example\",198.51.100.7,64501;64502,\n\
                   NoOwn,a@b.example,,,\n\
                   BadPrefix,a@b.example,300.1.2.3/8,,\n\
                   Wide,a@b.example,,,a.example,extra\n";
        let (c, p) = parse_csv(csv.as_bytes(), &defaults());
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].emails, ["noc@uni.example", "cert@uni.example"]);
        assert_eq!(c[0].prefixes.len(), 2);
        assert_eq!(c[0].asns, [64500]);
        assert_eq!(c[0].defined, Defined::File(3));
        assert_eq!(c[1].name, "Hosting, Inc");
        assert_eq!(c[1].prefixes[0].to_string(), "198.51.100.7/32");
        assert_eq!(c[1].asns, [64501, 64502]);
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, [4, 6, 7, 8], "{p:?}");
        assert!(p[0].message.contains("not-an-address"), "{}", p[0]);
        assert!(p[3].message.contains("columns"), "{}", p[3]);
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b"\xff\xfe,\x00\n"[..],
            b"\"unterminated,a@b.example,1.2.3.4\n",
            b",,,,\n,,,,,,,,\n",
            b"x,a@b.example;;;;,;;;;,;;,;\n",
        ] {
            let _ = parse_csv(input, &defaults());
        }
    }

    #[test]
    fn policy_filters_findings() {
        let own = PolicyConfig {
            sources: Some(vec!["shadowserver".into()]),
            classifications: Some(vec!["vulnerable".into()]),
            min_severity: Some(Severity::Medium),
            ..Default::default()
        };
        let p = Policy::resolve(&own, &PolicyConfig::default());
        let mut f = Finding::new(
            "shadowserver",
            "scan_dns",
            crate::finding::Classification::new("", "vulnerable-system", "open-dns"),
            Severity::Medium,
        );
        assert!(p.wants(&f));
        f.severity = Severity::Low;
        assert!(!p.wants(&f));
        f.severity = Severity::High;
        f.source = "hibp".into();
        assert!(!p.wants(&f));
    }

    #[test]
    fn file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.csv");
        std::fs::write(&file, "A,a@a.example,192.0.2.0/24\n").unwrap();
        let text = "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n[notify]\ncontacts_file = \"c.csv\"\n\
                    [[contacts]]\nname = \"A\"\nemails = [\"x@a.example\"]\nasns = [1]\n";
        let cfg_path = dir.path().join("o.toml");
        let cfg = Config::parse(text, &cfg_path, &crate::config::NoSources).unwrap();
        let mut c = Contacts::load(&cfg).unwrap();
        // The config's `A` wins; the file's `A` is reported.
        assert_eq!(c.list.len(), 1);
        assert_eq!(c.list[0].emails, ["x@a.example"]);
        assert_eq!(c.problems[0].line, 1);
        assert!(!c.reload_if_changed(&cfg).unwrap());
        std::fs::write(
            &file,
            "B,b@b.example,192.0.2.0/25\nC,c@c.example,,,c.example\n",
        )
        .unwrap();
        let t = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert!(c.reload_if_changed(&cfg).unwrap());
        assert_eq!(c.list.len(), 3);
        assert!(c.problems.is_empty());
        assert_eq!(c.from_config(), 1);
    }
}

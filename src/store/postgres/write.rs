//! Writing findings: a unit's findings in batches, each batch merged with its stored twins by
//! the life-cycle rule (`store::lifecycle`) and written by `COPY` into a staging table, then
//! merged into `findings` with one upsert. Everything happens inside the caller's transaction,
//! so a unit is all or nothing however many batches it takes.
//!
//! Memory is bounded by the batch ([`BATCH`] findings and their stored twins); which findings
//! a unit already wrote (a repeat in a later batch is folded with [`lifecycle::repeat`], not
//! merged as a new observation) is kept in a temporary table on the server, not in memory.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use postgres::Transaction;

use super::super::{FindingWriter, IngestStats, Result, StoreError, Write, lifecycle};
use super::pg;
use crate::finding::{Finding, FindingView, normalize_domain};

/// Findings written per round trip.
pub(super) const BATCH: usize = 5_000;

/// The columns of `findings`, in table order (what [`encode`] writes).
const COLUMNS: &str = "fingerprint, source, feed, status, severity, ip, network, asn, domain, \
                       domain_rev, email, email_rev, url, time_source, first_seen, last_seen, doc";

/// Creates the unit's temporary tables (dropped at commit or rollback).
pub(super) fn begin(tx: &mut Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "CREATE TEMP TABLE ow_stage (LIKE findings) ON COMMIT DROP;
         CREATE TEMP TABLE ow_seen (fingerprint text COLLATE \"C\" PRIMARY KEY) ON COMMIT DROP;",
    )
    .map_err(pg)
}

/// The bulk writer of one unit (or of a rewrite, under [`Write::Restore`]).
pub(super) struct Writer<'a, 't> {
    tx: &'a mut Transaction<'t>,
    write: Write,
    now: DateTime<Utc>,
    batch: Vec<Finding>,
    pub stats: IngestStats,
    /// Findings written in all.
    pub written: usize,
}

impl<'a, 't> Writer<'a, 't> {
    /// A writer in `tx`, whose temporary tables [`begin`] made.
    pub(super) fn new(tx: &'a mut Transaction<'t>, write: Write, now: DateTime<Utc>) -> Self {
        Writer {
            tx,
            write,
            now,
            batch: Vec::new(),
            stats: IngestStats::default(),
            written: 0,
        }
    }

    /// Takes one finding; writes a batch when it is full.
    pub(super) fn push(&mut self, f: Finding) -> Result<()> {
        self.batch.push(sealed(f)?);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is pending.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let out = match self.write {
            Write::Restore => last_of_each(batch),
            Write::Observe => self.observe(batch)?,
        };
        self.written += out.len();
        self.put(&out)?;
        if self.write == Write::Observe {
            self.tx
                .batch_execute(
                    "INSERT INTO ow_seen SELECT fingerprint FROM ow_stage ON CONFLICT DO NOTHING",
                )
                .map_err(pg)?;
        }
        self.tx.batch_execute("TRUNCATE ow_stage").map_err(pg)?;
        Ok(())
    }

    /// The batch merged with what is stored, by the life-cycle rule, one finding per
    /// fingerprint.
    fn observe(&mut self, batch: Vec<Finding>) -> Result<Vec<Finding>> {
        let fps: Vec<&str> = batch.iter().map(|f| f.fingerprint.as_str()).collect();
        let mut stored: HashMap<String, Finding> = HashMap::new();
        for row in self
            .tx
            .query(
                "SELECT doc::text FROM findings WHERE fingerprint = ANY($1) \
                 ORDER BY fingerprint FOR UPDATE",
                &[&fps],
            )
            .map_err(pg)?
        {
            let f = decode(row.get(0))?;
            stored.insert(f.fingerprint.clone(), f);
        }
        let seen: HashSet<String> = self
            .tx
            .query(
                "SELECT fingerprint FROM ow_seen WHERE fingerprint = ANY($1)",
                &[&fps],
            )
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(fps);
        let mut out: Vec<Option<Finding>> = Vec::with_capacity(batch.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for f in batch {
            if let Some(&i) = at.get(&f.fingerprint) {
                let first = out[i].take().expect("each slot holds its finding");
                out[i] = Some(lifecycle::repeat(first, f));
                self.stats.duplicates += 1;
                continue;
            }
            let next = match stored.remove(&f.fingerprint) {
                Some(cur) if seen.contains(&f.fingerprint) => {
                    self.stats.duplicates += 1;
                    lifecycle::repeat(cur, f)
                }
                Some(cur) => lifecycle::merge(cur, f, self.now, &mut self.stats),
                None => {
                    let mut f = f;
                    lifecycle::stamp_new(&mut f, self.now);
                    self.stats.new += 1;
                    f
                }
            };
            at.insert(next.fingerprint.clone(), out.len());
            out.push(Some(next));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// `COPY`s findings (one per fingerprint) into the staging table and merges them into
    /// `findings`, replacing stored twins.
    fn put(&mut self, findings: &[Finding]) -> Result<()> {
        let mut text = String::with_capacity(findings.len() * 512);
        for f in findings {
            encode(f, &mut text)?;
        }
        let mut w = self
            .tx
            .copy_in(&format!("COPY ow_stage ({COLUMNS}) FROM STDIN"))
            .map_err(pg)?;
        w.write_all(text.as_bytes()).map_err(StoreError::backend)?;
        w.finish().map_err(pg)?;
        let set: String = COLUMNS
            .split(", ")
            .skip(1)
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.tx
            .batch_execute(&format!(
                "INSERT INTO findings ({COLUMNS}) SELECT {COLUMNS} FROM ow_stage \
                 ON CONFLICT (fingerprint) DO UPDATE SET {set}"
            ))
            .map_err(pg)?;
        Ok(())
    }
}

impl FindingWriter for Writer<'_, '_> {
    fn view(&mut self, f: &FindingView<'_>) -> Result<()> {
        self.push(f.to_finding())
    }

    fn finding(&mut self, f: &Finding) -> Result<()> {
        self.push(f.clone())
    }
}

/// The last finding given for each fingerprint, in the order first given.
fn last_of_each(batch: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(batch.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for f in batch {
        match at.get(&f.fingerprint) {
            Some(&i) => out[i] = f,
            None => {
                at.insert(f.fingerprint.clone(), out.len());
                out.push(f);
            }
        }
    }
    out
}

/// The finding sealed (when it was not) with a well-formed fingerprint, else the error that
/// fails its unit.
pub(super) fn sealed(mut f: Finding) -> Result<Finding> {
    if f.fingerprint.is_empty() {
        f.seal();
    }
    let ok = f.fingerprint.len() == 32 && f.fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(StoreError::corrupt(
            "finding",
            format!(
                "bad fingerprint `{}`",
                crate::text::clip(&f.fingerprint, 40)
            ),
        ));
    }
    Ok(f)
}

/// A stored finding from its `doc`.
pub(super) fn decode(doc: &str) -> Result<Finding> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("finding (PostgreSQL `doc`)", e))
}

/// A domain's labels reversed: `www.example.org` → `org.example.www`.
pub(super) fn reversed(domain: &str) -> String {
    let d = normalize_domain(domain);
    let mut out = String::with_capacity(d.len());
    for (i, label) in d.rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(label);
    }
    out
}

/// Appends one line of `COPY ... FROM STDIN` text for `f` (the columns of [`COLUMNS`]).
fn encode(f: &Finding, out: &mut String) -> Result<()> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mail_domain = f
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| reversed(d));
    let doc = serde_json::to_string(f).map_err(|e| StoreError::corrupt("finding", e))?;
    let ip = f.ip.map(|a| a.to_string());
    let network = f.network.map(|n| n.to_string());
    let asn = f.asn.map(|a| a.to_string());
    let domain_rev = f.domain.as_deref().map(reversed);
    let time_source = f.time_source.map(time);
    let (first, last) = (time(f.first_seen), time(f.last_seen));
    let cols: [Option<&str>; 17] = [
        Some(&f.fingerprint),
        Some(&f.source),
        Some(&f.feed),
        Some(f.status.as_str()),
        Some(f.severity.as_str()),
        ip.as_deref(),
        network.as_deref(),
        asn.as_deref(),
        f.domain.as_deref(),
        domain_rev.as_deref(),
        f.email.as_deref(),
        mail_domain.as_deref(),
        f.url.as_deref(),
        time_source.as_deref(),
        Some(&first),
        Some(&last),
        Some(&doc),
    ];
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match c {
            None => out.push_str("\\N"),
            Some(s) => escape(s, out),
        }
    }
    out.push('\n');
    Ok(())
}

/// `s` in `COPY` text format. PostgreSQL text holds no NUL: one (possible in feed content)
/// becomes U+FFFD in the indexed columns; `doc` keeps it, escaped by JSON.
fn escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};

    #[test]
    fn domains_reverse_by_label() {
        assert_eq!(reversed("www.Example.org."), "org.example.www");
        assert_eq!(reversed("org"), "org");
    }

    #[test]
    fn copy_text_escapes_what_would_break_a_row() {
        let mut out = String::new();
        escape("a\tb\nc\\d\re\0f", &mut out);
        assert_eq!(out, "a\\tb\\nc\\\\d\\re\u{FFFD}f");
    }

    #[test]
    fn a_row_has_every_column_and_keeps_the_finding_whole() {
        let mut f = Finding::new(
            "test",
            "feed\twith tab",
            Classification::new("", "vulnerable-system", "open-service"),
            Severity::High,
        );
        f.email = Some("Alice@Mail.Example.org".into());
        f.set_extra("note", "line\nbreak \\ and \u{0}");
        f.seal();
        let mut row = String::new();
        encode(&f, &mut row).unwrap();
        assert!(row.ends_with('\n') && row.matches('\n').count() == 1);
        let cols: Vec<&str> = row.trim_end_matches('\n').split('\t').collect();
        assert_eq!(cols.len(), COLUMNS.split(", ").count());
        assert_eq!(cols[5], "\\N", "no address");
        assert_eq!(cols[11], "org.example.mail", "the mail domain reversed");
        // The doc column, unescaped as COPY would, is the finding.
        let doc = cols[16].replace("\\\\", "\\");
        assert_eq!(decode(&doc).unwrap(), f);
    }
}

//! The PostgreSQL implementation of [`Store`]: the shared store of several outwatch nodes.
//! Only this folder knows PostgreSQL (as only `sled_store*` knows sled).
//!
//! - **Tables** (`schema.rs`, versioned migrations applied at open): `findings` (the indexed
//!   fields as columns: an address as `inet` under a B-tree (equality and prefix ranges), a
//!   network as `cidr` under GiST `inet_ops` (containment), domains as reversed labels for
//!   suffix ranges; the whole finding in `rec`, sled's binary record),
//!   `runs` (the run log), `state` (remembered state, kept indicator sets among it).
//! - **A unit is one transaction** (`write.rs`): findings in batches, each merged with its
//!   stored twins by [`lifecycle`](super::lifecycle) and upserted by one statement per batch;
//!   then the state changes and the run entry; then commit. A reader that fails, or a node
//!   that dies, leaves nothing of the unit.
//! - **Streams are bounded**: queries run as a portal in a read transaction, fetched
//!   `PAGE` rows at a time.
//! - **Synchronous**: the blocking `postgres` client, one connection per call from a small
//!   pool (`pool.rs`). Callers reach the store through `store::bridge` (tokio's blocking pool),
//!   as the contract says; every call is also wrapped in `block_in_place` (`off_runtime`), so
//!   one made on a worker of the program's multi-threaded runtime works rather than panics.
//! - **Turns** ([`Store::try_turn`]): a session advisory lock per name and schema, on a
//!   connection of its own, released when the turn is dropped or the process dies.
//! - **TLS** (`tls.rs`): libpq's `sslmode` and `sslrootcert` taken out of the URL, rustls
//!   with verifiers for `require`, `verify-ca` and `verify-full`.
//! - **Passwords** never appear in messages: the target is described without it
//!   ([`describe`]); `password.rs` reads `.pgpass`-style files.

mod password;
mod pool;
mod schema;
mod tls;
mod write;

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use postgres::types::ToSql;

use super::{
    FetchRun, Findings, Flow, IngestStats, Query, QueryOptions, QueryTotals, RUN_LOG_DAYS,
    ReadError, Result, Store, StoreError, Unit, Write,
};
use crate::finding::{Finding, normalize_domain};
use crate::secret::Secret;
use pool::Pool;
pub use pool::quote_ident;
pub use schema::CURRENT as SCHEMA_VERSION;

/// Rows fetched per round trip of a streamed query.
const PAGE: i32 = 500;

/// Findings read and rewritten per transaction by `resolve_stale` and `modify`.
const REWRITE: usize = 1_000;

/// Where a PostgreSQL store lives.
#[derive(Debug, Clone)]
pub struct Target {
    /// A `postgres://` URL or a `key=value` connection string; a password in it is used but
    /// never shown.
    pub url: String,
    /// The password, when not in the URL (from `[store] url_env` or a password file).
    pub password: Option<Secret>,
    /// The schema to work in (its tables are created there); the server's `search_path`
    /// when `None`.
    pub schema: Option<String>,
    /// A `.pgpass`-style file to take the password from when neither the URL nor `password`
    /// gives one (else `$PGPASSFILE` or `~/.pgpass`, when present and owner-only).
    pub password_file: Option<std::path::PathBuf>,
}

impl Target {
    /// A target of a URL alone (tests, `migrate --to`).
    pub fn url(url: impl Into<String>) -> Target {
        Target {
            url: url.into(),
            password: None,
            schema: None,
            password_file: None,
        }
    }
}

/// A store in a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.pool.target)
            .finish()
    }
}

/// A PostgreSQL error as a store error.
fn pg(e: postgres::Error) -> StoreError {
    StoreError::Backend(Box::new(Failure::from(e)))
}

/// A PostgreSQL error whose message carries its causes (the client's own says only
/// "db error" or "error connecting to server"; the server's message and the refused connection
/// are in its sources), since people see only the message.
#[derive(Debug)]
pub struct Failure {
    text: String,
    cause: postgres::Error,
}

impl From<postgres::Error> for Failure {
    fn from(cause: postgres::Error) -> Self {
        let mut text = cause.to_string();
        let mut at = std::error::Error::source(&cause);
        while let Some(e) = at {
            let more = e.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            at = e.source();
        }
        Failure {
            text: crate::text::sanitize(&text).into_owned(),
            cause,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// An error of opening the store at `target`.
fn open_error(target: &str, e: postgres::Error) -> StoreError {
    refused(target, Failure::from(e))
}

/// The store at `target` cannot be used, for `why`.
fn refused(target: &str, why: impl Into<super::Cause>) -> StoreError {
    StoreError::Database {
        target: target.to_string(),
        cause: why.into(),
    }
}

/// A parsed connection target, how to connect (TLS, `tls.rs`), and how errors name it (never
/// with the password).
pub fn config(target: &Target) -> Result<(postgres::Config, tls::Connector, String)> {
    let url_error = |why| refused("the PostgreSQL URL of [store]", why);
    let (url, tls) = tls::split(&target.url).map_err(url_error)?;
    // The parser's errors quote no part of the URL (which may hold the password).
    let mut c: postgres::Config = url
        .parse()
        .map_err(|e| refused("the PostgreSQL URL of [store]", Failure::from(e)))?;
    let described = describe(&c, target.schema.as_deref());
    if let Some(p) = &target.password {
        c.password(p.expose());
    } else if c.get_password().is_none()
        && let Some(p) = password::lookup(&c, target.password_file.as_deref())
            .map_err(|why| refused(&described, why))?
    {
        c.password(p.expose());
    }
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(std::time::Duration::from_secs(10));
    }
    if c.get_application_name().is_none() {
        c.application_name("outwatch");
    }
    let hosts = c.get_hosts();
    let unix_only = !hosts.is_empty()
        && hosts
            .iter()
            .all(|h| matches!(h, postgres::config::Host::Unix(_)));
    let (mode, connector) = tls
        .connector(unix_only)
        .map_err(|why| refused(&described, why))?;
    c.ssl_mode(mode);
    Ok((c, connector, described))
}

/// Checks `target` without connecting (the URL parses, a password file is usable); returns
/// where it points, for people.
pub fn check(target: &Target) -> Result<String> {
    config(target).map(|(_, _, described)| described)
}

/// Where `target` points, for people (no password); the URL unparsed when it does not parse.
pub fn describe_target(target: &Target) -> String {
    let url = tls::split(&target.url).map(|(url, _)| url);
    match url.map(|u| u.parse::<postgres::Config>()) {
        Ok(Ok(c)) => describe(&c, target.schema.as_deref()),
        _ => "PostgreSQL (a URL that does not parse)".into(),
    }
}

/// `postgres://user@host:port/db` (schema `s`), without the password.
pub fn describe(c: &postgres::Config, schema: Option<&str>) -> String {
    use postgres::config::Host;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let mut s = format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    );
    if let Some(schema) = schema {
        s.push_str(&format!(" (schema {schema})"));
    }
    crate::text::sanitize(&s).into_owned()
}

impl PgStore {
    /// Connects, creates the schema when asked for one that is missing, and brings the tables
    /// up to this build's version (refusing a newer one).
    pub fn open(target: &Target) -> Result<PgStore> {
        off_runtime(|| Self::open_here(target, true))
    }

    /// [`PgStore::open`] of a store that exists: a database (or schema) without outwatch's
    /// tables is refused rather than set up (read commands never create a store).
    pub fn open_existing(target: &Target) -> Result<PgStore> {
        off_runtime(|| Self::open_here(target, false))
    }

    fn open_here(target: &Target, create: bool) -> Result<PgStore> {
        let (config, tls, described) = config(target)?;
        let pool = Pool::new(config, tls, target.schema.clone(), described.clone());
        {
            let mut c = pool.get()?;
            if !create {
                let there: bool = c
                    .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
                    .map_err(|e| open_error(&described, e))?
                    .get(0);
                if !there {
                    return Err(refused(
                        &described,
                        "no outwatch store there yet: nothing was fetched or imported into it. \
                         Run `outwatch fetch` (or `outwatch import ...`), or check [store] url \
                         and schema",
                    ));
                }
            }
            if let Some(s) = &target.schema {
                c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)))
                    .map_err(|e| open_error(&described, e))?;
            }
            schema::migrate(&mut c, &described)?;
        }
        Ok(PgStore { pool })
    }

    /// Where the store is, for people (no password).
    pub fn target(&self) -> &str {
        &self.pool.target
    }

    /// Streams the rows of `sql` to `each`, [`PAGE`] at a
    /// time; `each` stops the walk with `Break`.
    fn stream(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        each: &mut dyn FnMut(&postgres::Row) -> Result<ControlFlow<()>>,
    ) -> Result<bool> {
        let mut c = self.pool.get()?;
        let mut tx = c.build_transaction().read_only(true).start().map_err(pg)?;
        let portal = tx.bind(sql, params).map_err(pg)?;
        loop {
            let rows = tx.query_portal(&portal, PAGE).map_err(pg)?;
            if rows.is_empty() {
                return Ok(false);
            }
            for row in &rows {
                if each(row)?.is_break() {
                    return Ok(true);
                }
            }
            if rows.len() < PAGE as usize {
                return Ok(false);
            }
        }
    }

    /// Reads the findings `select` picks (`SELECT rec ...`), a batch at a time, lets
    /// `change` rewrite them, and writes back those it changed, one transaction per batch;
    /// `select` takes the batch size as its last parameter. Returns how many were written.
    fn rewrite(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        once: bool,
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let mut c = self.pool.get()?;
        let mut n = 0;
        loop {
            let mut tx = c.transaction().map_err(pg)?;
            let rows = tx.query(sql, params).map_err(pg)?;
            let got = rows.len();
            let mut w = write::Writer::new(&mut tx, Write::Restore, Utc::now());
            for row in rows {
                let mut f = write::decode(row.get(0))?;
                if change(&mut f) {
                    w.push(f)?;
                }
            }
            w.flush()?;
            let written = w.written;
            tx.commit().map_err(pg)?;
            n += written;
            if once || got < REWRITE || written == 0 {
                return Ok(n);
            }
        }
    }
}

/// How long [`PgStore::modify_chunk`] waits for findings another transaction holds.
const MODIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl PgStore {
    /// [`Store::modify`] of at most [`REWRITE`] findings. It takes only the rows nobody else
    /// holds (`SKIP LOCKED`) and comes back for the others after a short wait, so it never
    /// waits holding rows: a unit another node is writing (which locks its findings batch by
    /// batch until it commits) and the digest marking them reported cannot deadlock.
    fn modify_chunk(
        &self,
        chunk: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let mut left: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let (mut n, mut pause) = (0, std::time::Duration::from_millis(20));
        let deadline = std::time::Instant::now() + MODIFY_WAIT;
        loop {
            let mut got = std::collections::HashSet::new();
            n += self.rewrite(
                "SELECT rec FROM findings WHERE fingerprint = ANY($1) \
                 ORDER BY fingerprint FOR UPDATE SKIP LOCKED",
                &[&left],
                true,
                &mut |f: &mut Finding| {
                    got.insert(f.fingerprint.clone());
                    change(f)
                },
            )?;
            left.retain(|fp| !got.contains(*fp));
            if left.is_empty() {
                return Ok(n);
            }
            // Skipped: held by another transaction, or not stored (unknown: skipped for good).
            let held: std::collections::HashSet<String> = self
                .pool
                .get()?
                .query(
                    "SELECT fingerprint FROM findings WHERE fingerprint = ANY($1)",
                    &[&left],
                )
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            left.retain(|fp| held.contains(*fp));
            if left.is_empty() {
                return Ok(n);
            }
            if std::time::Instant::now() > deadline {
                return Err(StoreError::backend(format!(
                    "{} finding(s) stayed locked by another writer for {} s",
                    left.len(),
                    MODIFY_WAIT.as_secs()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
    }
}

/// The `WHERE` condition of a query and its parameters (from `$1`).
fn condition(q: &Query) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    match q {
        Query::Ip(a) => (
            "(ip = $1::text::inet OR network >>= $1::text::inet)".into(),
            vec![Box::new(a.to_string())],
        ),
        Query::Net(n) => (
            "(ip <<= $1::text::cidr OR network && $1::text::cidr)".into(),
            vec![Box::new(n.trunc().to_string())],
        ),
        Query::Domain(d) => {
            let d = normalize_domain(d);
            if d.is_empty() {
                return ("false".into(), vec![]);
            }
            let rev = write::reversed(&d);
            let (sub, end) = (format!("{rev}."), format!("{rev}/"));
            (
                // Byte order (`C`) whatever the database's collation: `.` sorts right
                // before `/`, so `rev.` up to `rev/` is exactly the subdomains.
                "(domain_rev = $1 OR (domain_rev >= $2 COLLATE \"C\" AND domain_rev < $3 COLLATE \"C\") \
                  OR email_rev = $1 OR (email_rev >= $2 COLLATE \"C\" AND email_rev < $3 COLLATE \"C\"))"
                    .into(),
                vec![Box::new(rev), Box::new(sub), Box::new(end)],
            )
        }
        Query::Email(e) => (
            "email = $1".into(),
            vec![Box::new(e.trim().to_ascii_lowercase())],
        ),
        Query::Asn(a) => (
            "(asn = $1 AND ip IS NULL AND network IS NULL AND domain IS NULL AND email IS NULL)"
                .into(),
            vec![Box::new(i64::from(*a))],
        ),
    }
}

/// State changes applied in a transaction.
fn apply_state(tx: &mut postgres::Transaction<'_>, state: &[super::StateChange]) -> Result<()> {
    for (k, v) in state {
        put_state(tx, k, v.as_deref())?;
    }
    Ok(())
}

fn put_state(c: &mut impl postgres::GenericClient, key: &str, value: Option<&[u8]>) -> Result<()> {
    match value {
        Some(v) => c.execute(
            "INSERT INTO state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &v],
        ),
        None => c.execute("DELETE FROM state WHERE key = $1", &[&key]),
    }
    .map_err(pg)?;
    Ok(())
}

fn record(c: &mut impl postgres::GenericClient, run: &FetchRun) -> Result<()> {
    let doc = serde_json::to_string(run).map_err(|e| StoreError::corrupt("run entry", e))?;
    c.execute(
        "INSERT INTO runs (started, source, doc) VALUES ($1, $2, $3::text::json) \
         ON CONFLICT (started, source) DO UPDATE SET doc = EXCLUDED.doc",
        &[&run.started, &run.source, &doc],
    )
    .map_err(pg)?;
    let cutoff = run.started - chrono::Duration::days(RUN_LOG_DAYS);
    c.execute("DELETE FROM runs WHERE started < $1", &[&cutoff])
        .map_err(pg)?;
    Ok(())
}

/// The store's work done directly on this thread (see [`off_runtime`]).
struct Direct<'a>(&'a PgStore);

impl std::ops::Deref for Direct<'_> {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        self.0
    }
}

/// Runs blocking client work. On the blocking pool (where `store::bridge` puts store calls)
/// and outside any runtime it simply runs; called by mistake on a worker thread of the
/// multi-threaded runtime (the program's), it first hands that worker's other tasks away
/// (`block_in_place`), so the client's own runtime can block here instead of panicking.
fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

impl Store for PgStore {
    fn ingest_unit(&self, unit: Unit<'_>) -> Result<IngestStats> {
        off_runtime(|| Direct(self).ingest_unit(unit))
    }

    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        off_runtime(|| Direct(self).resolve_stale(source, feed, cutoff, now))
    }

    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        off_runtime(|| Direct(self).open_and_stale(source, cutoff))
    }

    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        off_runtime(|| Direct(self).modify(fingerprints, change))
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        off_runtime(|| Direct(self).get(fingerprint))
    }

    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        off_runtime(|| Direct(self).query_each(q, opts, f))
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        off_runtime(|| Direct(self).for_each(f))
    }

    fn count(&self) -> Result<usize> {
        off_runtime(|| Direct(self).count())
    }

    fn size_on_disk(&self) -> Result<Option<u64>> {
        off_runtime(|| Direct(self).size_on_disk())
    }

    fn record_run(&self, run: &FetchRun) -> Result<()> {
        off_runtime(|| Direct(self).record_run(run))
    }

    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>> {
        off_runtime(|| Direct(self).runs(source, limit))
    }

    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        off_runtime(|| Direct(self).state_get(key))
    }

    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        off_runtime(|| Direct(self).state_put(key, value))
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        off_runtime(|| Direct(self).state_scan(prefix))
    }

    fn state_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        off_runtime(|| Direct(self).state_each(prefix, each))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn try_turn(&self, name: &str) -> Result<Option<super::Turn>> {
        off_runtime(|| {
            // A session lock on a connection of its own: held while the work runs, released
            // when the turn is dropped or the process dies (its connection goes).
            let mut c = self.pool.dedicated()?;
            let got: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))",
                    &[&TURN_CLASS, &name],
                )
                .map_err(pg)?
                .get(0);
            Ok(got.then(|| super::Turn::held(Box::new(pool::Held(Some(c))))))
        })
    }
}

/// The first key of outwatch's advisory locks (the second is the hash of the turn's name).
const TURN_CLASS: i32 = 0x6f77_7475; // "owtu"

impl Store for Direct<'_> {
    fn ingest_unit(&self, unit: Unit<'_>) -> Result<IngestStats> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction().map_err(pg)?;
        let mut w = write::Writer::new(&mut tx, unit.write, unit.now);
        match unit.findings {
            Findings::Owned(v) => {
                for f in v {
                    w.push(f)?;
                }
            }
            // Both kinds of reading are one transaction: what the reader handed is written as
            // it comes and becomes visible only at commit.
            Findings::Streamed(read, _) => read(&mut w).map_err(|e| match e {
                ReadError::Store(e) => *e,
                unread => StoreError::Unread(unread),
            })?,
        }
        w.flush()?;
        let stats = w.stats;
        apply_state(&mut tx, &unit.state)?;
        if let Some(make) = unit.run {
            record(&mut tx, &make(&stats))?;
        }
        tx.commit().map_err(pg)?;
        Ok(stats)
    }

    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let limit = REWRITE as i64;
        self.rewrite(
            "SELECT rec FROM findings WHERE source = $1 \
             AND ($2::text IS NULL OR feed = $2) AND status <> 'resolved' AND last_seen < $3 \
             ORDER BY fingerprint LIMIT $4 FOR UPDATE",
            &[&source, &feed, &cutoff, &limit],
            false,
            &mut |f| {
                f.status = crate::finding::Status::Resolved;
                f.push_history(now, "resolved");
                true
            },
        )
    }

    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        let row = self
            .pool
            .get()?
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE last_seen < $2) FROM findings \
                 WHERE source = $1 AND status <> 'resolved'",
                &[&source, &cutoff],
            )
            .map_err(pg)?;
        let (open, stale): (i64, i64) = (row.get(0), row.get(1));
        Ok((open as usize, stale as usize))
    }

    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let mut n = 0;
        for chunk in fingerprints.chunks(REWRITE) {
            n += self.modify_chunk(chunk, change)?;
        }
        Ok(n)
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT rec FROM findings WHERE fingerprint = $1",
                &[&fingerprint],
            )
            .map_err(pg)?;
        rows.first().map(|r| write::decode(r.get(0))).transpose()
    }

    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        let (mut cond, mut params) = condition(q);
        if !opts.include_resolved {
            cond.push_str(" AND status <> 'resolved'");
        }
        if let Some(since) = opts.since {
            params.push(Box::new(since));
            cond.push_str(&format!(" AND last_seen >= ${}", params.len()));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let mut totals = QueryTotals::default();
        totals.stopped = self.stream(
            &format!("SELECT rec FROM findings WHERE {cond}"),
            &refs,
            &mut |row| {
                totals.handed += 1;
                f(write::decode(row.get(0))?)
            },
        )?;
        Ok(totals)
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        self.stream(
            "SELECT rec FROM findings ORDER BY fingerprint",
            &[],
            &mut |row| {
                f(write::decode(row.get(0))?)?;
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(())
    }

    fn count(&self) -> Result<usize> {
        let n: i64 = self
            .pool
            .get()?
            .query_one("SELECT count(*) FROM findings", &[])
            .map_err(pg)?
            .get(0);
        Ok(n as usize)
    }

    fn size_on_disk(&self) -> Result<Option<u64>> {
        // The tables of our schema with their indexes and TOAST data.
        let n: Option<i64> = self
            .pool
            .get()?
            .query_one(
                "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
            .map_err(pg)?
            .get(0);
        Ok(n.and_then(|n| u64::try_from(n).ok()))
    }

    fn record_run(&self, run: &FetchRun) -> Result<()> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction().map_err(pg)?;
        record(&mut tx, run)?;
        tx.commit().map_err(pg)
    }

    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool
            .get()?
            .query(
                "SELECT doc::text FROM runs WHERE ($1::text IS NULL OR source = $1) \
                 ORDER BY started DESC, source DESC LIMIT $2",
                &[&source, &limit],
            )
            .map_err(pg)?
            .iter()
            .map(|r| {
                serde_json::from_str(r.get(0))
                    .map_err(|e| StoreError::corrupt("run entry (PostgreSQL `runs`)", e))
            })
            .collect()
    }

    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self
            .pool
            .get()?
            .query("SELECT value FROM state WHERE key = $1", &[&key])
            .map_err(pg)?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        put_state(&mut *self.pool.get()?, key, value)
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .pool
            .get()?
            .query(
                "SELECT key, value FROM state WHERE key >= $1 COLLATE \"C\" AND starts_with(key, $1) \
                 ORDER BY key",
                &[&prefix],
            )
            .map_err(pg)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn state_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        // Streamed: kept indicator sets are large, one at a time in memory.
        self.stream(
            "SELECT key, value FROM state WHERE key >= $1 COLLATE \"C\" AND starts_with(key, $1) \
             ORDER BY key",
            &[&prefix],
            &mut |row| {
                each(row.get(0), row.get(1))?;
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // A committed transaction is durable (the server's `fsync`).
        Ok(())
    }
}

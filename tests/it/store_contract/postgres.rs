//! The PostgreSQL backend under the contract: each test gets a schema of its own
//! (`t_<random>`, the store's `search_path`), dropped when the test ends.
//!
//! The server is the one of the development and CI machines: `$OUTWATCH_TEST_PG`, else
//! `host=127.0.0.1 port=5432 user=postgres dbname=test` (trust auth). Where none answers the
//! tests skip with a message, except under `CI=true`, where a missing server fails them: CI
//! must run the PostgreSQL backend, not pass by skipping it.

use std::sync::Arc;

use outwatch::store::postgres::{PgStore, Target, quote_ident};

use super::Fresh;

/// The test server's connection string.
pub fn url() -> String {
    std::env::var("OUTWATCH_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// Drops its schema when dropped.
pub struct Schema {
    name: String,
}

impl Schema {
    /// A fresh schema, or `None` (with a message) when no server answers outside CI.
    pub fn new() -> Option<Schema> {
        // The blocking client may be used on a multi-threaded runtime's thread (async tests).
        tokio::task::block_in_place(Self::make)
    }

    fn make() -> Option<Schema> {
        let mut c = match postgres::Client::connect(&url(), postgres::NoTls) {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true: the PostgreSQL tests must run, but the server is absent: {e}")
            }
            Err(e) => {
                eprintln!("skipping a PostgreSQL test: no server at `{}`: {e}", url());
                return None;
            }
        };
        let name = format!("t_{:016x}", rand::random::<u64>());
        c.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&name)))
            .unwrap();
        Some(Schema { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `[store]` table of a config whose store is this schema, its files in `path`; the
    /// URL comes from `$OUTWATCH_TEST_STORE_URL` (set it to [`url`] for the binary).
    pub fn store_table(&self, path: &str) -> String {
        format!(
            "[store]\npath = \"{path}\"\nbackend = \"postgres\"\n\
             url_env = \"OUTWATCH_TEST_STORE_URL\"\nschema = \"{}\"\n",
            self.name
        )
    }

    /// Where a store in this schema lives.
    pub fn target(&self) -> Target {
        Target {
            schema: Some(self.name.clone()),
            ..Target::url(url())
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        tokio::task::block_in_place(|| self.drop_schema());
    }
}

impl Schema {
    fn drop_schema(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_ident(&self.name)
            ));
        }
    }
}

/// A fresh PostgreSQL store in a schema of its own, or `None` where there is no server.
pub fn fresh() -> Option<Fresh> {
    let schema = Schema::new()?;
    let store = PgStore::open(&schema.target()).unwrap();
    Some(Fresh::new(Arc::new(store), Some(Box::new(schema))))
}

// ---- what only the PostgreSQL backend has --------------------------------------------------

#[cfg(test)]
mod only_postgres {
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use chrono::Utc;
    use outwatch::finding::{Classification, Finding, Severity};
    use outwatch::store::postgres::{PgStore, SCHEMA_VERSION};
    use outwatch::store::{
        Findings, IngestOptions, Query, QueryOptions, ReadError, Reading, Store, StoreError, Unit,
        Write,
    };

    use super::Schema;

    fn row(i: u32) -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "scan_http",
            Classification::new("", "vulnerable-system", "open-http"),
            Severity::Low,
        );
        f.ip = Some(std::net::IpAddr::from(std::net::Ipv4Addr::from(
            0x0a00_0000 + i,
        )));
        f.seal();
        f
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let Some(schema) = Schema::new() else { return };
        drop(PgStore::open(&schema.target()).unwrap());
        // Opening again applies nothing and works.
        drop(PgStore::open(&schema.target()).unwrap());
        let mut c = postgres::Client::connect(&super::url(), postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "INSERT INTO {}.schema_version (version) VALUES ({})",
            outwatch::store::postgres::quote_ident(schema.name()),
            SCHEMA_VERSION + 1
        ))
        .unwrap();
        let e = PgStore::open(&schema.target()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("schema is version {}", SCHEMA_VERSION + 1))
                && e.contains("newer than this outwatch knows"),
            "{e}"
        );
    }

    /// A unit larger than a batch: all or nothing across batches, and a repeat in a later batch
    /// folded into the finding an earlier batch wrote.
    #[test]
    fn a_unit_of_several_batches_is_one_transaction() {
        let Some(schema) = Schema::new() else { return };
        let s = PgStore::open(&schema.target()).unwrap();
        let n = 12_000u32;
        let unit = |fail: bool| Unit {
            now: Utc::now(),
            write: Write::Observe,
            findings: Findings::Streamed(
                Box::new(move |w| {
                    for i in 0..n {
                        w.view(&row(i).view())?;
                    }
                    w.view(&row(3).view())?;
                    if fail {
                        return Err(ReadError::Unreadable("cut".into()));
                    }
                    Ok(())
                }),
                Reading::WholeOrNothing,
            ),
            state: vec![("k".into(), Some(b"v".to_vec()))],
            run: None,
        };
        assert!(matches!(
            s.ingest_unit(unit(true)),
            Err(StoreError::Unread(_))
        ));
        assert_eq!(s.count().unwrap(), 0);
        assert_eq!(s.state_get("k").unwrap(), None);
        let st = s.ingest_unit(unit(false)).unwrap();
        assert_eq!((st.new, st.duplicates, st.updated), (n as usize, 1, 0));
        assert_eq!(s.count().unwrap(), n as usize);
        assert_eq!(s.get(&row(3).fingerprint).unwrap().unwrap().times_seen, 1);
        let mut seen = 0;
        s.query_each(
            &"10.0.0.0/8".parse::<Query>().unwrap(),
            &QueryOptions::default(),
            &mut |_| {
                seen += 1;
                Ok(ControlFlow::Continue(()))
            },
        )
        .unwrap();
        assert_eq!(seen, n as usize, "streamed over many pages");
    }

    /// The blocking client works wherever the program may call it: on the blocking pool (the
    /// bridge), and even on a worker thread of the multi-threaded runtime.
    #[test]
    fn the_store_works_from_async_code() {
        let Some(schema) = Schema::new() else { return };
        let target = schema.target();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // Opened and used on a worker thread.
            let s: Arc<dyn Store> = Arc::new(PgStore::open(&target).unwrap());
            s.ingest(vec![row(1)], vec![], &IngestOptions { now: Utc::now() })
                .unwrap();
            // Through the bridge.
            let n = outwatch::store::blocking(&s, |s| s.count()).await.unwrap();
            assert_eq!(n, 1);
            // A query's callback that calls the store (another connection of the pool).
            let s2 = s.clone();
            let got = outwatch::store::blocking(&s, move |s| {
                let mut inner = 0;
                s.query_each(
                    &"10.0.0.1".parse::<Query>().unwrap(),
                    &QueryOptions::default(),
                    &mut |f| {
                        inner += usize::from(s2.get(&f.fingerprint)?.is_some());
                        Ok(ControlFlow::Continue(()))
                    },
                )?;
                Ok(inner)
            })
            .await
            .unwrap();
            assert_eq!(got, 1);
        });
    }

    /// A turn is held by one node at a time, per name and per schema, and goes with its
    /// holder.
    #[test]
    fn a_turn_is_held_by_one_node_at_a_time() {
        let Some(schema) = Schema::new() else { return };
        let Some(other_schema) = Schema::new() else {
            return;
        };
        let a = PgStore::open(&schema.target()).unwrap();
        let b = PgStore::open(&schema.target()).unwrap();
        let elsewhere = PgStore::open(&other_schema.target()).unwrap();
        let held = a.try_turn("source/shadowserver").unwrap();
        assert!(held.is_some());
        assert!(
            b.try_turn("source/shadowserver").unwrap().is_none(),
            "another node skips"
        );
        assert!(
            a.try_turn("source/shadowserver").unwrap().is_none(),
            "even itself"
        );
        assert!(b.try_turn("source/hibp").unwrap().is_some(), "per name");
        assert!(
            elsewhere.try_turn("source/shadowserver").unwrap().is_some(),
            "per store"
        );
        drop(held);
        assert!(b.try_turn("source/shadowserver").unwrap().is_some());
        // A node that dies: its session ends, the turn goes with it.
        let held = a.try_turn("digest").unwrap();
        drop(a);
        std::mem::forget(held);
        // (The forgotten guard's connection stays open in this process; a dead process's
        // would be closed by the server, which `pg_terminate_backend` stands for here.)
        let mut c = postgres::Client::connect(&super::url(), postgres::NoTls).unwrap();
        // Only this schema's `digest` turn: other tests' turns (other schemas) stay held.
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND classid = x'6f777475'::int::oid \
             AND objid = hashtext($1 || '/digest')::oid \
             AND pid <> pg_backend_pid() AND granted",
            &[&schema.name()],
        )
        .unwrap();
        let mut free = false;
        for _ in 0..50 {
            if b.try_turn("digest").unwrap().is_some() {
                free = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(free, "the turn of a node that is gone is free");
    }

    /// A node that dies mid-unit (its connection cut while the reader runs, after batches
    /// were written) leaves nothing of the unit; the next node's unit goes in whole.
    #[test]
    fn a_unit_cut_off_by_a_lost_connection_leaves_nothing() {
        let Some(schema) = Schema::new() else { return };
        let app = format!("outwatch_kill_{:x}", rand::random::<u32>());
        let dying = PgStore::open(&outwatch::store::postgres::Target {
            url: format!("{} application_name={app}", super::url()),
            ..schema.target()
        })
        .unwrap();
        let unit = |kill: bool| {
            let app = app.clone();
            Unit {
                now: Utc::now(),
                write: Write::Observe,
                findings: Findings::Streamed(
                    Box::new(move |w| {
                        for i in 0..12_000 {
                            w.view(&row(i).view())?;
                            if kill && i == 11_000 {
                                let mut c =
                                    postgres::Client::connect(&super::url(), postgres::NoTls)
                                        .unwrap();
                                c.execute(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                 WHERE application_name = $1",
                                    &[&app],
                                )
                                .unwrap();
                            }
                        }
                        Ok(())
                    }),
                    Reading::AsItComes,
                ),
                state: vec![("k".into(), Some(b"v".to_vec()))],
                run: None,
            }
        };
        let e = dying.ingest_unit(unit(true)).unwrap_err();
        assert!(matches!(e, StoreError::Backend(_)), "{e}");
        let other = PgStore::open(&schema.target()).unwrap();
        assert_eq!(other.count().unwrap(), 0, "nothing of the cut unit");
        assert_eq!(other.state_get("k").unwrap(), None);
        let st = other.ingest_unit(unit(false)).unwrap();
        assert_eq!((st.new, other.count().unwrap()), (12_000, 12_000));
    }

    /// Schema version 1 as an older outwatch created it (a fixture: an applied migration never
    /// changes): findings kept as JSON in `doc`.
    const SCHEMA_V1: &str = r#"
        CREATE TABLE schema_version (version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE findings (
            fingerprint text COLLATE "C" PRIMARY KEY, source text NOT NULL, feed text NOT NULL,
            status text NOT NULL, severity text NOT NULL, ip inet, network cidr, asn bigint,
            domain text, domain_rev text COLLATE "C", email text, email_rev text COLLATE "C",
            url text, time_source timestamptz, first_seen timestamptz NOT NULL,
            last_seen timestamptz NOT NULL, doc json NOT NULL);
        CREATE INDEX findings_ip ON findings USING gist (ip inet_ops) WHERE ip IS NOT NULL;
        CREATE INDEX findings_network ON findings USING gist (network inet_ops)
            WHERE network IS NOT NULL;
        CREATE INDEX findings_domain_rev ON findings (domain_rev) WHERE domain_rev IS NOT NULL;
        CREATE INDEX findings_email ON findings (email) WHERE email IS NOT NULL;
        CREATE INDEX findings_email_rev ON findings (email_rev) WHERE email_rev IS NOT NULL;
        CREATE INDEX findings_asn ON findings (asn) WHERE asn IS NOT NULL;
        CREATE INDEX findings_open ON findings (source, last_seen) WHERE status <> 'resolved';
        CREATE INDEX findings_last_seen ON findings (last_seen);
        CREATE TABLE runs (started timestamptz NOT NULL, source text COLLATE "C" NOT NULL,
            doc json NOT NULL, PRIMARY KEY (started, source));
        CREATE INDEX runs_source ON runs (source, started);
        CREATE TABLE state (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
        INSERT INTO schema_version (version) VALUES (1);
    "#;

    /// A store of schema version 1 (findings as JSON) opens, is migrated to the binary
    /// records, and answers as before: every finding whole, queries by address, a new unit
    /// merged into a converted finding.
    #[test]
    fn a_store_of_schema_version_1_is_migrated() {
        let Some(schema) = Schema::new() else { return };
        let mut c = postgres::Client::connect(&super::url(), postgres::NoTls).unwrap();
        let q = outwatch::store::postgres::quote_ident(schema.name());
        c.batch_execute(&format!("SET search_path TO {q}; {SCHEMA_V1}"))
            .unwrap();
        // More than one conversion batch (1,000), with history and extra fields.
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let mut old = Vec::new();
        for i in 0..2_500u32 {
            let mut f = row(i);
            f.first_seen = t0;
            f.last_seen = t0;
            f.set_extra("banner", format!("SSH-2.0-OpenSSH_{i} \u{0} \"quoted\""));
            f.push_history(t0, "new");
            c.execute(
                "INSERT INTO findings (fingerprint, source, feed, status, severity, ip, \
                 first_seen, last_seen, doc) \
                 VALUES ($1, $2, $3, $4, $5, $6::text::inet, $7, $8, $9::text::json)",
                &[
                    &f.fingerprint,
                    &f.source,
                    &f.feed,
                    &f.status.as_str(),
                    &f.severity.as_str(),
                    &f.ip.unwrap().to_string(),
                    &f.first_seen,
                    &f.last_seen,
                    &serde_json::to_string(&f).unwrap(),
                ],
            )
            .unwrap();
            old.push(f);
        }
        let s = PgStore::open(&schema.target()).unwrap();
        let version: i32 = c
            .query_one(&format!("SELECT max(version) FROM {q}.schema_version"), &[])
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        let columns: Vec<String> = c
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = 'findings'",
                &[&schema.name()],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(columns.contains(&"rec".to_string()), "{columns:?}");
        assert!(!columns.contains(&"doc".to_string()), "{columns:?}");
        assert_eq!(s.count().unwrap(), old.len());
        for f in [&old[0], &old[999], &old[1000], &old[2499]] {
            assert_eq!(s.get(&f.fingerprint).unwrap().as_ref(), Some(f));
        }
        let mut got = Vec::new();
        s.query_each(
            &Query::Ip(old[1234].ip.unwrap()),
            &QueryOptions::default(),
            &mut |f| {
                got.push(f);
                Ok(ControlFlow::Continue(()))
            },
        )
        .unwrap();
        assert_eq!(got, vec![old[1234].clone()]);
        // A new observation of a converted finding is merged into it.
        let st = s
            .ingest_unit(Unit {
                now: t0 + chrono::Duration::days(1),
                write: Write::Observe,
                findings: Findings::Owned(vec![row(7)]),
                state: vec![],
                run: None,
            })
            .unwrap();
        assert_eq!((st.new, st.updated), (0, 1));
        let f = s.get(&old[7].fingerprint).unwrap().unwrap();
        assert_eq!(
            (f.first_seen, f.last_seen, f.status),
            (
                t0,
                t0 + chrono::Duration::days(1),
                outwatch::finding::Status::Open
            )
        );
        // Opening again applies nothing.
        drop(s);
        drop(PgStore::open(&schema.target()).unwrap());
    }

    /// Without a server: a clear error naming where, no password in it.
    #[test]
    fn an_absent_server_is_a_clear_error_without_the_password() {
        let target = outwatch::store::postgres::Target::url(
            "postgres://outwatch:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2",
        );
        let e = PgStore::open(&target).unwrap_err().to_string();
        assert!(e.contains("postgres://outwatch@127.0.0.1:1/nowhere"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("refused"), "the cause is told: {e}");
    }
}

//! The database schema, in versioned migrations applied when a store opens.
//!
//! `schema_version` holds the versions applied. Opening applies the missing ones in order, in
//! one transaction, under an advisory lock so two nodes starting together do not race;
//! a database whose version is newer than this build knows is refused with a clear error (an
//! older outwatch must not write a layout it does not understand).

use postgres::{Client, Transaction};

use super::super::Result;
use super::pg;
use super::write::pack;
use crate::finding::Finding;

/// One migration: SQL, then (when set) rows converted by outwatch, then more SQL.
struct Migration {
    sql: &'static str,
    convert: Option<fn(&mut Transaction<'_>) -> Result<()>>,
    then: &'static str,
}

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`. An applied migration is
/// never edited: a change of layout is a new one.
const MIGRATIONS: &[Migration] = &[
    // 1: findings with their indexed fields, the run log, state.
    Migration {
        sql: V1,
        convert: None,
        then: "",
    },
    // 2: lighter rows and indexes, which bound the import. The finding as sled's binary
    // record (`rec`, LZ4 when that pays) instead of JSON (`doc`): rows half the size. `ip`
    // indexed by a B-tree (an address is `=`, a prefix `<<=`, which the planner turns into a
    // range of it) instead of GiST, which cost twice as much to insert into. The `last_seen`
    // index (no query uses it alone) goes; the `asn` index keeps only what an ASN query reads
    // (findings with no address, network, domain or mail address).
    Migration {
        sql: "ALTER TABLE findings ADD COLUMN rec bytea, ALTER COLUMN doc DROP NOT NULL;
              DROP INDEX findings_ip;
              CREATE INDEX findings_ip ON findings (ip) WHERE ip IS NOT NULL;
              DROP INDEX findings_last_seen;
              DROP INDEX findings_asn;
              CREATE INDEX findings_asn ON findings (asn) WHERE asn IS NOT NULL
                  AND ip IS NULL AND network IS NULL AND domain IS NULL AND email IS NULL;",
        convert: Some(doc_to_rec),
        then: "ALTER TABLE findings DROP COLUMN doc, ALTER COLUMN rec SET NOT NULL;",
    },
];

/// Findings converted per statement by [`doc_to_rec`].
const CONVERT: i64 = 1_000;

/// Migration 2's conversion: each finding's JSON `doc` read and written back as `rec`, a
/// batch at a time in fingerprint order (the primary key), `doc` emptied as it goes.
fn doc_to_rec(tx: &mut Transaction<'_>) -> Result<()> {
    let mut after = String::new();
    loop {
        let rows = tx
            .query(
                "SELECT fingerprint, doc::text FROM findings WHERE fingerprint > $1 \
                 ORDER BY fingerprint LIMIT $2",
                &[&after, &CONVERT],
            )
            .map_err(pg)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get(0);
        let mut fps: Vec<&str> = Vec::with_capacity(rows.len());
        let mut recs: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
        let mut plain = Vec::new();
        for row in &rows {
            let f = decode_json(row.get(1))?;
            plain.clear();
            super::super::sled_store::encode_record(&f, &mut plain)?;
            fps.push(row.get(0));
            recs.push(pack(&plain));
        }
        tx.execute(
            "UPDATE findings SET rec = u.rec, doc = NULL \
             FROM unnest($1::text[], $2::bytea[]) AS u(fp, rec) WHERE fingerprint = u.fp",
            &[&fps, &recs],
        )
        .map_err(pg)?;
    }
}

/// A finding from the JSON `doc` of schema version 1.
fn decode_json(doc: &str) -> Result<Finding> {
    serde_json::from_str(doc)
        .map_err(|e| super::super::StoreError::corrupt("finding (PostgreSQL `doc`)", e))
}

/// Migration 1.
const V1: &str = r#"
    CREATE TABLE findings (
        fingerprint text COLLATE "C" PRIMARY KEY,
        source      text NOT NULL,
        feed        text NOT NULL,
        status      text NOT NULL,
        severity    text NOT NULL,
        ip          inet,
        network     cidr,
        asn         bigint,
        domain      text,
        -- The domain's labels reversed (`org.example.www`): a domain and its subdomains are
        -- one range of this column.
        domain_rev  text COLLATE "C",
        email       text,
        -- The reversed labels of the mail address's domain.
        email_rev   text COLLATE "C",
        url         text,
        time_source timestamptz,
        first_seen  timestamptz NOT NULL,
        last_seen   timestamptz NOT NULL,
        -- The whole finding, as outwatch serialises it (`json`: kept exactly as written).
        doc         json NOT NULL
    );
    CREATE INDEX findings_ip ON findings USING gist (ip inet_ops) WHERE ip IS NOT NULL;
    CREATE INDEX findings_network ON findings USING gist (network inet_ops)
        WHERE network IS NOT NULL;
    CREATE INDEX findings_domain_rev ON findings (domain_rev) WHERE domain_rev IS NOT NULL;
    CREATE INDEX findings_email ON findings (email) WHERE email IS NOT NULL;
    CREATE INDEX findings_email_rev ON findings (email_rev) WHERE email_rev IS NOT NULL;
    CREATE INDEX findings_asn ON findings (asn) WHERE asn IS NOT NULL;
    CREATE INDEX findings_open ON findings (source, last_seen) WHERE status <> 'resolved';
    CREATE INDEX findings_last_seen ON findings (last_seen);

    CREATE TABLE runs (
        started timestamptz NOT NULL,
        source  text COLLATE "C" NOT NULL,
        doc     json NOT NULL,
        PRIMARY KEY (started, source)
    );
    CREATE INDEX runs_source ON runs (source, started);

    -- Remembered state, kept indicator sets (`indicators/...`) among it.
    CREATE TABLE state (
        key   text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL
    );
    "#;

/// The schema version this build writes.
pub const CURRENT: i32 = MIGRATIONS.len() as i32;

/// An arbitrary key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6f75_7477_6174_6368; // "outwatch"

/// Brings the schema the connection works in up to [`CURRENT`], or refuses a newer one.
pub(super) fn migrate(c: &mut Client, target: &str) -> Result<()> {
    let open = |e: postgres::Error| super::open_error(target, e);
    let mut tx = c.transaction().map_err(open)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(open)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .map_err(open)?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .map_err(open)?
        .get(0);
    if have > CURRENT {
        return Err(super::refused(
            target,
            format!(
                "its schema is version {have}, newer than this outwatch knows ({CURRENT}): \
                 a newer outwatch wrote it; upgrade this node"
            ),
        ));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(m.sql).map_err(open)?;
        if let Some(convert) = m.convert {
            convert(&mut tx).map_err(|e| {
                super::refused(target, format!("migrating to schema version {v}: {e}"))
            })?;
        }
        tx.batch_execute(m.then).map_err(open)?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
            .map_err(open)?;
    }
    tx.commit().map_err(open)?;
    Ok(())
}

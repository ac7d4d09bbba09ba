//! The database schema, in versioned migrations applied when a store opens.
//!
//! `schema_version` holds the versions applied. Opening applies the missing ones in order, in
//! one transaction, under an advisory lock so two nodes starting together do not race;
//! a database whose version is newer than this build knows is refused with a clear error (an
//! older outwatch must not write a layout it does not understand).

use postgres::Client;

use super::super::Result;

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[
    // 1: findings with their indexed fields, the run log, state.
    r#"
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
    "#,
];

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
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(sql).map_err(open)?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
            .map_err(open)?;
    }
    tx.commit().map_err(open)?;
    Ok(())
}

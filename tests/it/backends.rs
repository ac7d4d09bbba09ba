//! End-to-end tests on either backend (issue #25): the `[store]` table of each, and the store
//! opened as a test seeds it. A test written over [`Backend`] runs once on sled and once on
//! PostgreSQL (which skips without a server, except under `CI=true`: see
//! `store_contract/postgres.rs`).

use std::path::Path;

use outwatch::store::Store;

use crate::store_contract::postgres::{Schema, url};

/// Where a test's store lives.
pub enum Backend {
    Sled,
    /// A schema of its own on the test server, dropped with it.
    Postgres(Schema),
}

impl Backend {
    /// PostgreSQL, or `None` (with a message) where no server answers outside CI.
    pub fn postgres() -> Option<Backend> {
        Schema::new().map(Backend::Postgres)
    }

    /// What `status --json` says in `store.backend`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The `[store]` table, the node's own files in `path`.
    pub fn store_table(&self, path: &str) -> String {
        match self {
            Backend::Sled => format!("[store]\npath = \"{path}\"\n"),
            Backend::Postgres(s) => format!(
                "[store]\npath = \"{path}\"\nbackend = \"postgres\"\nurl = {}\nschema = \"{}\"\n",
                toml::Value::String(url()),
                s.name()
            ),
        }
    }

    /// The store, opened to seed it (`folder`: sled's; unused for PostgreSQL).
    pub fn open(&self, folder: &Path) -> Box<dyn Store> {
        match self {
            Backend::Sled => Box::new(outwatch::store::SledStore::open(folder).unwrap()),
            Backend::Postgres(s) => {
                Box::new(outwatch::store::postgres::PgStore::open(&s.target()).unwrap())
            }
        }
    }
}

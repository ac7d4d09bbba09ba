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

    /// Where a store in this schema lives.
    pub fn target(&self) -> Target {
        Target {
            url: url(),
            password: None,
            schema: Some(self.name.clone()),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
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

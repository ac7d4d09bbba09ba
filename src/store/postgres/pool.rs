//! Connections to the server: a small pool of blocking clients (the `postgres` crate).
//!
//! Each store call takes a connection for its duration and gives it back; a call made while
//! another holds one (a query's callback that reads or modifies the store) opens another, so
//! nothing waits on itself. At most [`IDLE`] connections are kept between calls; a broken one
//! is dropped rather than returned.
//!
//! The `postgres` crate's client drives its connection on a runtime of its own and blocks; it
//! must not be called on an async runtime's worker thread, which the store contract already
//! rules out (every async caller goes through `store::bridge`, tokio's blocking pool, where
//! blocking is what the threads are for).

use std::sync::Mutex;

use postgres::{Client, Config, NoTls};

use super::tls::Connector;

use super::super::Result;

/// Idle connections kept for the next call.
const IDLE: usize = 4;

/// Where and how to connect, the password held apart from the printable target.
pub(super) struct Pool {
    config: Config,
    /// Plain, or TLS with rustls (`tls.rs`).
    tls: Connector,
    /// The schema every connection works in (`search_path`), when not the default.
    schema: Option<String>,
    /// What errors name: the URL without its password.
    pub target: String,
    idle: Mutex<Vec<Client>>,
}

/// A connection taken from the pool, given back when dropped.
pub(super) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("held until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            if !c.is_closed() && idle.len() < IDLE {
                idle.push(c);
                return;
            }
            drop(idle);
            close(c);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        idle.into_iter().for_each(close);
    }
}

/// A connection that holds a session-level advisory lock until dropped (closing the session
/// releases it).
pub(super) struct Held(pub Option<Client>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            close(c);
        }
    }
}

/// Closes a connection: its client says goodbye to the server, which blocks (see
/// [`super::off_runtime`]).
fn close(c: Client) {
    super::off_runtime(|| drop(c));
}

impl Pool {
    pub(super) fn new(
        config: Config,
        tls: Connector,
        schema: Option<String>,
        target: String,
    ) -> Self {
        Pool {
            config,
            tls,
            schema,
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection: an idle one, else a new one.
    pub(super) fn get(&self) -> Result<Conn<'_>> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let client = match idle {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(Conn {
            pool: self,
            client: Some(client),
        })
    }

    /// A connection of its own, outside the pool (one that holds a session lock).
    pub(super) fn dedicated(&self) -> Result<Client> {
        self.connect()
    }

    fn connect(&self) -> Result<Client> {
        let open = |e| super::open_error(&self.target, e);
        let mut c = match &self.tls {
            Connector::Plain => self.config.connect(NoTls),
            Connector::Rustls(tls) => self.config.connect(tls.clone()),
        }
        .map_err(open)?;
        if let Some(s) = &self.schema {
            c.batch_execute(&format!("SET search_path TO {}", quote_ident(s)))
                .map_err(open)?;
        }
        Ok(c)
    }
}

/// `s` as an SQL identifier, quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

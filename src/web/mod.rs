//! The web view and its JSON API (`[web] listen`): served by the daemon (`outwatch run`) and
//! by `outwatch serve` for a store without it. A user of the same query and apply paths as the
//! CLI, never a second copy of them: the worklist is a [`crate::store::Filter`] read from the
//! URL's query ([`crate::store::Filter::from_query_string`]), object pages are lookup
//! [`crate::store::Query`]s, triage goes through [`crate::triage::actions::apply`].
//!
//! - [`server`]: the state ([`Web`]) and the start-up refusal of an open non-loopback
//!   listener; [`routes`]: who is asking (the [`access::Caller`] of each request), the
//!   router, the tower-http layers (compression, timeouts, body limits), serving;
//! - [`fail`]: why a page cannot be shown, as a status;
//! - [`access`]: tokens, roles, scopes, CSRF;
//! - [`respond`]: one answer in HTML (templates `templates/web/*.html`), JSON or CSV by
//!   suffix or `Accept`; errors;
//! - [`view`]: what a page shows of a finding (rows, details);
//! - [`pages`]: overview, worklist, object and finding pages, feeds, flows;
//! - [`triage`]: the POSTs (ack, unack, note, resolve, suppress);
//! - [`api`]: `/api/v1/...`, streamed JSON lines, `updated_since`, the OpenAPI document.
//!
//! Every page is bounded: lists are paged (at most `pages::MAX_WINDOW` sorted in memory),
//! bulk answers streamed, the overview's store walk cached for a minute.

pub mod access;
mod api;
mod fail;
mod metrics;
mod pages;
mod respond;
mod routes;
pub(crate) mod server;
mod triage;
mod view;

pub use routes::{router, serve};
pub use server::{Web, WebError, bind, check_listen};

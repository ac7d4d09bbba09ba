//! outwatch: collects what external watchers report about your networks, domains and mail
//! addresses into one normalised store, one lookup and one daily digest.
//!
//! Start reading at `ARCHITECTURE.md`; the entry point is [`cli::main`].

// Boundaries the compiler keeps: a module is `pub(crate)` unless another target (the binary,
// tests/it, benches) uses it, and an item no other target can reach is `pub(crate)`, not `pub`.
#![warn(unreachable_pub)]

pub(crate) mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub(crate) mod demo;
pub mod digest;
pub mod diskspace;
pub(crate) mod error;
pub(crate) mod files;
pub mod finding;
pub mod flows;
pub mod health;
pub mod http;
pub mod indicators;
pub(crate) mod logging;
pub mod mail;
pub mod metrics;
pub(crate) mod net;
pub mod notify;
pub(crate) mod output;
pub mod pipeline;
pub mod ripestat;
pub mod scope;
pub mod secret;
pub mod sources;
pub mod store;
pub(crate) mod style;
pub mod text;
pub mod triage;
pub mod web;

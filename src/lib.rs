//! outwatch: collects what external watchers report about your networks, domains and mail
//! addresses into one normalised store, one lookup and one daily digest.
//!
//! Start reading at `ARCHITECTURE.md`; the entry point is [`cli::main`].

pub mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod digest;
pub mod diskspace;
pub mod error;
pub mod files;
pub mod finding;
pub mod flows;
pub mod health;
pub mod http;
pub mod indicators;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod ripestat;
pub mod scope;
pub mod secret;
pub mod sources;
pub mod store;
pub mod style;
pub mod text;
pub mod triage;
pub mod web;

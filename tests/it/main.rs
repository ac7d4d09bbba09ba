//! The integration tests: one crate (one link of the library), a module per area.
//! `support` and `keyed_support` hold the shared set-up.

mod cli;
mod cut_downloads;
mod cymru;
mod daemon;
mod demo;
mod digest;
mod disk_full;
mod end_to_end;
mod fidelity;
mod flows;
mod flows_read;
mod flows_watch;
mod flows_week;
mod foundation;
mod hibp;
mod indicators;
mod key_leaks;
mod keyed_support;
mod lists;
mod lookup;
mod lookup_limits;
mod notify;
mod one_writer;
mod postgres_cli;
mod properties;
mod requests;
mod safebrowsing;
mod security;
mod shadowserver;
mod snds;
mod store_contract;
mod support;
mod triage;
mod web;
mod worklist;

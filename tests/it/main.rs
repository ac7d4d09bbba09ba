//! The integration tests: one crate (one link of the library), a module per area.
//! `support` and `keyed_support` hold the shared set-up.

mod cut_downloads;
mod cymru;
mod daemon;
mod demo;
mod digest;
mod disk_full;
mod end_to_end;
mod flows;
mod flows_read;

mod foundation;
mod hibp;
mod indicators;
mod key_leaks;
mod keyed_support;
mod lists;
mod lookup;
mod lookup_limits;
mod properties;
mod requests;
mod safebrowsing;
mod security;
mod shadowserver;
mod snds;
mod support;

//! One module per CLI command. Commands parse nothing (clap did) and print; the work is done by
//! the library modules they call.

pub mod check_config;
pub mod demo;
pub mod digest;
pub mod export;
pub mod fetch;
pub mod findings_table;
pub mod flows;
pub mod import;
pub mod import_cymru;
pub mod import_hibp;
pub mod import_mail;
pub mod import_safebrowsing;
pub mod import_shadowserver;
pub mod indicator_sets;
pub mod list;
pub mod lookup;
pub mod manpage;
pub mod migrate;
pub mod notify;
pub mod run;
pub mod scope;
pub mod serve;
pub mod shadowserver;
pub mod source_turn;
pub mod status;
pub mod suppress;
pub mod triage;

//! One module per CLI command. Commands parse nothing (clap did) and print; the work is done by
//! the library modules they call.

pub(crate) mod check_config;
pub(crate) mod demo;
pub(crate) mod digest;
pub(crate) mod export;
pub(crate) mod fetch;
pub(crate) mod findings_table;
pub(crate) mod flows;
pub(crate) mod import;
pub(crate) mod import_cymru;
pub(crate) mod import_hibp;
pub(crate) mod import_mail;
pub(crate) mod import_safebrowsing;
pub(crate) mod import_shadowserver;
pub(crate) mod indicator_sets;
pub(crate) mod list;
pub mod lookup;
pub(crate) mod manpage;
pub(crate) mod migrate;
pub(crate) mod notify;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod serve;
pub(crate) mod shadowserver;
pub(crate) mod source_turn;
pub(crate) mod status;
pub(crate) mod suppress;
pub(crate) mod triage;

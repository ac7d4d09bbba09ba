//! `outwatch migrate --to TARGET`: copies the configured store into another backend: a
//! PostgreSQL database (`postgres://...`) or a sled folder, streamed, counts checked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::cli::MigrateArgs;
use crate::error::CliError;
use crate::outln;
use crate::output::print_json;
use crate::store::postgres::{PgStore, Target, describe_target};
use crate::store::{self, Store};

pub(crate) fn run(app: &App, a: &MigrateArgs) -> Result<ExitCode, CliError> {
    let pg = a.to.starts_with("postgres://") || a.to.starts_with("postgresql://");
    if !pg && a.to_schema.is_some() {
        return Err(CliError::usage(
            "--to-schema goes with a PostgreSQL target (--to postgres://...)",
        ));
    }
    app.require_store()?;
    let from = app.open_store()?;
    let from_place = app.store_place();
    let (to, to_place): (Arc<dyn Store>, String) = if pg {
        let t = Target {
            schema: a.to_schema.clone(),
            ..Target::url(a.to.clone())
        };
        let place = describe_target(&t);
        (Arc::new(PgStore::open(&t)?), place)
    } else {
        let dir = PathBuf::from(&a.to);
        if app.pg_target()?.is_none() && same_place(&dir, &app.data_dir) {
            return Err(CliError::usage(
                "--to names the store being copied: give another folder",
            ));
        }
        (Arc::new(store::open(&dir)?), dir.display().to_string())
    };
    let copied = store::copy::copy(from.as_ref(), to.as_ref())?;
    if a.json {
        print_json(&json!({
            "from": from_place,
            "to": to_place,
            "copied": copied,
            "counts_checked": true,
        }))?;
    } else {
        outln!(
            "copied {} findings, {} run-log entries and {} state entries from {from_place} to \
             {to_place}; the counts match",
            copied.findings,
            copied.runs,
            copied.state
        );
        outln!("point [store] at the new store to use it");
    }
    Ok(ExitCode::SUCCESS)
}

fn same_place(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

//! `outwatch import shadowserver [--type T] FILE... [--json]`: report files that arrived by mail
//! or were downloaded by hand.
//!
//! Works without a config file: the scope is then the one cached in the store (empty on a fresh
//! store), and findings outside it are kept with `in_scope = false`.
//!
//! Counting (`--json` prints exactly these keys):
//! - `rows`: data rows read (header lines excluded) = `imported + duplicates + rejected`;
//! - `imported`: rows that created a finding the store did not hold;
//! - `duplicates`: rows whose finding the store already held (an earlier import or fetch) or
//!   that repeat an earlier row of this import; they move `last_seen` / `times_seen`;
//! - `rejected`: rows whose finding has no usable identity (its address, network, host name,
//!   URL or e-mail is missing or malformed; or no timestamp), each listed in `errors` with
//!   `file:line` and the reason;
//! - `warnings`: malformed values of imported rows (another side's address such as a `dst_ip`
//!   of `148.81.111.11.12`, a port, an ASN, a severity), kept as written in the finding's
//!   `extra`; a row may have several; each listed in `warning_details` as `{location, message}`;
//!   a report of a type no table knows adds one warning (it is read all the same);
//! - `by_type`: rows per report type; `errors`: rejected rows and unreadable files;
//!   `warning_details`: the warnings (each list holds the first [`MAX_ERRORS`]; the counts stay
//!   exact).

use crate::workln;
use std::process::ExitCode;

use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::output::print_json;
use crate::scope::{self, ScopeMatcher};
use crate::sources::RowError;
use crate::sources::shadowserver::ShadowserverConfig;
use crate::sources::shadowserver::import::{ImportOptions, MAX_EML_BYTES, mail_links};
use crate::sources::shadowserver::importer::Inputs;
use crate::sources::shadowserver::schema::{SCHEMA_STATE_KEY, Schema};
use crate::store::bridge;
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) use crate::pipeline::import::{Imported, shadowserver_files};
pub(crate) use crate::sources::shadowserver::importer::Downloaded;

/// The progress line of an import on stderr: rows read, and the file being read.
pub(crate) fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new_spinner();
    b.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} rows in {elapsed}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}

pub(crate) async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    // A mistyped file name: no store is created for nothing (as `import hibp` and the
    // others refuse it, through `import_mail::expand`).
    if let Some(missing) = a.files.iter().find(|f| !f.exists()) {
        return Err(CliError::usage(format!(
            "no such file: {}",
            missing.display()
        )));
    }
    let store = app.open_store()?;
    let _turn = super::source_turn::source_turn(
        &store,
        crate::finding::SourceId::Shadowserver.name(),
        a.wait,
    )
    .await?;
    let cfg = app.config.clone();
    let (snap, schema_override) = bridge::blocking(&store, move |s| {
        Ok((
            scope::load(cfg.as_ref(), s)?,
            s.state_get(SCHEMA_STATE_KEY)?,
        ))
    })
    .await?;
    let matcher = ScopeMatcher::new(&snap);
    // A `--type` no table knows (a new or a mistyped one) is read all the same: each report
    // carries a warning naming the closest known types (`import::unknown_type_warning`).
    let schema = Schema::from_override(schema_override.as_deref());
    let started = app.clock.now();
    // Mails that only link to their reports: download the links (each failure named; the id
    // is never shown) and import the reports under the type their file name names.
    let mut files = Vec::new();
    let mut downloaded: Vec<Downloaded> = Vec::new();
    let mut link_errors: Vec<RowError> = Vec::new();
    let mut link_mails = 0usize;
    for f in &a.files {
        let is_eml = f.extension().is_some_and(|x| x.eq_ignore_ascii_case("eml"));
        let links = if is_eml {
            std::fs::metadata(f)
                .ok()
                .filter(|m| m.len() <= MAX_EML_BYTES)
                .and_then(|_| std::fs::read(f).ok())
                .map(|b| mail_links(&b))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if links.is_empty() {
            files.push(f.clone());
            continue;
        }
        link_mails += 1;
        let http = app.http()?;
        let base = app
            .config
            .as_ref()
            .and_then(crate::sources::table::<ShadowserverConfig>)
            .map(|c| c.download_url().to_string())
            .unwrap_or_else(|| crate::sources::shadowserver::DEFAULT_DOWNLOAD_URL.to_string());
        for l in links {
            let shown = format!("{}!{}", f.display(), l.file);
            match crate::sources::shadowserver::api::download_link(&http, &base, &l).await {
                Ok(body) => downloaded.push((shown, l.file.clone(), body)),
                Err(e) => link_errors.push(RowError {
                    location: shown,
                    message: e.to_string(),
                }),
            }
        }
    }
    let rt = a.report_type.clone();
    // indicatif draws only when stderr is a terminal.
    let bar = progress_bar(!a.json);
    let shown = bar.clone();
    let clock = app.clock.clone();
    let imported = bridge::run(move || {
        let opts = ImportOptions {
            schema: &schema,
            scope: &matcher,
            report_type: rt.as_deref(),
        };
        let inputs = Inputs {
            files: &files,
            downloaded: &downloaded,
            failed_links: &link_errors,
        };
        shadowserver_files(store, &opts, &inputs, started, &|| clock.now(), &shown)
    })
    .await;
    bar.finish_and_clear();
    let Imported {
        mut summary,
        run,
        unreadable,
    } = imported?;
    summary.files += link_mails;
    let in_scope = run.in_scope;
    if a.json {
        print_json(&summary)?;
    } else {
        crate::output::work_wrapped(
            &format!(
                "{} file(s), {} row(s): {} imported, {} duplicate(s), {} rejected; {} in scope; \
                 {} malformed value(s) kept",
                summary.files,
                summary.rows,
                summary.imported,
                summary.duplicates,
                summary.rejected,
                in_scope,
                summary.warnings
            ),
            "",
            "  ",
        );
        for (t, n) in &summary.by_type {
            workln!("  {t}: {n} row(s)");
        }
        for e in &summary.errors {
            eprintln!(
                "{}: {}",
                crate::text::Clean(&e.location),
                crate::text::Clean(&e.message)
            );
        }
        for w in &summary.warning_details {
            eprintln!(
                "{}: warning: {}",
                crate::text::Clean(&w.location),
                crate::text::Clean(&w.message)
            );
        }
        if summary.rows > 0 && in_scope == 0 && snap == Default::default() {
            eprintln!(
                "note: no scope is configured or cached, so every finding is marked out of scope \
                 (set [organisation] in the config and run `outwatch scope --refresh`)"
            );
        }
    }
    if unreadable > 0 {
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

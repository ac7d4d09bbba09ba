//! `outwatch demo`: replay recorded feeds from a loopback server into a fresh store, then write
//! the digest (HTML and text) to files and say where everything is.

use crate::workln;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::app::App;
use crate::cli::DemoArgs;
use crate::demo::{self, server::ReplayServer};
use crate::digest;
use crate::error::CliError;

/// Runs the demo. It reads no config of the user's (a broken `./outwatch.toml` does not stop
/// it): it writes its own and works on it.
pub(crate) async fn run(a: &DemoArgs) -> Result<ExitCode, CliError> {
    let out: PathBuf = match &a.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "outwatch-demo-{}",
            chrono::Utc::now().format("%Y%m%d-%H%M%S")
        )),
    };
    if out.join("data").exists() {
        return Err(CliError::usage(format!(
            "{} already holds a demo store; pick another --out folder or remove it",
            out.display()
        )));
    }
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", out.display())))?;
    let server = ReplayServer::start(demo::routes())
        .await
        .map_err(|e| CliError::failure(format!("cannot start the local replay server: {e}")))?;
    let cfg_path = out.join("outwatch.toml");
    // Owner-only, like any config that holds keys (the demo's are made up).
    crate::files::write_private(&cfg_path, demo::config_text(&server.base_url()))
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", cfg_path.display())))?;
    let intro = format!(
        "recorded provider replies served on {}, store in {}",
        server.base_url(),
        out.join("data").display()
    );
    crate::output::work_wrapped(&intro, "outwatch demo: ", "  ");
    workln!();

    let app = App::new(Some(&cfg_path), None)?;
    let reports = super::fetch::fetch_sources(&app, &[], true, std::time::Duration::ZERO).await?;
    super::fetch::print_table(&reports);

    // The network's own view: a day of its connection log, checked against the lists just kept.
    let log = out.join("conn.log");
    std::fs::write(&log, demo::CONN_LOG)
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", log.display())))?;
    workln!("\n$ outwatch flows {}", log.display());
    let flows = super::flows::run(
        &app,
        &crate::cli::FlowsArgs {
            files: vec![log],
            json: false,
        },
    )?;

    let cfg = app.require_config()?;
    let store = app.open_read()?;
    let (c, now) = (cfg.clone(), app.clock.now());
    let p = crate::store::bridge::run(move || digest::preview(&c, store.as_ref(), now))
        .await
        .map_err(|e| CliError::failure(crate::text::chain(&e)))?;
    let html = out.join("digest.html");
    let text = out.join("digest.txt");
    for (path, body) in [(&html, &p.rendered.html), (&text, &p.rendered.text)] {
        crate::files::write_private(path, body)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
    }
    let c = cfg_path.display();
    workln!(
        "\nThe digest ({}):\n  {}\n  {}\n\nTry:\n  outwatch --config {c} lookup 192.0.2.11\n  \
         outwatch --config {c} lookup 192.0.2.20\n  \
         outwatch --config {c} lookup example.org\n  outwatch --config {c} scope\n  \
         outwatch --config {c} status\n",
        p.rendered.subject,
        html.display(),
        text.display()
    );
    if reports.iter().all(|r| r.ok) && flows == ExitCode::SUCCESS {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::failure("some demo sources failed (see above)"))
    }
}

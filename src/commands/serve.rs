//! `outwatch serve`: the web view and its API (`src/web/`) on a store without the daemon (the
//! daemon serves it itself when `[web] listen` is set). Writes (triage) go to the store this
//! command holds, or through the daemon when it holds the store. `--hash-token` prints the
//! SHA-256 a `[[web.tokens]]` table keeps of a token.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::app::App;
use crate::error::CliError;
use crate::web::{self, Web, WebError};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: `[web] listen` of the config]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Read a token from standard input and print the `sha256` its `[[web.tokens]]` table keeps
    #[arg(long)]
    pub hash_token: bool,
}

fn web_error(e: WebError) -> CliError {
    match e {
        WebError::NoToken { .. } => CliError::config(e),
        WebError::Store(s) => CliError::from(s),
        e => CliError::failure(e),
    }
}

pub(crate) async fn run(app: &App, a: &ServeArgs) -> Result<ExitCode, CliError> {
    if a.hash_token {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::failure(format!("cannot read the token: {e}")))?;
        if line.trim().is_empty() {
            return Err(CliError::usage("give the token on standard input"));
        }
        crate::outln!("{}", web::access::token_hash(&line));
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = app.require_config()?;
    let listen = a.listen.or(cfg.web.listen).ok_or_else(|| {
        CliError::usage("nowhere to listen: set [web] listen in the config or give --listen")
    })?;
    web::check_listen(cfg, &listen).map_err(web_error)?;
    app.require_store()?;
    let store = app.open_store()?;
    let state = Web::new(
        Arc::new(cfg.clone()),
        store.clone(),
        app.clock.clone(),
        listen,
    )
    .await
    .map_err(web_error)?;
    let listener = web::bind(cfg, listen).await.map_err(web_error)?;
    let at = listener.local_addr().map_or(listen, |a| a);
    eprintln!("outwatch serves the web view on http://{at}/");
    let io = |e: std::io::Error| CliError::failure(format!("cannot listen for signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let (stop, rx) = watch::channel(false);
    let server = tokio::spawn(web::serve(listener, state, rx));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = stop.send(true);
    let served = server
        .await
        .map_err(|e| CliError::failure(format!("web server: {e}")))?;
    served.map_err(web_error)?;
    store.flush()?;
    Ok(ExitCode::SUCCESS)
}

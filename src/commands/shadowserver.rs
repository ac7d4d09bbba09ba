//! `outwatch shadowserver ping` (check key and secret) and `outwatch shadowserver update-schema`
//! (refresh the report schema; the download is validated before it replaces anything).
use crate::outln;
use std::process::ExitCode;

use reqwest::header::HeaderMap;
use serde_json::json;

use crate::app::App;
use crate::cli::{ShadowserverArgs, ShadowserverCommand};
use crate::error::CliError;
use crate::http::Fetched;
use crate::output::print_json;
use crate::sources::shadowserver::ShadowserverConfig;
use crate::sources::shadowserver::schema::{self, SCHEMA_STATE_KEY, Schema};

pub(crate) async fn run(app: &App, a: &ShadowserverArgs) -> Result<ExitCode, CliError> {
    match &a.command {
        ShadowserverCommand::Ping(j) => ping(app, j.json).await,
        ShadowserverCommand::UpdateSchema { url } => update_schema(app, url.as_deref()).await,
    }
}

async fn ping(app: &App, json: bool) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    let ss = crate::sources::table::<ShadowserverConfig>(cfg).ok_or_else(|| {
        CliError::config("the config has no [sources.shadowserver] table (api_key and secret)")
    })?;
    let client = ss
        .client(app.http()?)
        .map_err(|e| CliError::config(crate::text::chain(&e)))?;
    // What the API says is shown with the key and secret scrubbed, whatever it echoed.
    let secrets = [&client.api_key, &client.secret];
    let clean =
        |e: crate::sources::FetchError| crate::http::scrub(&crate::text::chain(&e), &secrets);
    let pong = client
        .ping()
        .await
        .map(|p| crate::http::scrub(&p, &secrets))
        .map_err(clean);
    let info = match &pong {
        Ok(_) => Some(client.key_info().await.map_err(clean)),
        Err(_) => None,
    };
    let ok = pong.is_ok() && matches!(info, Some(Ok(_)));
    if json {
        print_json(&json!({
            "ok": ok,
            "base_url": ss.base_url(),
            "pong": pong.as_ref().ok(),
            "key": info.as_ref().and_then(|i| i.as_ref().ok()),
            "error": pong.as_ref().err()
                .or_else(|| info.as_ref().and_then(|i| i.as_ref().err())),
        }))?;
    } else {
        match (&pong, &info) {
            (Ok(p), Some(Ok(k))) => {
                outln!(
                    "Reports API at {}: key and secret accepted (server time {p})",
                    ss.base_url()
                );
                for (name, v) in k {
                    let shown = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    outln!("  {name}: {}", crate::text::clip(&shown, 80));
                }
            }
            (Err(e), _) => eprintln!("test/ping failed: {e}"),
            (Ok(_), Some(Err(e))) => eprintln!("key/info failed: {e}"),
            (Ok(_), None) => {}
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::error::EXIT_FAILURE)
    })
}

async fn update_schema(app: &App, url: Option<&str>) -> Result<ExitCode, CliError> {
    let url = url
        .map(str::to_string)
        .or_else(|| {
            app.config
                .as_ref()
                .and_then(crate::sources::table::<ShadowserverConfig>)
                .map(|s| s.schema_url().to_string())
        })
        .unwrap_or_else(|| schema::DEFAULT_SCHEMA_URL.to_string());
    let http = app.http()?;
    let body = match http
        .get(&url, HeaderMap::new(), None, &[])
        .await
        .map_err(|e| CliError::failure(format!("downloading the schema failed: {e}")))?
    {
        Fetched::Body { body, .. } => body,
        Fetched::NotModified => return Err(CliError::failure(format!("{url}: unexpected 304"))),
    };
    let entries = schema::parse_schema(&body)
        .map_err(|e| CliError::failure(format!("{url}: {e}; the schema in use is unchanged")))?;
    let bundled = Schema::bundled();
    let mut added: Vec<&String> = entries
        .keys()
        .filter(|k| bundled.entry(k).is_none())
        .collect();
    added.sort();
    let mut removed: Vec<&str> = bundled
        .types()
        .into_iter()
        .filter(|t| !entries.contains_key(*t))
        .collect();
    removed.sort();
    let store = app.open_store()?;
    let saved = body.clone();
    crate::store::bridge::blocking(&store, move |s| {
        s.state_put(SCHEMA_STATE_KEY, Some(&saved))?;
        s.flush()
    })
    .await?;
    outln!(
        "saved the schema from {url}: {} report types ({} new since the bundled schema{}{}; {} gone)",
        entries.len(),
        added.len(),
        if added.is_empty() { "" } else { ": " },
        added
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        removed.len()
    );
    Ok(ExitCode::SUCCESS)
}

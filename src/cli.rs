//! Command-line interface: argument parsing (clap) and dispatch to `commands/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::commands;
use crate::error::CliError;

/// outwatch collects what the internet's free watchers (Shadowserver, Have I Been Pwned, Google
/// Safe Browsing, abuse.ch, Spamhaus, Microsoft SNDS) report about YOUR networks, domains and
/// mail addresses into one store, one lookup and one daily digest.
///
/// Start with `outwatch demo` to see it work without any keys, then copy config.example.toml
/// to outwatch.toml, fill in your ASNs, prefixes and domains, and run `outwatch check-config`.
#[derive(Debug, Parser)]
#[command(name = "outwatch", version, about, long_about, after_help = EXIT_HELP)]
pub struct Cli {
    /// Config file [default: the first of ./outwatch.toml,
    /// $XDG_CONFIG_HOME/outwatch/outwatch.toml (~/.config/...), /etc/outwatch/outwatch.toml]
    #[arg(long, global = true, env = "OUTWATCH_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Store folder; overrides `[store] path`
    #[arg(long, global = true, env = "OUTWATCH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

const EXIT_HELP: &str = "\
Exit codes: 0 success (also a lookup that finds nothing), 1 the work failed (a source, the
digest, an import), 2 bad usage or malformed query, 3 config missing or invalid, 4 store
unavailable.";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and print the resolved settings (secrets redacted)
    CheckConfig(JsonArg),
    /// Show what is ours: prefixes per ASN, extra prefixes, domains
    ///
    /// ASNs are resolved to their announced prefixes through RIPEstat once a day; the result is
    /// cached in the store and kept when a refresh fails.
    Scope(ScopeArgs),
    /// Everything known about an IP, a prefix, a domain, a mail address or an ASN
    ///
    /// Examples: `outwatch lookup 192.0.2.7`, `outwatch lookup 192.0.2.0/24`,
    /// `outwatch lookup example.org` (subdomains included), `outwatch lookup alice@example.org`,
    /// `outwatch lookup AS64496`.
    Lookup(LookupArgs),
    /// Run sources once now and store what they report
    Fetch(FetchArgs),
    /// Import files that arrived by mail or were downloaded by hand
    Import(ImportArgs),
    /// Write every finding with its history as JSON lines (a backup that survives upgrades)
    Export(ExportArgs),
    /// Read findings back from an `export` file
    Restore(RestoreArgs),
    /// Run the scheduler: every source on its schedule, the daily digest, the scope refresh
    Run(RunArgs),
    /// Feed health: last success, last error and state of every source
    Status(JsonArg),
    /// Build the digest (new, still open, resolved, feed health) and send or preview it
    Digest(DigestArgs),
    /// See outwatch work without keys: replay recorded feeds from a local server into a
    /// temporary store and write the digest to files
    Demo(DemoArgs),
    /// Shadowserver helpers: check credentials, refresh the bundled report schema
    Shadowserver(ShadowserverArgs),
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Fetch the ASN prefixes from RIPEstat now, even if the cache is fresh
    #[arg(long)]
    pub refresh: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// IP, CIDR prefix, domain, mail address or ASN (AS64496)
    pub query: String,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
    /// Only findings seen on or after this date (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Include resolved findings
    #[arg(long)]
    pub all: bool,
    /// Show at most N findings
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Only this source (repeatable); all enabled sources by default
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Which provider's files these are
    #[arg(value_enum)]
    pub source: ImportSource,
    /// Files (.csv, .csv.gz, .zip, .eml; a folder for safebrowsing)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Shadowserver report type, when the file name does not tell it
    #[arg(long = "type", value_name = "TYPE")]
    pub report_type: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Providers whose files `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportSource {
    Shadowserver,
    Hibp,
    Safebrowsing,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// JSON lines, one finding per line (the only format, kept explicit for scripts)
    #[arg(long, default_value_t = true)]
    pub jsonl: bool,
    /// Write to this file instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `outwatch export --jsonl` (`-` for stdin)
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run every enabled source once, then the digest, then exit (for system cron)
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Render without sending and without marking anything as reported
    #[arg(long, conflicts_with = "send")]
    pub preview: bool,
    /// Send now (the default when neither flag is given)
    #[arg(long)]
    pub send: bool,
    /// With --preview: write the HTML part to this file
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// With --preview: write the text part to this file
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's store and digest files [default: a new temporary folder]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShadowserverArgs {
    #[command(subcommand)]
    pub command: ShadowserverCommand,
}

#[derive(Debug, Subcommand)]
pub enum ShadowserverCommand {
    /// Check the API key and secret (`test/ping`, `key/info`)
    Ping(JsonArg),
    /// Download the current report schema and save it as the local override
    UpdateSchema {
        /// Schema URL [default: Shadowserver's public reports.json]
        #[arg(long)]
        url: Option<String>,
    },
}

/// Parses the command line, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_format, cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is_stdout_closed() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::text::Clean(&e.message));
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let app = App::new(cli.config.as_deref(), cli.data_dir.as_deref())?;
    // check-config prints the config's warnings itself; every other command logs them once.
    if !matches!(cli.command, Command::CheckConfig(_))
        && let Some(c) = &app.config
    {
        for w in &c.warnings {
            tracing::warn!("{}: {}", app.config_path.display(), w);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        match cli.command {
            Command::CheckConfig(a) => commands::check_config::run(&app, a.json),
            Command::Scope(a) => commands::scope::run(&app, &a).await,
            Command::Lookup(a) => commands::lookup::run(&app, &a),
            Command::Fetch(a) => commands::fetch::run(&app, &a).await,
            Command::Import(a) => commands::import::run(&app, &a).await,
            Command::Export(a) => commands::export::export(&app, &a),
            Command::Restore(a) => commands::export::restore(&app, &a),
            Command::Run(a) => commands::run::run(&app, &a).await,
            Command::Status(a) => commands::status::run(&app, a.json),
            Command::Digest(a) => commands::digest::run(&app, &a).await,
            Command::Demo(a) => commands::demo::run(&app, &a).await,
            Command::Shadowserver(a) => commands::shadowserver::run(&app, &a).await,
        }
    })
}

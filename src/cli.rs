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
#[command(name = "outwatch", version, about, long_about, after_help = exit_help())]
pub struct Cli {
    /// Config file [default: the first of ./outwatch.toml,
    /// $XDG_CONFIG_HOME/outwatch/outwatch.toml (~/.config/...), /etc/outwatch/outwatch.toml]
    #[arg(long, global = true, env = "OUTWATCH_CONFIG", hide_env_values = true, value_name = "PATH", value_hint = clap::ValueHint::FilePath, help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// Store folder; overrides `[store] path`
    #[arg(long, global = true, env = "OUTWATCH_DATA_DIR", hide_env_values = true, value_name = "DIR", value_hint = clap::ValueHint::DirPath, help_heading = GLOBAL)]
    pub data_dir: Option<PathBuf>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL)]
    pub log_format: LogFormat,

    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The heading global options are listed under, apart from each command's own.
const GLOBAL: &str = "Global options";

/// The exit codes, one a line, for `--help` (the manual page lists the same table).
fn exit_help() -> String {
    let mut s = String::from("Exit codes:");
    for (code, meaning) in crate::error::EXIT_CODES {
        s.push_str(&format!("\n  {code}  {meaning}"));
    }
    s
}

/// Log output format (it lives with the logging set-up).
pub use crate::logging::LogFormat;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and print the resolved settings (secrets redacted)
    #[command(
        after_help = "Examples:\n  outwatch check-config          # ./outwatch.toml, or the first found\n  outwatch --config /etc/outwatch/outwatch.toml check-config\n  outwatch check-config --json | jq .warnings"
    )]
    CheckConfig(JsonArg),
    /// Show what is ours: prefixes per ASN, extra prefixes, domains
    ///
    /// ASNs are resolved to their announced prefixes through RIPEstat once a day; the result is
    /// cached in the store and kept when a refresh fails.
    #[command(
        after_help = "Examples:\n  outwatch scope                 # what is ours (the cached snapshot)\n  outwatch scope --refresh       # ask RIPEstat for the ASNs' prefixes now\n  outwatch scope --json | jq '.asns[].prefixes'"
    )]
    Scope(ScopeArgs),
    /// Everything known about an IP, a prefix, a domain, a mail address or an ASN
    ///
    /// Findings are sorted by severity, then newest first; an ASN includes the findings inside
    /// the prefixes it announces (from the cached scope snapshot).
    #[command(
        after_help = "Examples:\n  outwatch lookup 192.0.2.7\n  outwatch lookup 192.0.2.0/24 --since 2026-11-01\n  outwatch lookup example.org    # subdomains included\n  outwatch lookup alice@example.org\n  outwatch lookup AS64496 --all  # its prefixes; resolved findings too\n  outwatch lookup 192.0.2.7 --json | jq '.findings[].severity'"
    )]
    Lookup(LookupArgs),
    /// Run sources once now and store what they report
    #[command(
        after_help = "Examples:\n  outwatch fetch                 # every enabled source once\n  outwatch fetch --source urlhaus --source feodotracker\n  outwatch fetch --json"
    )]
    Fetch(FetchArgs),
    /// Import files that arrived by mail or were downloaded by hand
    #[command(
        after_help = "Examples:\n  outwatch import shadowserver 2026-11-30-scan_rdp-example-org.csv\n  outwatch import shadowserver report.csv --type scan_rdp\n  outwatch import shadowserver mails/*.eml --json\n  outwatch import hibp notification.eml\n  outwatch import safebrowsing alerts-folder/\n  outwatch import cymru cap-2026-11-30.txt"
    )]
    Import(ImportArgs),
    /// Check the network's own connection logs (Zeek conn.log, nfdump CSV) against the C2 lists and the
    /// meta-indicators; store what stands out (source `flows`)
    ///
    /// Findings: contact with a listed C2, servers of a zone with `outbound = false` talking
    /// out, long connections, a protocol on a port it does not belong on, top talkers per
    /// service. `[flows]` in the config sets what is ours, zones, teams and thresholds.
    #[command(
        after_help = "Examples:\n  outwatch flows /var/log/zeek/2026-11-30/conn.*.log.gz\n  outwatch flows conn.log --json | jq .by_feed\n  outwatch lookup 10.0.0.5       # what flows found about a host"
    )]
    Flows(FlowsArgs),
    /// Write every finding with its history as JSON lines (a backup that survives upgrades)
    #[command(
        after_help = "Examples:\n  outwatch export --jsonl -o backup.jsonl\n  outwatch export | gzip > backup.jsonl.gz"
    )]
    Export(ExportArgs),
    /// Read findings back from an `export` file
    #[command(
        after_help = "Examples:\n  outwatch --data-dir new-store restore backup.jsonl\n  zcat backup.jsonl.gz | outwatch restore -"
    )]
    Restore(RestoreArgs),
    /// Run the scheduler: every source on its schedule, the daily digest, the scope refresh
    #[command(
        after_help = "Examples:\n  outwatch run                   # the daemon (systemd: docs/daemon.md)\n  outwatch -v run                # with a log line per fetch\n  outwatch run --once            # one round, for system cron"
    )]
    Run(RunArgs),
    /// Feed health: last success, last error and state of every source
    #[command(
        after_help = "Examples:\n  outwatch status                # exit 0 only when every feed is healthy\n  outwatch status --json | jq '.sources[] | select(.state != \"ok\")'"
    )]
    Status(JsonArg),
    /// Build the digest (new, still open, resolved, feed health) and send or preview it
    #[command(
        after_help = "Examples:\n  outwatch digest --preview      # subject and text; sends nothing\n  outwatch digest --preview --html digest.html --text digest.txt\n  outwatch digest                # build and deliver now"
    )]
    Digest(DigestArgs),
    /// Tell the owners of our addresses (contacts) about the findings on what they own
    #[command(
        after_help = "Examples:\n  outwatch notify --preview           # what would go to whom\n  outwatch notify --test-to me@example.org\n  outwatch notify --send              # send, mark as sent\n\n--preview and --test-to send nothing to the contacts and mark nothing.\nContacts, routing and policies: docs/notify.md."
    )]
    Notify(crate::commands::notify::NotifyArgs),
    /// See outwatch work without keys: replay recorded feeds from a local server into a
    /// temporary store and write the digest to files
    #[command(
        after_help = "Examples:\n  outwatch demo                  # into a new temporary folder\n  outwatch demo --out demo && xdg-open demo/digest.html"
    )]
    Demo(DemoArgs),
    /// Print a shell completion script on stdout
    #[command(
        after_help = "Examples:\n  outwatch completions bash > /etc/bash_completion.d/outwatch\n  outwatch completions zsh > ~/.zfunc/_outwatch\n  outwatch completions fish > ~/.config/fish/completions/outwatch.fish"
    )]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout
    #[command(
        after_help = "Examples:\n  outwatch manpage > /usr/local/share/man/man1/outwatch.1\n  outwatch manpage | man -l -"
    )]
    Manpage,
    /// Shadowserver helpers: check credentials, refresh the bundled report schema
    #[command(
        after_help = "Examples:\n  outwatch shadowserver ping\n  outwatch shadowserver update-schema"
    )]
    Shadowserver(ShadowserverArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Print one JSON object whose `findings` array is written as findings are found
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one finding per line as JSON (JSON lines), as they are found
    #[arg(long)]
    pub jsonl: bool,
    /// Only findings seen on or after this date (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Include resolved findings
    #[arg(long)]
    pub all: bool,
    /// Show the first N findings, most severe then newest (the table: 50 unless given;
    /// --json/--jsonl: all unless given)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Only this source or list feed (repeatable); all enabled sources by default
    #[arg(long = "source", value_name = "NAME", value_parser = Names::sources(), hide_possible_values = true)]
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
    /// Files (Shadowserver .csv, .csv.gz, .zip, .eml; HIBP and Safe Browsing .eml or a folder
    /// of them; Cymru CAP text files)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Shadowserver report type, when the file name does not tell it
    #[arg(long = "type", value_name = "TYPE", value_parser = Names::report_types(), hide_possible_values = true)]
    pub report_type: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// A name option whose known values shell completion offers (`fetch --source <TAB>`,
/// `import shadowserver --type <TAB>`) while any value is taken: the command checks it and
/// names the ones that exist (a feed of `[feeds] dir`, a report type newer than the bundled
/// schema).
#[derive(Debug, Clone)]
pub struct Names {
    kind: NameKind,
    /// Names known only from the config (its own list feeds).
    extra: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum NameKind {
    Sources,
    ReportTypes,
}

impl Names {
    /// Every source and built-in list feed.
    pub fn sources() -> Self {
        Names {
            kind: NameKind::Sources,
            extra: Vec::new(),
        }
    }
    /// Every source and list feed, with the feeds that `cfg` adds (`[feeds] dir`).
    pub fn sources_of(cfg: &crate::config::Config) -> Self {
        Names {
            kind: NameKind::Sources,
            extra: crate::sources::lists::known_feed_names(cfg),
        }
    }
    /// The report types of the bundled Shadowserver schema.
    pub fn report_types() -> Self {
        Names {
            kind: NameKind::ReportTypes,
            extra: Vec::new(),
        }
    }

    fn values(&self) -> Vec<clap::builder::PossibleValue> {
        use clap::builder::PossibleValue;
        match self.kind {
            NameKind::Sources => {
                let feeds = crate::sources::lists::known_feed_names(&Default::default());
                let mut out: Vec<PossibleValue> = crate::sources::registry::single_names()
                    .into_iter()
                    .map(|n| PossibleValue::new(n).help("source"))
                    .collect();
                for f in feeds.iter().chain(&self.extra) {
                    if !out.iter().any(|v| v.get_name() == f) {
                        out.push(PossibleValue::new(f.clone()).help("list feed"));
                    }
                }
                out
            }
            NameKind::ReportTypes => crate::sources::shadowserver::schema::Schema::bundled()
                .types()
                .into_iter()
                .map(|t| PossibleValue::new(t.to_string()))
                .collect(),
        }
    }
}

impl clap::builder::TypedValueParser for Names {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(self.values().into_iter()))
    }
}

/// Providers whose files `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportSource {
    /// Shadowserver reports (.csv, .csv.gz, .zip) or the mails that carry them
    Shadowserver,
    /// Have I Been Pwned domain-notification mails
    Hibp,
    /// Safe Browsing "Alerts for Network Administrators" mails
    Safebrowsing,
    /// Team Cymru CAP daily files (`category|address|asn|timestamp|information|asninfo`)
    Cymru,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Connection logs, plain or .gz: Zeek conn.log (TSV or JSON lines) or `nfdump -o csv`
    /// output (format found from the content), or folders of them
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
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
    #[command(
        after_help = "Examples:\n  outwatch shadowserver ping\n  outwatch shadowserver ping --json"
    )]
    Ping(JsonArg),
    /// Download the current report schema and save it as the local override
    #[command(
        after_help = "Examples:\n  outwatch shadowserver update-schema\n  outwatch shadowserver update-schema --url https://example.org/reports.json"
    )]
    UpdateSchema {
        /// Schema URL [default: Shadowserver's public reports.json]
        #[arg(long)]
        url: Option<String>,
    },
}

/// Parses the command line, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // fetch, run --once, import, restore and demo print each failure and rejected row
    // themselves.
    let reports_itself = matches!(
        &cli.command,
        Command::Fetch(_)
            | Command::Run(RunArgs { once: true })
            | Command::Import(_)
            | Command::Restore(_)
            | Command::Demo(_)
    );
    crate::logging::init_for(cli.log_format, cli.verbose, reports_itself);
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is_stdout_closed() => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", error_text(&e.message));
            ExitCode::from(e.code)
        }
    }
}

/// What stderr shows for an error: `error: ` and its first line, then its further lines (a
/// config error's quoted line and caret) as they are, indented, each sanitised on its own, so
/// a newline is a real line break and a control character still shows as `\u{1b}`.
pub fn error_text(message: &str) -> String {
    let mut lines = message.trim_end().lines();
    let mut out = format!(
        "error: {}\n",
        crate::text::sanitize(lines.next().unwrap_or(""))
    );
    for l in lines {
        let indent = if l.starts_with(' ') { "" } else { "  " };
        out.push_str(&format!("{indent}{}\n", crate::text::sanitize(l)));
    }
    out
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    // Commands that need neither a config nor a store.
    match &cli.command {
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // The feeds of this config's `[feeds] dir` too, when a config is found and valid.
            if let Ok(App {
                config: Some(cfg), ..
            }) = App::new(cli.config.as_deref(), cli.data_dir.as_deref())
            {
                cmd = cmd.mut_subcommand("fetch", |c| {
                    c.mut_arg("sources", |a| a.value_parser(Names::sources_of(&cfg)))
                });
            }
            let mut buf = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "outwatch", &mut buf);
            crate::output::write_all(&buf)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            crate::output::write_all(commands::manpage::render(cmd).as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    // The demo brings its own config: the user's (perhaps broken) one is not read.
    if let Command::Demo(a) = &cli.command {
        return rt.block_on(commands::demo::run(a));
    }
    let app = App::new(cli.config.as_deref(), cli.data_dir.as_deref())?;
    // check-config prints the config's warnings itself; every other command logs them once.
    if !matches!(cli.command, Command::CheckConfig(_))
        && let Some(c) = &app.config
    {
        for w in &c.warnings {
            tracing::warn!("{}: {}", app.config_path.display(), w);
        }
    }
    rt.block_on(async move {
        match cli.command {
            Command::CheckConfig(a) => commands::check_config::run(&app, a.json),
            Command::Scope(a) => commands::scope::run(&app, &a).await,
            Command::Lookup(a) => commands::lookup::run(&app, &a),
            Command::Fetch(a) => commands::fetch::run(&app, &a).await,
            Command::Import(a) => commands::import::run(&app, &a).await,
            Command::Flows(a) => commands::flows::run(&app, &a),
            Command::Export(a) => commands::export::export(&app, &a),
            Command::Restore(a) => commands::export::restore(&app, &a),
            Command::Run(a) => commands::run::run(&app, &a).await,
            Command::Status(a) => commands::status::run(&app, a.json),
            Command::Digest(a) => commands::digest::run(&app, &a).await,
            Command::Notify(a) => commands::notify::run(&app, &a).await,
            Command::Shadowserver(a) => commands::shadowserver::run(&app, &a).await,
            Command::Completions(_) | Command::Manpage | Command::Demo(_) => {
                unreachable!("handled above")
            }
        }
    })
}

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
    /// Everything known about an IP, a prefix, a domain, a URL, a mail address or an ASN
    ///
    /// Findings are sorted by severity, then newest first. What a table prints can be pasted
    /// back: `192.0.2.7:623` and `[2001:db8::20]:443` keep that port's findings, a URL finds
    /// those about its host. An ASN finds the findings that carry it and those inside the
    /// prefixes it announces (from the cached scope snapshot). `--since`/`--until` are about
    /// when the provider saw a finding, `--stored-since`/`--stored-until` about when outwatch
    /// stored it.
    #[command(
        after_help = "Examples:\n  outwatch lookup 192.0.2.7\n  outwatch lookup 198.51.100.45:623\n  outwatch lookup https://example.org/login\n  outwatch lookup 192.0.2.0/24 --since 2026-11-01\n  outwatch lookup example.org    # subdomains included\n  outwatch lookup alice@example.org\n  outwatch lookup AS64496 --all  # its prefixes; resolved findings too\n  outwatch lookup 192.0.2.7 --json | jq '.findings[].severity'"
    )]
    Lookup(LookupArgs),
    /// The worklist: the findings to work on, filtered and ranked (new and open unless told)
    ///
    /// Flags narrow the list; a flag given twice (or, for status, severity, ASN and prefix, a
    /// comma list: `--severity high,critical`) means either value; different flags must all
    /// hold. `--since`/`--until` are
    /// about when the provider saw a finding (its own time, else when outwatch stored it);
    /// `--stored-since`/`--stored-until` about when outwatch last stored it. A date is its
    /// midnight UTC; since is inclusive, until exclusive. The digest prints the exact `outwatch
    /// list` command of what it leaves out. Nothing found is a success (exit 0), as for lookup.
    #[command(after_help = LIST_EXAMPLES)]
    List(Box<ListArgs>),
    /// Run sources once now and store what they report
    ///
    /// On a store shared by several nodes (PostgreSQL), a source another node is running right
    /// now is skipped (named on stderr, exit code 5 when nothing failed): its data arrives
    /// through that node. `--wait` waits for it instead, up to the time given.
    #[command(
        after_help = "Examples:\n  outwatch fetch                 # every enabled source once\n  outwatch fetch --source urlhaus --source feodotracker\n  outwatch fetch --json\n  outwatch fetch --wait 2m       # wait for a source another node runs"
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
    /// Copy the store into another backend: PostgreSQL (`postgres://...`) or a sled folder
    #[command(
        long_about = "Copy the store named by the config (or --data-dir) into another backend: a \
                      PostgreSQL database (`--to postgres://user@host/db`, the password from \
                      ~/.pgpass or $PGPASSFILE rather than the command line) or a new sled \
                      folder (`--to DIR`). Findings are streamed as one all-or-nothing unit, \
                      then the run log and the state; the counts of both stores are compared \
                      at the end. The target must be empty. Stop the daemon first; point \
                      `[store]` at the new store afterwards.",
        after_help = "Examples:\n  outwatch migrate --to postgres://outwatch@db.example.org/outwatch\n  outwatch migrate --to postgres://outwatch@db/outwatch --to-schema cert\n  outwatch --config pg.toml migrate --to ./outwatch-data.sled   # and back"
    )]
    Migrate(MigrateArgs),
    /// Run the scheduler: every source on its schedule, the daily digest, the scope refresh
    #[command(
        after_help = "Examples:\n  outwatch run                   # the daemon (systemd: docs/daemon.md)\n  outwatch -v run                # with a log line per fetch\n  outwatch run --once            # one round, for system cron"
    )]
    Run(RunArgs),
    /// Feed health: last success, last error and state of every source
    #[command(
        after_help = "Examples:\n  outwatch status                # exit 0 only when every feed is healthy\n  outwatch status --json | jq '.sources[] | select(.state != \"ok\")'\n  outwatch status --prometheus > f.tmp; [ $? -le 1 ] && mv f.tmp f.prom"
    )]
    Status(StatusArgs),
    /// Show the digest (new, still open, resolved, feed health) as it would be sent now;
    /// `--send` delivers it and marks its new findings reported
    #[command(
        long_about = "Show the digest (new, still open, resolved, feed health) as it would be sent now.\n\nWithout --send nothing is sent and nothing is marked: run it as often as you like. --send delivers it (SMTP, or an .eml file under <data dir>/digests/ without [smtp]) and, once delivered, marks its new findings reported, so the next digest counts from now. The daemon (outwatch run) sends on [digest] schedule by itself.",
        after_help = "Examples:\n  outwatch digest                # show it; sends and marks nothing\n  outwatch digest --html digest.html --text digest.txt\n  outwatch digest --send         # deliver it, mark new findings reported"
    )]
    Digest(DigestArgs),
    /// Tell the owners of our addresses (contacts) about the findings on what they own
    #[command(
        after_help = "Examples:\n  outwatch notify --preview           # what would go to whom\n  outwatch notify --test-to me@example.org\n  outwatch notify --send              # send, mark as sent\n\n--preview and --test-to send nothing to the contacts and mark nothing.\nOn a store shared by several nodes, --send exits 5 and sends nothing while\nanother node sends the notifications.\nContacts, routing and policies: docs/notify.md."
    )]
    Notify(crate::commands::notify::NotifyArgs),
    /// See outwatch work without keys: replay recorded feeds from a local server into a
    /// temporary store and write the digest to files
    #[command(
        after_help = "Examples:\n  outwatch demo                  # into a new temporary folder\n  outwatch demo --out demo && xdg-open demo/digest.html"
    )]
    Demo(DemoArgs),
    /// Acknowledge findings: still open, but out of the digest's "act on these first"
    ///
    /// TARGET is a finding's fingerprint (or its first 6+ characters, as `lookup --json`
    /// prints it) or a lookup query (an address, a prefix, a domain, a mail address, AS64496):
    /// a query acts on every open finding it matches. Kept in the finding's history with who,
    /// when and why; `lookup` shows it. An ack holds until it is taken back (`--undo`), the
    /// finding is resolved, or it reopens.
    #[command(
        after_help = "Examples:\n  outwatch ack 192.0.2.7 --reason \"our honeypot\" --dry-run\n  outwatch ack 3f9c2a1b --reason \"ticket INC-4711\"\n  outwatch ack 192.0.2.0/24 --reason \"lab network\" --by alice\n  outwatch ack 3f9c2a1b --undo"
    )]
    Ack(AckArgs),
    /// Resolve findings by hand (they reopen as usual when their source reports them again)
    ///
    /// TARGET as for `ack`: a fingerprint (start) or a lookup query (every open finding it
    /// matches). Kept in the finding's history with who, when and why.
    #[command(
        after_help = "Examples:\n  outwatch resolve 3f9c2a1b --reason \"patched, verified with nmap\"\n  outwatch resolve 198.51.100.0/28 --reason \"decommissioned\" --dry-run"
    )]
    Resolve(ResolveArgs),
    /// Add a note to findings (kept in their history with its author and time)
    #[command(
        after_help = "Examples:\n  outwatch note 3f9c2a1b \"customer informed, ticket INC-4711\"\n  outwatch note mail.example.org \"moved to the new host on Friday\" --by bob"
    )]
    Note(NoteArgs),
    /// Suppression rules: findings a team chose not to hear about until a date
    ///
    /// A suppressed finding keeps updating in the store but stays out of the digest; `lookup`
    /// shows it marked, with the rule. Rules also come from `[[suppress]]` tables in the
    /// config (for teams that keep it in git).
    #[command(
        after_help = "Examples:\n  outwatch suppress add --cidr 192.0.2.0/24 --until 30d --reason honeypot\n  outwatch suppress add --asn 64496 --port 3389 --until 2027-01-31 --reason x\n  outwatch suppress list\n  outwatch suppress remove 3"
    )]
    Suppress(SuppressArgs),
    /// Serve the web view and its JSON API (`[web] listen`) on a store without the daemon
    ///
    /// The daemon (`outwatch run`) serves it itself when `[web] listen` is set. A loopback
    /// address needs no token; any other needs `[[web.tokens]]` (docs/web.md), else this
    /// refuses to start.
    #[command(
        after_help = "Examples:\n  outwatch serve                        # on [web] listen\n  outwatch serve --listen 127.0.0.1:8080\n  outwatch serve --hash-token < token.txt   # the sha256 for [[web.tokens]]"
    )]
    Serve(crate::commands::serve::ServeArgs),
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
pub struct StatusArgs {
    /// Print JSON instead of text
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Print the metrics in the Prometheus text format (docs/metrics.md), for node_exporter's
    /// textfile collector: write to a temporary file and rename it on exit 0 or 1, so a scrape
    /// never reads half a file
    #[arg(long)]
    pub prometheus: bool,
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
    /// IP, IP:port, [IPv6]:port, CIDR prefix, domain, URL, mail address or ASN (AS64496)
    pub query: String,
    /// Print one JSON object whose `findings` array is written as findings are found
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one finding per line as JSON (JSON lines), as they are found
    #[arg(long)]
    pub jsonl: bool,
    /// Only findings the provider saw on or after this date (its time, else when stored;
    /// YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only findings the provider saw before this date
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only findings outwatch last stored on or after this date
    #[arg(long, value_name = "DATE")]
    pub stored_since: Option<String>,
    /// Only findings outwatch last stored before this date
    #[arg(long, value_name = "DATE")]
    pub stored_until: Option<String>,
    /// Include resolved findings
    #[arg(long)]
    pub all: bool,
    /// Show the first N findings, most severe then newest (the table: 50 unless given;
    /// --json/--jsonl: all unless given)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Who acts (`--by`), whether only to show what would change, and the output.
#[derive(Debug, Args)]
pub struct TriageCommon {
    /// Who is acting, as recorded [default: $USER, else $LOGNAME]
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,
    /// Show what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// A fingerprint (or its first 6+ characters), or a lookup query
    pub target: String,
    /// Why (kept in the history)
    #[arg(long, value_name = "TEXT", required_unless_present = "undo")]
    pub reason: Option<String>,
    /// Take an acknowledgement back
    #[arg(long)]
    pub undo: bool,
    #[command(flatten)]
    pub common: TriageCommon,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// A fingerprint (or its first 6+ characters), or a lookup query
    pub target: String,
    /// Why (kept in the history)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: TriageCommon,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    /// A fingerprint (or its first 6+ characters), or a lookup query
    pub target: String,
    /// The note
    pub text: String,
    #[command(flatten)]
    pub common: TriageCommon,
}

#[derive(Debug, Args)]
pub struct SuppressArgs {
    #[command(subcommand)]
    pub command: SuppressCommand,
}

#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Add a rule: one of --cidr, --asn, --domain, narrowed by the optional filters
    #[command(
        after_help = "--until takes YYYY-MM-DD (through that day, UTC), an RFC 3339 time, or a duration from now (30d, 2weeks).\n\nExamples:\n  outwatch suppress add --cidr 192.0.2.0/24 --until 2027-01-31 --reason lab\n  outwatch suppress add --domain scan.example.org --until 90d --reason scanner\n  outwatch suppress add --asn 64496 --feed scan_rdp --until 30d --reason x"
    )]
    Add(SuppressAddArgs),
    /// List the rules (the config's and the store's), expired ones marked
    #[command(after_help = "Examples:\n  outwatch suppress list\n  outwatch suppress list --json")]
    List(JsonArg),
    /// Remove a rule added with `suppress add` (config rules are edited in the config)
    #[command(after_help = "Examples:\n  outwatch suppress remove 3")]
    Remove(SuppressRemoveArgs),
}

#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("what").required(true).args(["cidr", "asn", "domain"]),
    override_usage = "outwatch suppress add [OPTIONS] --until <DATE> --reason <TEXT>\n       \
                      with one of --cidr <PREFIX>, --asn <ASN>, --domain <DOMAIN>"
)]
pub struct SuppressAddArgs {
    /// Findings whose address or network lies in (or overlaps) this prefix
    #[arg(long, value_name = "PREFIX")]
    pub cidr: Option<String>,
    /// Findings whose ASN is this one (64496 or AS64496)
    #[arg(long, value_name = "ASN")]
    pub asn: Option<String>,
    /// Findings about this domain or its subdomains (host, URL, mail address)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Only findings of this source
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Only findings of this feed (report type, list)
    #[arg(long, value_name = "NAME")]
    pub feed: Option<String>,
    /// Only findings with this classification identifier (open-rdp, c2-server...)
    #[arg(long, value_name = "ID")]
    pub identifier: Option<String>,
    /// Only findings on this port
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// When the rule ends: YYYY-MM-DD (through that day, UTC), an RFC 3339 time, or 30d
    #[arg(long, value_name = "DATE")]
    pub until: String,
    /// Why (kept with the rule)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who adds it [default: $USER, else $LOGNAME]
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SuppressRemoveArgs {
    /// The rule's id, as `suppress list` shows it
    pub id: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

const LIST_EXAMPLES: &str = "Examples:
  outwatch list                  # new and open findings, most urgent first
  outwatch list --severity high --status new --format csv > worklist.csv
  outwatch list --min-severity medium --since 2026-11-01 --sort time
  outwatch list --class malicious-code --prefix 192.0.2.0/24
  outwatch list --asn AS64496 --feed event4_sinkhole_http
  outwatch list --team servers --status all --format jsonl | jq .contact
  outwatch list --domain example.org --json | jq .total";

/// How `outwatch list` writes its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A table for people (the first --limit, 50 unless given)
    Table,
    /// Comma-separated values with a header, one row per finding (for a spreadsheet)
    Csv,
    /// One JSON object whose `findings` array is written as findings come
    Json,
    /// One finding per line as JSON (JSON lines)
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Life-cycle state: new, open, resolved or all [default: new,open]
    #[arg(long, value_name = "STATUS", value_delimiter = ',', value_parser = ["new", "open", "resolved", "all"])]
    pub status: Vec<String>,
    /// Severity: critical, high, medium, low or info (repeat or comma-separate for either)
    #[arg(long, value_name = "SEVERITY", value_delimiter = ',', value_parser = ["critical", "high", "medium", "low", "info"])]
    pub severity: Vec<String>,
    /// At least this severe
    #[arg(long, value_name = "SEVERITY", value_parser = ["critical", "high", "medium", "low", "info"])]
    pub min_severity: Option<String>,
    /// Source name (shadowserver, hibp, a list feed's name...)
    #[arg(long, value_name = "NAME", value_parser = Names::sources(), hide_possible_values = true)]
    pub source: Vec<String>,
    /// Feed within a source (a Shadowserver report type such as scan_rdp, a list's name)
    #[arg(long, value_name = "NAME")]
    pub feed: Vec<String>,
    /// Classification: taxonomy, taxonomy/type or taxonomy/type/identifier (`*` for any part,
    /// e.g. `*/c2-server`)
    #[arg(long, value_name = "TAX[/TYPE[/ID]]")]
    pub class: Vec<String>,
    /// Findings whose ASN is this one, or inside the prefixes it announces (AS64496)
    #[arg(long, value_name = "ASN")]
    pub asn: Vec<String>,
    /// Findings inside the prefixes of this `[[flows.teams]]`, `[[flows.zones]]` or
    /// `[[digest.routes]]` name
    #[arg(long, value_name = "NAME")]
    pub team: Vec<String>,
    /// Findings about an address in, or a network overlapping, this prefix
    #[arg(long, value_name = "CIDR")]
    pub prefix: Vec<String>,
    /// Findings about this domain or its subdomains (host names, mail addresses, URLs)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,
    /// Observed by the provider on or after (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Observed by the provider before (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Last stored by outwatch on or after
    #[arg(long, value_name = "DATE")]
    pub stored_since: Option<String>,
    /// Last stored by outwatch before
    #[arg(long, value_name = "DATE")]
    pub stored_until: Option<String>,
    /// Order: rank (severity, threat kind, open first, latest observation), severity, time
    /// (latest observation first) or address (numeric)
    #[arg(long, value_name = "ORDER", value_parser = ["rank", "severity", "time", "address"])]
    pub sort: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// The same as --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// At most N findings, the first by --sort (table: 50 unless given; csv, json, jsonl: all)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only findings a suppression rule covers (`outwatch suppress list`)
    #[arg(long, conflicts_with = "all")]
    pub suppressed: bool,
    /// Findings a suppression rule covers too (left out unless asked)
    #[arg(long)]
    pub all: bool,
    /// Only findings `outwatch notify` sent to a contact
    #[arg(long, conflicts_with = "not_notified")]
    pub notified: bool,
    /// Only findings `outwatch notify` has not sent to any contact
    #[arg(long)]
    pub not_notified: bool,
    /// Only findings no contact owns (`[[contacts]]`, the contacts file, a cached RIPE abuse
    /// contact)
    #[arg(long)]
    pub no_contact: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Only this source or list feed (repeatable); all enabled sources by default
    #[arg(long = "source", value_name = "NAME", value_parser = Names::sources(), hide_possible_values = true)]
    pub sources: Vec<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// On a shared (PostgreSQL) store: how long to wait for a source another node is running
    /// (e.g. `30s`, `5m`) before skipping it (exit code 5); by default it is skipped at once
    #[arg(long, value_name = "DURATION", value_parser = parse_wait, default_value = "0s")]
    pub wait: std::time::Duration,
}

/// A `--wait` duration (`humantime`: `30s`, `5m`, `1h`), at most a day.
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 5m)"))?;
    if d > std::time::Duration::from_secs(86_400) {
        return Err("at most a day (24h)".into());
    }
    Ok(d)
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
    /// On a shared (PostgreSQL) store: how long to wait while another node is writing this
    /// source (e.g. `30s`, `5m`) before giving up (exit code 5, nothing imported); by default
    /// it gives up at once
    #[arg(long, value_name = "DURATION", value_parser = parse_wait, default_value = "0s")]
    pub wait: std::time::Duration,
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
pub struct MigrateArgs {
    /// Where to copy to: `postgres://user@host:port/database`, or a folder for a sled store
    #[arg(long, value_name = "URL|DIR")]
    pub to: String,
    /// The PostgreSQL schema to create the tables in (default: the server's search_path)
    #[arg(long, value_name = "NAME")]
    pub to_schema: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
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
    /// With --once on a shared (PostgreSQL) store: how long to wait for a source, the
    /// notifications or the digest another node is running (e.g. `30s`) before skipping it
    /// (exit code 5); by default it is skipped at once
    #[arg(long, value_name = "DURATION", value_parser = parse_wait, default_value = "0s", requires = "once")]
    pub wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Only show it, send and mark nothing (what `digest` without --send does anyway)
    #[arg(long, conflicts_with = "send")]
    pub preview: bool,
    /// Deliver it now and mark its new findings reported
    #[arg(long)]
    pub send: bool,
    /// Write the HTML part to this file instead of printing the text part (not with --send)
    #[arg(long, value_name = "FILE", conflicts_with = "send")]
    pub html: Option<PathBuf>,
    /// Write the text part to this file instead of printing it (not with --send)
    #[arg(long, value_name = "FILE", conflicts_with = "send")]
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
            | Command::Run(RunArgs { once: true, .. })
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
                cmd = cmd.mut_subcommand("list", |c| {
                    c.mut_arg("source", |a| a.value_parser(Names::sources_of(&cfg)))
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
            Command::List(a) => commands::list::run(&app, &a),
            Command::Fetch(a) => commands::fetch::run(&app, &a).await,
            Command::Import(a) => commands::import::run(&app, &a).await,
            Command::Flows(a) => commands::flows::run(&app, &a),
            Command::Export(a) => commands::export::export(&app, &a),
            Command::Restore(a) => commands::export::restore(&app, &a),
            Command::Migrate(a) => commands::migrate::run(&app, &a),
            Command::Run(a) => commands::run::run(&app, &a).await,
            Command::Status(a) => commands::status::run(&app, &a),
            Command::Digest(a) => commands::digest::run(&app, &a).await,
            Command::Notify(a) => commands::notify::run(&app, &a).await,
            Command::Shadowserver(a) => commands::shadowserver::run(&app, &a).await,
            Command::Ack(a) => commands::triage::ack(&app, &a),
            Command::Resolve(a) => commands::triage::resolve(&app, &a),
            Command::Note(a) => commands::triage::note(&app, &a),
            Command::Suppress(a) => commands::suppress::run(&app, &a),
            Command::Serve(a) => commands::serve::run(&app, &a).await,
            Command::Completions(_) | Command::Manpage | Command::Demo(_) => {
                unreachable!("handled above")
            }
        }
    })
}

//! `outwatch manpage`: one manual page, outwatch(1), with every command and its options
//! (written from the clap definitions, so it cannot drift from `--help`), the examples, the
//! files, the environment and the exit status. It names no other page of ours: there is none.

use clap::{Arg, Command};
use roff::{Roff, bold, italic, roman};

use crate::error::EXIT_CODES;

/// The page as roff.
pub(crate) fn render(mut cmd: Command) -> String {
    cmd.build();
    let mut r = Roff::new();
    let version = format!("outwatch {}", env!("CARGO_PKG_VERSION"));
    r.control(
        "TH",
        ["OUTWATCH", "1", "", version.as_str(), "User Commands"],
    );
    // Left-aligned and never hyphenated: names, paths and variables stay whole.
    r.control("ad", ["l"]);
    r.control("nh", []);
    r.control("SH", ["NAME"]);
    r.text([roman(
        "outwatch - collect what the internet's free watchers report about your networks",
    )]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([
        bold("outwatch"),
        roman(" ["),
        italic("GLOBAL OPTIONS"),
        roman("] "),
        italic("COMMAND"),
        roman(" ["),
        italic("OPTIONS"),
        roman("] ["),
        italic("ARGUMENTS"),
        roman("]"),
    ]);
    r.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut r, &long_about(&cmd));
    r.control("SH", ["GLOBAL OPTIONS"]);
    r.text([roman(
        "Every command takes these, before or after its name.",
    )]);
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        option(&mut r, a);
    }
    r.control("SH", ["COMMANDS"]);
    for sub in commands(&cmd) {
        command(&mut r, sub);
    }
    r.control("SH", ["EXAMPLES"]);
    for sub in commands(&cmd) {
        examples(&mut r, sub);
    }
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_CODES {
        r.control("TP", []);
        r.text([bold(code.to_string())]);
        r.text([roman(meaning)]);
    }
    environment(&mut r);
    files(&mut r);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "README.md (set-up and every command), config.example.toml (every key of the \
         configuration, explained) and the docs/ folder (one page per provider, the daemon, the \
         digest, flows, triage) in the outwatch sources.",
    )]);
    r.render()
}

/// Every command a person types, in `--help` order: `lookup`, ..., `shadowserver ping`
/// (a command that only groups others is left out; `help` too).
fn commands(cmd: &Command) -> Vec<&Command> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        if sub.has_subcommands() {
            out.extend(commands(sub));
        } else {
            out.push(sub);
        }
    }
    out
}

fn long_about(cmd: &Command) -> String {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Text with blank lines between paragraphs.
fn paragraphs(r: &mut Roff, text: &str) {
    paragraphs_with(r, text, "PP");
}

/// Text with blank lines between paragraphs, each paragraph after the first started by
/// `break_with` (`PP`, or `IP` inside a tagged item, which keeps its indentation).
fn paragraphs_with(r: &mut Roff, text: &str, break_with: &str) {
    for (i, p) in text.split("\n\n").enumerate() {
        if i > 0 {
            r.control(break_with, []);
        }
        r.text([roman(p.split_whitespace().collect::<Vec<_>>().join(" "))]);
    }
}

/// `.SS outwatch lookup [OPTIONS] <QUERY>`, what it does, its arguments and options.
fn command(r: &mut Roff, sub: &Command) {
    let usage = sub.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    r.control("SS", [usage]);
    paragraphs(r, &long_about(sub));
    let own: Vec<&Arg> = sub
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    for a in own {
        option(r, a);
    }
}

/// One argument or option as a tagged paragraph: its flags and value, its help, its default,
/// values and environment variable.
fn option(r: &mut Roff, a: &Arg) {
    let mut head = Vec::new();
    if let Some(s) = a.get_short() {
        head.push(bold(format!("-{s}")));
    }
    if let Some(l) = a.get_long() {
        if !head.is_empty() {
            head.push(roman(", "));
        }
        head.push(bold(format!("--{l}")));
    }
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values()) || a.is_positional();
    if takes_value {
        let names = a
            .get_value_names()
            .map(|v| {
                v.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
        if !head.is_empty() {
            head.push(roman(" "));
        }
        head.push(italic(names));
        if a.is_positional() && a.get_num_args().is_some_and(|n| n.max_values() > 1) {
            head.push(roman("..."));
        }
    }
    r.control("TP", []);
    r.text(head);
    let help = a
        .get_long_help()
        .or(a.get_help())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut notes = Vec::new();
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if takes_value && !defaults.is_empty() {
        notes.push(format!("Default: {}.", defaults.join(", ")));
    }
    let values: Vec<_> = if takes_value && !a.is_hide_possible_values_set() {
        a.get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .collect()
    } else {
        Vec::new()
    };
    let explained = values.iter().any(|v| v.get_help().is_some());
    if !values.is_empty() && !explained {
        let names: Vec<&str> = values.iter().map(|v| v.get_name()).collect();
        notes.push(format!("Values: {}.", names.join(", ")));
    }
    if let Some(env) = a.get_env() {
        notes.push(format!("Environment: {}.", env.to_string_lossy()));
    }
    let text = [help.trim_end().to_string(), notes.join(" ")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    paragraphs_with(r, &text, "IP");
    if explained {
        // One indented item per value with what it means.
        r.control("RS", []);
        for v in &values {
            r.control("TP", []);
            r.text([bold(v.get_name())]);
            r.text([roman(
                v.get_help().map(|h| h.to_string()).unwrap_or_default(),
            )]);
        }
        r.control("RE", []);
    }
}

/// The lines under `Examples:` in a command's `--help`, as a block.
fn examples(r: &mut Roff, sub: &Command) {
    let Some(after) = sub.get_after_help().map(|s| s.to_string()) else {
        return;
    };
    let Some((_, lines)) = after.split_once("Examples:") else {
        return;
    };
    r.control("PP", []);
    r.control("nf", []);
    r.control("RS", ["4"]);
    for l in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        r.text([roman(l)]);
    }
    r.control("RE", []);
    r.control("fi", []);
}

/// Tagged paragraphs: a bold name, then what it is.
fn tagged(r: &mut Roff, items: &[(&str, &str)]) {
    for (name, text) in items {
        r.control("TP", []);
        r.text([bold(*name)]);
        r.text([roman(*text)]);
    }
}

fn environment(r: &mut Roff) {
    r.control("SH", ["ENVIRONMENT"]);
    tagged(
        r,
        &[
            ("OUTWATCH_CONFIG", "The config file, as --config."),
            ("OUTWATCH_DATA_DIR", "The store folder, as --data-dir."),
            (
                "OUTWATCH_STORE_WAIT",
                "Seconds a write command waits for another command that holds the store (a \
                 fetch, run --once) before it gives up with exit 4; 1800 by default. Beside the \
                 daemon (outwatch run) nothing waits: the daemon does the writes.",
            ),
            (
                "XDG_CONFIG_HOME, HOME",
                "Where the per-user config is looked for \
                 ($XDG_CONFIG_HOME/outwatch/outwatch.toml, else ~/.config/outwatch/outwatch.toml).",
            ),
            (
                "the variables named by *_env keys",
                "Credentials are not written in the config but named there: api_key_env, \
                 secret_env, key_env, password_env and auth_key_env hold the name of the \
                 variable that holds the secret, e.g. api_key_env = \"HIBP_API_KEY\". \
                 config.example.toml names SHADOWSERVER_API_KEY, SHADOWSERVER_SECRET, \
                 HIBP_API_KEY, SAFEBROWSING_API_KEY, SNDS_KEY, CYMRU_CAP_PASSWORD, \
                 ABUSECH_AUTH_KEY and OUTWATCH_SMTP_PASSWORD. A named variable that is not set \
                 is an error of that source (check-config lists it).",
            ),
            (
                "USER, LOGNAME",
                "Who acts, as ack, resolve, note and suppress add record it when --by is not \
                 given (else the login name of the process's user).",
            ),
            (
                "NO_COLOR",
                "Set to anything but the empty string: no colour, on a terminal either \
                 (also in log lines).",
            ),
            (
                "CLICOLOR_FORCE",
                "Set to anything but 0: colour in tables even into a pipe or a file.",
            ),
            (
                "COLUMNS",
                "The width that tables, wrapped lines and --help are laid out for when \
                 stdout is not a terminal (a terminal's own width wins).",
            ),
            (
                "RUST_LOG",
                "Which log lines go to stderr, in tracing's filter syntax \
                 (e.g. outwatch=debug); overrides -v.",
            ),
            (
                "TMPDIR",
                "Where demo makes its folder when --out is not given.",
            ),
        ],
    );
}

fn files(r: &mut Roff) {
    r.control("SH", ["FILES"]);
    tagged(
        r,
        &[
            (
                "./outwatch.toml",
                "The config, when there is no --config or $OUTWATCH_CONFIG; else the first \
                 found of the next two.",
            ),
            (
                "$XDG_CONFIG_HOME/outwatch/outwatch.toml",
                "The per-user config (~/.config/outwatch/outwatch.toml when XDG_CONFIG_HOME \
                 is not set).",
            ),
            ("/etc/outwatch/outwatch.toml", "The system config."),
            (
                "./outwatch-data/",
                "The store folder (mode 0700) unless [store] path or --data-dir names another; \
                 what outwatch writes in it is mode 0600.",
            ),
            (
                "DATA_DIR/db/",
                "The store: findings, their history, the run log, the cached scope and state.",
            ),
            (
                "DATA_DIR/outwatch.sock",
                "The running daemon's read socket (mode 0600): while outwatch run holds the \
                 store, read commands go through it.",
            ),
            (
                "DATA_DIR/digests/",
                "Digest mails written as .eml files when no [smtp] is configured.",
            ),
        ],
    );
}

//! `tracing` set-up: human text or JSON lines on stderr; `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber (safe to call once per process). `reports_itself`: for a command that reports each source's failures and rejected rows itself
/// (`fetch`, `run --once`): without `-v`, the pipeline's warnings about the same things are
/// not logged as well, so each is said once (errors still are; `-v` or `RUST_LOG` shows all).
pub(crate) fn init_for(format: LogFormat, verbose: u8, reports_itself: bool) {
    let default = match (verbose, reports_itself) {
        (0, true) => "outwatch=warn,outwatch::pipeline=error",
        (0, false) => "outwatch=warn",
        (1, _) => "outwatch=info",
        _ => "outwatch=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a terminal: a log file or a pipe gets plain text (and so holds no
    // escape sequence at all but the escaped ones of feed content, see `crate::text`).
    // `NO_COLOR` is honoured here too; `CLICOLOR_FORCE` is not (a log goes to files).
    let ansi =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && crate::style::stderr_colour();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

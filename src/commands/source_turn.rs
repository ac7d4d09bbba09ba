//! The turn an import takes on a store shared by several nodes (`source/<name>`, as the daemons
//! and `fetch` take it), so that it never writes a source another node is running.

use crate::error::CliError;

/// The turn at `source/<source>` for an import, so that it never writes a source while another
/// node sharing the store runs it (on sled, the store's own lock already serialises); waits up
/// to `wait` for it, else exit code 5 naming the source, nothing imported.
pub(crate) async fn source_turn(
    store: &std::sync::Arc<dyn crate::store::Store>,
    source: &str,
    wait: std::time::Duration,
) -> Result<crate::store::Turn, CliError> {
    let name = format!("source/{source}");
    match crate::pipeline::take_turn(store, &name, wait).await? {
        Some(t) => Ok(t),
        None => Err(CliError::new(
            crate::error::EXIT_SKIPPED,
            format!(
                "import {source}: another node sharing the store is writing source \
                 `{source}`{}; nothing was imported: run it again later, or with --wait \
                 (e.g. --wait 5m)",
                if wait.is_zero() {
                    String::new()
                } else {
                    format!(" (waited {})", humantime::format_duration(wait))
                }
            ),
        )),
    }
}

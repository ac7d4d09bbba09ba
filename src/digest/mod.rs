//! The digest (issue #6): what is new, still open and resolved since the last digest, plus feed
//! health, rendered from editable templates and sent over SMTP. Placeholder: the signature of
//! [`deliver`] is the interface the scheduler (`outwatch run`) calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::store::Store;

/// What a delivery did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DigestOutcome {
    /// The SMTP server accepted the message(s).
    pub sent: bool,
    pub recipients: Vec<String>,
    /// Where the message was written when no SMTP server is configured.
    pub eml_path: Option<PathBuf>,
    pub new: usize,
    pub open: usize,
    pub resolved: usize,
}

/// Why a digest could not be delivered (nothing is marked reported then).
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("digest: {0}")]
    Failed(String),
}

/// Builds the digest since the last one delivered, sends it (or writes an `.eml` under
/// `data_dir` when no SMTP server is configured) and, only after success, marks it delivered.
pub async fn deliver(
    _cfg: &Config,
    _store: Arc<dyn Store>,
    _data_dir: &Path,
    _now: DateTime<Utc>,
) -> Result<DigestOutcome, DigestError> {
    Err(DigestError::Failed("the digest is not built yet".into()))
}

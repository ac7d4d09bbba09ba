//! Why a page cannot be shown: a status and a message for the client (a store failure's cause
//! goes to the log, not to the client).

use axum::http::StatusCode;

use crate::store::StoreError;

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum Fail {
    /// The request is wrong (a bad filter, a bad query): 400 with why.
    BadRequest(String),
    NotFound(String),
    /// The caller's role does not allow it: 403.
    Forbidden(String),
    /// The store failed: 500 (the cause is logged, not sent).
    Store(StoreError),
    Internal(String),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

impl Fail {
    pub fn status(&self) -> StatusCode {
        match self {
            Fail::BadRequest(_) => StatusCode::BAD_REQUEST,
            Fail::NotFound(_) => StatusCode::NOT_FOUND,
            Fail::Forbidden(_) => StatusCode::FORBIDDEN,
            Fail::Store(_) | Fail::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Fail::BadRequest(m) | Fail::NotFound(m) | Fail::Forbidden(m) => m.clone(),
            Fail::Store(e) => {
                tracing::error!(error = %crate::text::Clean(&e.to_string()), "web: store failed");
                "the store failed (see the server's log)".into()
            }
            Fail::Internal(e) => {
                tracing::error!(error = %crate::text::Clean(e), "web: internal error");
                "internal error (see the server's log)".into()
            }
        }
    }
}

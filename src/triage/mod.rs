//! Triage: what people decide about findings, kept in the store with who, when and why.
//!
//! - [`actions`]: `ack` (still open, out of the digest's "act on these first"), `unack`,
//!   `resolve` by hand (reopens as usual when its source reports it again) and `note`, each a
//!   history entry of the finding ([`crate::finding::Event`]), on one finding by fingerprint or
//!   on every open finding a lookup query matches.
//! - [`suppress`]: suppression rules (a prefix, an ASN or a domain, narrowed by source, feed,
//!   identifier, port; until a date, with a reason): a suppressed finding keeps updating in the
//!   store but stays out of the digest and any notification, and `lookup` shows it marked.
//!   The digest, the worklist and later notifications ask [`Suppressions::matches`].
//!
//! Everything goes through the [`crate::store::Store`] trait (`modify`, `state_*`), so every
//! backend keeps triage without code of its own; times come from the caller's clock.

pub mod actions;
pub mod suppress;

pub use actions::{Action, Target};
pub use suppress::{Rule, Suppressions};

use crate::finding::Finding;

/// Whether a person acknowledged the finding and it has not been taken back, resolved or
/// reopened since (a new observation of an open finding keeps it).
pub fn is_acked(f: &Finding) -> bool {
    f.acked().is_some()
}

/// Who is acting, when `--by` is not given: `$USER`, else `$LOGNAME`, else the login name of
/// the process's user (the password database).
pub fn default_author() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .or_else(login_name)
}

/// The user name of the effective user id (`getpwuid_r`).
fn login_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory owned here and sized as passed; on success `out`
    // points to `pw`, whose `pw_name` points into `buf`, a NUL-terminated string.
    let r = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            pw.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    if r != 0 || out.is_null() {
        return None;
    }
    // SAFETY: as above, `out` is `pw`, filled in, and `pw_name` a C string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr((*out).pw_name) };
    let name = name.to_string_lossy().trim().to_string();
    (!name.is_empty()).then_some(name)
}

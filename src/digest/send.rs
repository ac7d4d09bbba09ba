//! Turning a rendered digest into a mail and getting it out: over SMTP with lettre (STARTTLS,
//! implicit TLS, or plain text to a loopback server only), or as an `.eml` file when no SMTP
//! server is configured. The only module that knows SMTP.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::render::Rendered;
use crate::config::{SmtpConfig, SmtpTls};
use crate::secret::{self, Secret, SecretError};

/// Why a mail could not be built, written or sent (shown with its causes by
/// [`crate::text::chain`]). Never holds a secret: a server's answer is scrubbed of the SMTP
/// password before it is kept.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("`{key}`: `{addr}` is not a usable mail address")]
    Address {
        key: &'static str,
        addr: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("cannot build the digest mail")]
    Build(#[source] lettre::error::Error),
    #[error("the SMTP password")]
    Password(#[source] SecretError),
    #[error(
        "`smtp.username` is set but neither `smtp.password` nor `smtp.password_env` gives a \
         password"
    )]
    NoPassword,
    #[error("`smtp.password` is set but `smtp.username` is not")]
    NoUsername,
    #[error(
        "`smtp.tls = \"none\"` sends the digest unencrypted and is allowed only for a loopback \
         test server, not `{host}`: use \"starttls\" or \"tls\""
    )]
    PlainToRemote { host: String },
    #[error(
        "`smtp.tls = \"none\"` would send the password in clear text: remove \
         `smtp.username`/`smtp.password` or use TLS"
    )]
    PlainWithPassword,
    #[error("SMTP server {target}")]
    Transport {
        target: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The server refused the message or could not be reached; `detail` is its answer, the
    /// password scrubbed from it.
    #[error("SMTP server {target} did not accept the message: {detail}")]
    Refused { target: String, detail: String },
    #[error("cannot create {}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn mailbox(addr: &str, key: &'static str) -> Result<Mailbox, SendError> {
    addr.trim()
        .parse::<Mailbox>()
        .map_err(|source| SendError::Address {
            key,
            addr: addr.to_string(),
            source,
        })
}

/// A header lettre has no type for: `Auto-Submitted` (RFC 3834), `X-Auto-Response-Suppress`.
#[derive(Clone)]
struct Plain<const N: usize>(String);

macro_rules! plain_header {
    ($n:literal, $name:literal) => {
        impl lettre::message::header::Header for Plain<$n> {
            fn name() -> lettre::message::header::HeaderName {
                lettre::message::header::HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Plain(s.to_string()))
            }
            fn display(&self) -> lettre::message::header::HeaderValue {
                lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
plain_header!(0, "Auto-Submitted");
plain_header!(1, "X-Auto-Response-Suppress");

/// The sender as shown: `from` as written, with the display name "outwatch" when it has none.
fn sender(from: &str) -> Result<Mailbox, SendError> {
    let mut m = mailbox(from, "digest.from")?;
    if m.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        m.name = Some("outwatch".into());
    }
    Ok(m)
}

/// A Message-ID on the sender's domain (not this host's name, which may be internal):
/// `<outwatch.TIME.RANDOM@example.org>`.
fn message_id(from: &Mailbox, now: DateTime<Utc>) -> String {
    format!(
        "<outwatch.{}.{:016x}@{}>",
        now.timestamp(),
        rand::random::<u64>(),
        from.email.domain()
    )
}

/// Builds the multipart/alternative message (text first, then HTML) with Message-ID and Date,
/// marked as automatic (`Auto-Submitted: auto-generated`, so vacation replies and other
/// auto-responders stay quiet).
pub(crate) fn build_message(
    from: &str,
    to: &[String],
    r: &Rendered,
    now: DateTime<Utc>,
) -> Result<Message, SendError> {
    let from = sender(from)?;
    let mut b = Message::builder()
        .message_id(Some(message_id(&from, now)))
        .from(from)
        .subject(r.subject.clone())
        .date(now.into())
        .header(Plain::<0>("auto-generated".into()))
        .header(Plain::<1>("All".into()));
    for t in to {
        b = b.to(mailbox(t, "digest.recipients")?);
    }
    b.multipart(MultiPart::alternative_plain_html(
        r.text.clone(),
        r.html.clone(),
    ))
    .map_err(SendError::Build)
}

use crate::net::is_loopback;

/// Checks the `[smtp]` table and resolves the password (inline or `password_env`).
fn credentials(cfg: &SmtpConfig) -> Result<Option<(String, Secret)>, SendError> {
    let pw = secret::resolve(&cfg.password, &cfg.password_env, "smtp.password")
        .map_err(SendError::Password)?;
    match (&cfg.username, pw) {
        (Some(u), Some(p)) => Ok(Some((u.clone(), p))),
        (Some(_), None) => Err(SendError::NoPassword),
        (None, Some(_)) => Err(SendError::NoUsername),
        (None, None) => Ok(None),
    }
}

/// A connection to the configured SMTP server.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    secret: Option<Secret>,
    target: String,
    /// Deadline of one whole send (connect, dialogue, QUIT): a hanging server never blocks the
    /// scheduler.
    deadline: std::time::Duration,
}

impl Mailer {
    /// Prepares the transport. Refuses `tls = "none"` for anything but a loopback host, and
    /// credentials over a plain connection.
    pub(crate) fn new(cfg: &SmtpConfig) -> Result<Self, SendError> {
        let creds = credentials(cfg)?;
        let target = format!("{}:{}", cfg.host, cfg.port);
        let builder = match cfg.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host),
            SmtpTls::None => {
                if !is_loopback(&cfg.host) {
                    return Err(SendError::PlainToRemote {
                        host: cfg.host.clone(),
                    });
                }
                if creds.is_some() {
                    return Err(SendError::PlainWithPassword);
                }
                Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                    cfg.host.clone(),
                ))
            }
        }
        .map_err(|source| SendError::Transport {
            target: target.clone(),
            source,
        })?;
        let mut builder = builder.port(cfg.port).timeout(Some(cfg.timeout.0));
        let mut secret = None;
        if let Some((user, pw)) = creds {
            builder = builder.credentials(Credentials::new(user, pw.expose().to_string()));
            secret = Some(pw);
        }
        Ok(Mailer {
            transport: builder.build(),
            secret,
            target,
            deadline: cfg.timeout.0 * 3,
        })
    }

    /// Sends one message; `Ok` only when the server accepted it.
    pub(crate) async fn send(&self, msg: Message) -> Result<(), SendError> {
        let res = match tokio::time::timeout(self.deadline, self.transport.send(msg)).await {
            Ok(r) => r.map_err(|e| crate::text::chain(&e)),
            Err(_) => Err(format!(
                "no complete answer within {}",
                humantime::format_duration(self.deadline)
            )),
        };
        res.map(|_| ()).map_err(|detail| SendError::Refused {
            target: self.target.clone(),
            detail: match &self.secret {
                Some(s) => s.scrub(&detail),
                None => detail,
            },
        })
    }

    /// Closes pooled connections.
    pub(crate) async fn close(&self) {
        let _ = tokio::time::timeout(self.deadline, self.transport.shutdown()).await;
    }
}

/// Writes a message as `<dir>/digest-<time>[-<audience>].eml` (write to a temporary name, then
/// rename, so a half-written file never looks like a digest). Returns the path.
pub(crate) fn write_eml(
    dir: &Path,
    msg: &Message,
    now: DateTime<Utc>,
    audience: Option<&str>,
) -> Result<PathBuf, SendError> {
    crate::files::private_dir(dir).map_err(|source| SendError::Folder {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut name = format!("digest-{}", now.format("%Y%m%dT%H%M%SZ"));
    if let Some(a) = audience {
        let safe: String = a
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        name.push('-');
        name.push_str(&safe);
    }
    let mut path = dir.join(format!("{name}.eml"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{name}-{n}.eml"));
    }
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    crate::files::write_private(&tmp, msg.formatted())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| SendError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn smtp(host: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: 2525,
            tls,
            username: None,
            password: None,
            password_env: None,
            timeout: HumanDuration(std::time::Duration::from_secs(5)),
        }
    }

    // The transport's connection pool needs a Tokio runtime.
    #[tokio::test]
    async fn plain_text_only_to_loopback() {
        assert!(Mailer::new(&smtp("127.0.0.1", SmtpTls::None)).is_ok());
        assert!(Mailer::new(&smtp("localhost", SmtpTls::None)).is_ok());
        assert!(Mailer::new(&smtp("::1", SmtpTls::None)).is_ok());
        let e = Mailer::new(&smtp("smtp.example.org", SmtpTls::None))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
        assert!(Mailer::new(&smtp("smtp.example.org", SmtpTls::Starttls)).is_ok());
    }

    #[tokio::test]
    async fn username_needs_password_and_tls() {
        let mut c = smtp("127.0.0.1", SmtpTls::None);
        c.username = Some("u".into());
        assert!(
            Mailer::new(&c)
                .err()
                .unwrap()
                .to_string()
                .contains("password")
        );
        c.password = Some(Secret::new("pw"));
        assert!(
            Mailer::new(&c)
                .err()
                .unwrap()
                .to_string()
                .contains("clear text")
        );
        c.tls = SmtpTls::Tls;
        assert!(Mailer::new(&c).is_ok());
    }

    #[test]
    fn message_is_multipart_alternative_with_id() {
        let r = Rendered {
            subject: "s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        };
        let m = build_message("ow@example.org", &["a@example.org".into()], &r, Utc::now()).unwrap();
        let s = String::from_utf8(m.formatted()).unwrap();
        assert!(s.contains("Message-ID: <outwatch."), "{s}");
        assert!(s.contains("Auto-Submitted: auto-generated"), "{s}");
        assert!(s.contains("From: outwatch <"), "{s}");
        assert!(s.contains("Date: "));
        assert!(s.contains("multipart/alternative"));
        assert!(build_message("not an address", &[], &r, Utc::now()).is_err());
    }
}

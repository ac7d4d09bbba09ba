//! A notification as a MIME message (lettre's builder): text and HTML alternatives plus the CSV
//! attachment, the ticket in the subject and in `X-Outwatch-Ticket`, `Auto-Submitted:
//! auto-generated`, `X-Auto-Response-Suppress`, a `List-Id`, `Reply-To` when configured, and a
//! Message-ID on the sender's domain. Sending goes through the digest's SMTP
//! [`crate::digest::send::Mailer`] (the one place that speaks SMTP).

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart};

use super::render::Rendered;

/// A header lettre has no type for.
#[derive(Clone)]
struct Plain<const N: usize>(String);

macro_rules! plain_header {
    ($n:literal, $name:literal) => {
        impl Header for Plain<$n> {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Plain(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
plain_header!(0, "Auto-Submitted");
plain_header!(1, "X-Auto-Response-Suppress");
plain_header!(2, "X-Outwatch-Ticket");
plain_header!(3, "List-Id");

/// A notification that cannot be made a message (the contact's mail fails, not the run).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MessageError {
    /// `error`: lettre's reason, written in the message.
    #[error("`{key}`: `{addr}` is not a usable mail address ({error})")]
    Address {
        key: &'static str,
        addr: String,
        error: lettre::address::AddressError,
    },
    #[error("{0}")]
    ContentType(#[source] lettre::message::header::ContentTypeErr),
    #[error("cannot build the notification: {0}")]
    Build(#[source] lettre::error::Error),
}

fn mailbox(addr: &str, key: &'static str) -> Result<Mailbox, MessageError> {
    addr.trim()
        .parse::<Mailbox>()
        .map_err(|error| MessageError::Address {
            key,
            addr: addr.to_string(),
            error,
        })
}

/// What goes into one message besides its rendered parts.
pub(crate) struct Envelope<'a> {
    pub from: &'a str,
    pub reply_to: Option<&'a str>,
    pub to: &'a [String],
    pub ticket: &'a str,
    /// `List-Id` value; `outwatch notifications <notify.DOMAIN>` when `None`.
    pub list_id: Option<&'a str>,
    pub attachment_name: &'a str,
    pub csv: &'a str,
}

/// Builds the message: multipart/mixed of (text | HTML) and the CSV attachment.
pub(crate) fn build(
    e: &Envelope<'_>,
    r: &Rendered,
    now: DateTime<Utc>,
) -> Result<Message, MessageError> {
    let mut from = mailbox(e.from, "notify.from")?;
    if from.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        from.name = Some("outwatch".into());
    }
    let domain = from.email.domain().to_string();
    let list_id = e
        .list_id
        .map(str::to_string)
        .unwrap_or_else(|| format!("outwatch notifications <notify.{domain}>"));
    let mut b = Message::builder()
        .message_id(Some(format!(
            "<outwatch.{}.{:016x}@{domain}>",
            now.timestamp(),
            rand::random::<u64>()
        )))
        .from(from)
        .subject(r.subject.clone())
        .date(now.into())
        .header(Plain::<0>("auto-generated".into()))
        .header(Plain::<1>("All".into()))
        .header(Plain::<2>(e.ticket.to_string()))
        .header(Plain::<3>(list_id));
    if let Some(rt) = e.reply_to {
        b = b.reply_to(mailbox(rt, "notify.reply_to")?);
    }
    for t in e.to {
        b = b.to(mailbox(t, "contact emails")?);
    }
    let csv_type =
        ContentType::parse("text/csv; charset=utf-8").map_err(MessageError::ContentType)?;
    b.multipart(
        MultiPart::mixed()
            .multipart(MultiPart::alternative_plain_html(
                r.text.clone(),
                r.html.clone(),
            ))
            .singlepart(
                Attachment::new(e.attachment_name.to_string()).body(e.csv.to_string(), csv_type),
            ),
    )
    .map_err(MessageError::Build)
}

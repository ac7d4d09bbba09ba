//! HIBP domain-notification e-mails ("An email on example.org has been pwned" / "... has been found
//! in a new spam list"), sent by `noreply@haveibeenpwned.com` to verified domain owners.
//!
//! The mail names the domain and the breach (title, date, accounts found, how many of ours,
//! compromised data, spam-list flag) but **not** the addresses: the finding it gives is about the
//! domain (`email` empty), identified by the breach name like the API findings. The breach name
//! comes from the `PwnedWebsites#Name` / `/Breach/Name` link, else from the title without spaces.

use chrono::NaiveDate;

use super::{classification, severity};
use crate::finding::{Finding, SourceId};
use crate::mail::{Mail, html_to_text};

/// What one notification says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notification {
    pub domain: String,
    pub breach: String,
    pub title: Option<String>,
    /// `YYYY-MM-DD` when the mail's date could be read, else as written.
    pub breach_date: Option<String>,
    pub pwn_count: Option<u64>,
    pub your_accounts: Option<u64>,
    pub data_classes: Vec<String>,
    pub spam_list: bool,
}

const LABELS: [&str; 7] = [
    "Breach:",
    "Date of breach:",
    "Accounts found:",
    "Your accounts:",
    "Compromised data:",
    "Description:",
    "Spam list:",
];

/// Why a mail is not a HIBP domain notification outwatch can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotANotification {
    #[error(
        "not a Have I Been Pwned notification (sender and body do not mention haveibeenpwned.com)"
    )]
    NotHibp,
    #[error("no monitored domain found (subject `An email on DOMAIN has been ...`)")]
    NoDomain,
    #[error("no breach named in the mail")]
    NoBreach,
}

/// Reads a notification mail. `Err` says the mail is not one.
pub fn parse(mail: &Mail) -> Result<Notification, NotANotification> {
    let from_hibp = mail
        .from
        .as_deref()
        .is_some_and(|f| f.ends_with("haveibeenpwned.com"));
    let html_text: Vec<String> = mail.html.iter().map(|h| html_to_text(h)).collect();
    let plain: Vec<String> = mail
        .text
        .iter()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let all: Vec<&str> = html_text
        .iter()
        .chain(plain.iter())
        .map(String::as_str)
        .collect();
    let mentions_hibp = all.iter().any(|t| t.contains("haveibeenpwned"))
        || mail.html.iter().any(|h| h.contains("haveibeenpwned.com"));
    if !from_hibp && !mentions_hibp {
        return Err(NotANotification::NotHibp);
    }
    let domain = mail
        .subject
        .as_deref()
        .and_then(|s| between(s, "An email on ", " has been"))
        .or_else(|| all.iter().find_map(|t| after_token(t, "emails on ")))
        .map(|d| {
            d.trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace())
                .to_ascii_lowercase()
        })
        .filter(|d| d.contains('.') && !d.contains(' '))
        .ok_or(NotANotification::NoDomain)?;

    let mut n = Notification {
        domain,
        ..Default::default()
    };
    if let Some(t) = html_text.iter().find(|t| t.contains("Breach:")) {
        let fields = labelled(t);
        n.title = fields.get("Breach:").cloned();
        n.breach_date = fields.get("Date of breach:").map(|d| normalise_date(d));
        n.pwn_count = fields.get("Accounts found:").and_then(|c| count(c));
        n.your_accounts = fields.get("Your accounts:").and_then(|c| count(c));
        n.data_classes = fields
            .get("Compromised data:")
            .map(|d| split_classes(d))
            .unwrap_or_default();
        n.spam_list = fields.contains_key("Spam list:");
    }
    // The plain-text part: "the incident in question is the X breach from Aug 2017" and
    // "The data disclosed in the breach includes: A, B".
    for (t, raw) in plain.iter().zip(&mail.text) {
        if n.title.is_none() {
            n.title = between(t, "incident in question is the ", " breach").map(str::to_string);
        }
        if n.data_classes.is_empty()
            && let Some(d) = after(raw, "breach includes:")
        {
            let end = d.find(['\r', '\n']).unwrap_or(d.len());
            n.data_classes = split_classes(&d[..end]);
        }
    }
    if !n.spam_list {
        n.spam_list = mail
            .subject
            .as_deref()
            .is_some_and(|s| s.to_ascii_lowercase().contains("spam list"));
    }
    let link_name = mail
        .bodies()
        .find_map(breach_link)
        .filter(|s| !s.is_empty());
    n.breach = link_name
        .or_else(|| {
            n.title
                .as_deref()
                .map(|t| t.chars().filter(|c| c.is_ascii_alphanumeric()).collect())
        })
        .filter(|s: &String| !s.is_empty())
        .ok_or(NotANotification::NoBreach)?;
    Ok(n)
}

/// The finding of a notification (about the domain; the mail does not list the addresses).
pub fn finding(n: &Notification) -> Finding {
    let mut f = Finding::new(
        SourceId::Hibp.name(),
        "notification",
        classification(),
        severity(&n.data_classes, false, n.spam_list),
    );
    f.domain = Some(n.domain.clone());
    f.identity = vec![n.breach.clone()];
    f.set_extra("breach", n.breach.as_str());
    if let Some(t) = &n.title {
        f.set_extra("title", t.as_str());
    }
    if let Some(d) = &n.breach_date {
        f.set_extra("breach_date", d.as_str());
    }
    if let Some(c) = n.pwn_count {
        f.set_extra("pwn_count", c);
    }
    if let Some(c) = n.your_accounts {
        f.set_extra("your_accounts", c);
    }
    f.set_extra("data_classes", n.data_classes.clone());
    f.set_extra("is_spam_list", n.spam_list);
    f
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let a = s.find(start)? + start.len();
    let rest = &s[a..];
    let b = rest.find(end)?;
    Some(rest[..b].trim()).filter(|v| !v.is_empty())
}

fn after<'a>(s: &'a str, start: &str) -> Option<&'a str> {
    s.find(start).map(|i| &s[i + start.len()..])
}

fn after_token<'a>(s: &'a str, start: &str) -> Option<&'a str> {
    after(s, start)?.split_whitespace().next()
}

/// Label → value for the table of the HTML part (already flattened to text).
fn labelled(t: &str) -> std::collections::BTreeMap<String, String> {
    let mut found: Vec<(usize, &str)> = LABELS
        .iter()
        .filter_map(|l| t.find(l).map(|i| (i, *l)))
        .collect();
    found.sort();
    let mut out = std::collections::BTreeMap::new();
    for (k, (i, label)) in found.iter().enumerate() {
        let start = i + label.len();
        let end = found.get(k + 1).map(|(j, _)| *j).unwrap_or(t.len());
        let end = end.max(start);
        let v: String = t[start..end].trim().chars().take(2000).collect();
        out.insert(label.to_string(), v);
    }
    out
}

fn count(s: &str) -> Option<u64> {
    let digits: String = s
        .split_whitespace()
        .next()?
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn split_classes(s: &str) -> Vec<String> {
    s.split(',')
        .map(|c| c.trim().trim_end_matches('.').trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn normalise_date(s: &str) -> String {
    let s = s.trim();
    for f in ["%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%B %d, %Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return d.format("%Y-%m-%d").to_string();
        }
    }
    s.to_string()
}

/// The breach name from a `PwnedWebsites#Name` or `/Breach/Name` link.
fn breach_link(body: &str) -> Option<String> {
    for marker in ["PwnedWebsites#", "/Breach/", "/breach/"] {
        if let Some(rest) = after(body, marker) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_table() {
        let t = "intro Breach: Foo Forum Date of breach: 3 Feb 2024 Accounts found: 1,234 Your accounts: 2 Compromised data: Email addresses, Passwords Description: words";
        let m = labelled(t);
        assert_eq!(m["Breach:"], "Foo Forum");
        assert_eq!(normalise_date(&m["Date of breach:"]), "2024-02-03");
        assert_eq!(count(&m["Accounts found:"]), Some(1234));
        assert_eq!(
            split_classes(&m["Compromised data:"]),
            vec!["Email addresses", "Passwords"]
        );
    }

    #[test]
    fn link_names() {
        assert_eq!(
            breach_link("read here: https://haveibeenpwned.com/PwnedWebsites#OnlinerSpambot.")
                .as_deref(),
            Some("OnlinerSpambot")
        );
        assert_eq!(
            breach_link("<a href=\"https://haveibeenpwned.com/Breach/FooForum\">").as_deref(),
            Some("FooForum")
        );
    }
}

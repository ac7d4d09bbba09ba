//! "Safe Browsing Alerts for Network Administrators": the XML e-mails Google sends to the
//! registered owners of an AS (`From: Google Safe Browsing <noreply@google.com>`).
//!
//! ```xml
//! <notification_message asn="64496" date="2026-11-20">
//!  <list type="0"><url_info url="http://example.net/x/" ip="192.0.2.10" /></list>
//! </notification_message>
//! ```
//! `list/@type`: 0 compromised, 1 social engineering, 2 distribution, 3 unwanted software,
//! 4 malicious software. Each `url_info` is one finding, tied to its `ip` when given, else to
//! the URL's host (an IP literal or a domain; IPv6 literals without brackets are understood).
//! A `url_info` without a `url`, or with an `ip` that is not an address, is a rejected record.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Host, url_host};
use crate::finding::{Classification, Finding, Severity, SourceId};
use crate::sources::RowError;

/// What one alert mail produced.
#[derive(Debug, Default)]
pub struct Parsed {
    pub findings: Vec<Finding>,
    pub rejected: Vec<RowError>,
    /// Malformed values of records that kept their finding (an `ip` beside a URL with a host,
    /// a list `type`), kept as written in `extra`.
    pub warnings: Vec<RowError>,
    /// `url_info` records read.
    pub records: usize,
}

/// Name, classification and severity of a list type.
pub fn list_type(t: u32) -> (&'static str, Classification, Severity) {
    let id = |s: &str| format!("safebrowsing-alert-{s}");
    match t {
        0 => (
            "compromised",
            Classification::new("intrusions", "application-compromise", &id("compromised")),
            Severity::High,
        ),
        1 => (
            "social engineering",
            Classification::new("fraud", "phishing", &id("social-engineering")),
            Severity::High,
        ),
        2 => (
            "distribution",
            Classification::new(
                "malicious-code",
                "malware-distribution",
                &id("distribution"),
            ),
            Severity::High,
        ),
        3 => (
            "unwanted software",
            Classification::new(
                "malicious-code",
                "malware-distribution",
                &id("unwanted-software"),
            ),
            Severity::Medium,
        ),
        4 => (
            "malicious software",
            Classification::new(
                "malicious-code",
                "malware-distribution",
                &id("malicious-software"),
            ),
            Severity::High,
        ),
        _ => (
            "unknown",
            Classification::new("other", "undetermined", &id("unknown")),
            Severity::Medium,
        ),
    }
}

/// Cuts the `<notification_message>` element out of a mail body (text around it is ignored).
pub fn extract_xml(body: &str) -> Option<&str> {
    let start = body.find("<notification_message")?;
    let end_tag = "</notification_message>";
    let rest = &body[start..];
    if let Some(e) = rest.find(end_tag) {
        return Some(&rest[..e + end_tag.len()]);
    }
    // A self-closed root (`<notification_message ... />`): an alert without lists.
    let close = rest.find("/>")?;
    Some(&rest[..close + 2])
}

/// Why an alert document cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("the alert is not well-formed XML")]
    Xml(#[source] roxmltree::Error),
    #[error("expected a <notification_message> element, found <{0}>")]
    Root(String),
}

/// Parses one `notification_message` document. `location` names the file for messages and
/// raw pointers. `mail_date` is used when the root has no `date`.
pub fn parse_xml(
    xml: &str,
    location: &str,
    mail_date: Option<DateTime<Utc>>,
) -> Result<Parsed, AlertError> {
    let doc = roxmltree::Document::parse(xml).map_err(AlertError::Xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "notification_message" {
        return Err(AlertError::Root(crate::text::clip(
            root.tag_name().name(),
            80,
        )));
    }
    let asn = root.attribute("asn").and_then(|a| {
        a.trim()
            .trim_start_matches("AS")
            .trim_start_matches("as")
            .parse::<u32>()
            .ok()
    });
    let report_date = root
        .attribute("date")
        .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
    let time = report_date
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .or(mail_date);
    let mut out = Parsed::default();
    for (li, list) in root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "list")
        .enumerate()
    {
        // The type is not the identity of the list's findings (their URLs are): a malformed
        // one makes them "unknown", with a warning, rather than losing them.
        let type_attr = list.attribute("type").unwrap_or("");
        let parsed_type = type_attr.trim().parse::<u32>().ok();
        if parsed_type.is_none() {
            out.warnings.push(RowError {
                location: format!("{location}: list {}", li + 1),
                message: format!(
                    "list type `{}` is not a number 0..4 (its entries are kept as unknown, the \
                     type in extra)",
                    crate::text::clip(type_attr, 40)
                ),
            });
        }
        let t = parsed_type.unwrap_or(u32::MAX);
        let (category, class, severity) = list_type(t);
        for (ei, info) in list
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "url_info")
            .enumerate()
        {
            out.records += 1;
            let at = match parsed_type {
                Some(t) => format!("{location}: list type={t} url_info {}", ei + 1),
                None => format!("{location}: list {} url_info {}", li + 1, ei + 1),
            };
            let Some(url) = info
                .attribute("url")
                .map(str::trim)
                .filter(|u| !u.is_empty())
            else {
                out.rejected.push(RowError {
                    location: at,
                    message: "url_info without a url".into(),
                });
                continue;
            };
            let host = url_host(url);
            let ip_attr = info
                .attribute("ip")
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let ip = ip_attr.and_then(|s| s.parse::<IpAddr>().ok());
            // The address is the identity only when the URL has no host.
            let bad_ip = ip_attr.filter(|_| ip.is_none());
            if let Some(s) = bad_ip {
                let message = format!("ip `{}` is not an IP address", crate::text::clip(s, 120));
                if host.is_none() {
                    out.rejected.push(RowError {
                        location: at,
                        message,
                    });
                    continue;
                }
                out.warnings.push(RowError {
                    location: at.clone(),
                    message: format!("{message} (kept in extra)"),
                });
            }
            if ip.is_none() && host.is_none() {
                out.rejected.push(RowError {
                    location: at,
                    message: format!(
                        "no ip given and no host in url `{}`",
                        crate::text::clip(url, 120)
                    ),
                });
                continue;
            }
            let mut f = Finding::new(
                SourceId::SafeBrowsing.name(),
                "alerts",
                class.clone(),
                severity,
            );
            f.url = Some(url.to_string());
            f.ip = ip;
            match host {
                Some(Host::Domain(d)) => f.domain = Some(d),
                Some(Host::Ip(h)) if f.ip.is_none() => f.ip = Some(h),
                _ => {}
            }
            f.asn = asn;
            f.time_source = time;
            match parsed_type {
                Some(t) => f.set_extra("list_type", t),
                None => f.set_extra("list_type", type_attr),
            }
            if let Some(s) = bad_ip {
                f.set_extra("ip", s);
            }
            f.set_extra("category", category);
            if let Some(a) = asn {
                f.set_extra("alert_asn", a);
            }
            if let Some(d) = report_date {
                f.set_extra("report_date", d.format("%Y-%m-%d").to_string());
            }
            f.raw = Some(at);
            out.findings.push(f);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_tolerates_missing_ip() {
        let xml = r#"<notification_message asn="64496" date="2026-11-20">
 <list type="0"><url_info url="http://shop.example.net/a?x=1&amp;y=2" ip="192.0.2.10" /></list>
 <list type="1"><url_info url="http://198.51.100.7:8080/login" /><url_info ip="192.0.2.1" /></list>
 <list type="x"><url_info url="http://a.example/" /></list>
</notification_message>"#;
        let p = parse_xml(xml, "m.eml", None).unwrap();
        assert_eq!(p.records, 4);
        // The entry of the list of type `x` keeps its finding as `unknown`, with a warning.
        assert_eq!(p.findings.len(), 3);
        assert_eq!(p.rejected.len(), 1, "{:?}", p.rejected);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].message.contains("`x`"), "{:?}", p.warnings);
        let u = &p.findings[2];
        assert_eq!(u.classification.identifier, "safebrowsing-alert-unknown");
        assert_eq!(u.extra["list_type"], "x");
        let a = &p.findings[0];
        assert_eq!(a.url.as_deref(), Some("http://shop.example.net/a?x=1&y=2"));
        assert_eq!(a.ip.unwrap().to_string(), "192.0.2.10");
        assert_eq!(a.domain.as_deref(), Some("shop.example.net"));
        assert_eq!(a.asn, Some(64496));
        let b = &p.findings[1];
        assert_eq!(b.ip.unwrap().to_string(), "198.51.100.7");
        assert_eq!(b.classification.kind, "phishing");
    }

    #[test]
    fn bad_xml_is_an_error() {
        assert!(parse_xml("<notification_message><list>", "m", None).is_err());
        assert!(parse_xml("<other/>", "m", None).is_err());
    }
}

//! The table of findings people read (`lookup`, `list`): four columns that fit 80, when the
//! provider saw each finding first among its facts, with the ports and peer that tell the device
//! apart. Feed text is sanitised; the indicator and the time are never broken.

use comfy_table::{Cell, Table};

use crate::finding::contact::contact_text;
use crate::finding::rank::observed;
use crate::finding::{Finding, SourceId};
use crate::output::table;
use crate::text::{clip, clip_middle, sanitize};
use crate::triage::Suppressions;

/// The one format of times in a table (UTC, to the minute), split over two lines.
pub(crate) const TIME_FORMAT: &str = "%Y-%m-%d\n%H:%M";

/// The footnote of a table with a `*` time ([`findings_table`]'s second value).
pub(crate) const STORED_NOTE: &str =
    "* the provider gave no time: when outwatch stored it (times are UTC)";

/// The indicator, and under a URL or mail address the finding's address (with its port), as
/// it is what finds the device.
fn indicator(f: &Finding) -> String {
    let shown = f.indicator();
    let mut cell = clip_middle(&shown, 28);
    if let Some(ip) = f.ip {
        let at = match f.port {
            Some(p) if ip.is_ipv6() => format!("[{ip}]:{p}"),
            Some(p) => format!("{ip}:{p}"),
            None => ip.to_string(),
        };
        if shown != at {
            cell = format!("{cell}\n{at}");
        }
    }
    cell
}

/// The table, and whether one of its times is the stored one (marked `*`: print
/// [`STORED_NOTE`] under it). The time column is when the provider saw the finding
/// ([`observed`]), its count of observations and its status.
/// `notes`: a line shown under a finding's "what" (by fingerprint): `list` names the
/// notification there.
pub(crate) fn findings_table(
    findings: &[Finding],
    supp: &Suppressions,
    notes: &std::collections::HashMap<String, String>,
) -> (Table, bool) {
    let colour = crate::style::stdout_colour();
    let mut t = table(&["severity", "indicator", "what (source)", "observed"]);
    crate::output::style_table(&mut t, colour);
    let mut stored = false;
    for f in findings {
        let d = sanitize(&f.distinguishing()).into_owned();
        let source = if f.source == f.feed || f.is_from(SourceId::Shadowserver) {
            f.source.clone()
        } else {
            format!("{} {}", f.source, f.feed)
        };
        let kind = f.classification.kind.as_str();
        let kind = if kind == "blacklist" {
            "blocklist"
        } else {
            kind
        };
        let mut what = if d.is_empty() {
            format!("{kind} ({source})")
        } else {
            format!("{kind}: {d} ({source})")
        };
        let contact = contact_text(f);
        if !contact.is_empty() {
            what = format!("{}\n{}", clip(&what, 120), clip(&contact, 80));
        } else {
            what = clip(&what, 120);
        }
        if let Some(n) = notes.get(&f.fingerprint) {
            what = format!("{what}\n{}", clip(n, 80));
        }
        let mut seen = observed(f).format(TIME_FORMAT).to_string();
        if f.time_source.is_none() {
            seen.push('*');
            stored = true;
        }
        if f.times_seen > 1 {
            seen.push_str(&format!(" {}×", f.times_seen));
        }
        seen.push_str(&format!("\n{}", f.status));
        if supp.suppressed(f) {
            seen.push_str("\nsuppressed");
        } else if crate::triage::is_acked(f) {
            seen.push_str("\nacked");
        }
        t.add_row(vec![
            crate::style::severity_cell(f.severity, colour),
            Cell::new(indicator(f)),
            Cell::new(what),
            Cell::new(seen),
        ]);
    }
    crate::output::keep_whole(&mut t, &[0, 1, 3]);
    (t, stored)
}

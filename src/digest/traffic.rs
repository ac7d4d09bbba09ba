//! The digest section "Your own traffic": the new and still open findings of `outwatch
//! flows` (source `flows`), counted per kind, the most severe listed in one line each.

use serde::Serialize;

use super::build::{Section, clean};
use crate::finding::{Finding, Severity};

/// Most findings listed (the counts stay exact).
pub const MAX_LISTED: usize = 20;

/// One kind of flow finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrafficKind {
    pub kind: String,
    pub severity: Severity,
    pub count: usize,
}

/// One listed flow finding.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficItem {
    pub severity: Severity,
    pub kind: String,
    /// Our host.
    pub host: String,
    /// The peer or service and the counts, in words.
    pub what: String,
    pub last: String,
    /// `new` or `open`.
    pub section: Section,
}

/// The section as the templates see it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TrafficView {
    pub count: usize,
    pub kinds: Vec<TrafficKind>,
    pub items: Vec<TrafficItem>,
    /// Findings not listed.
    pub more: usize,
}

/// Gathers the section while the store is scanned.
#[derive(Debug, Default)]
pub struct TrafficCollector {
    count: usize,
    kinds: Vec<TrafficKind>,
    /// (severity, newest first, host) → item.
    items: Vec<((Severity, i64, String), TrafficItem)>,
}

fn text(f: &Finding, k: &str) -> Option<String> {
    match f.extra.get(k)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The peer or service of a flow finding and its counts, in words (raw: clean before use).
pub fn what(f: &Finding) -> String {
    let peer = match (text(f, "peer"), text(f, "peer_port")) {
        (Some(p), Some(port)) if p.contains(':') => format!("[{p}]:{port}"),
        (Some(p), Some(port)) => format!("{p}:{port}"),
        (Some(p), None) => p,
        _ => String::new(),
    };
    let conns = text(f, "connections").unwrap_or_default();
    match f.feed.as_str() {
        "c2-contact" => {
            let listed = [text(f, "feeds"), text(f, "threat")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            format!("with {peer} (listed by {listed}), {conns} connection(s)")
        }
        "unexpected-outbound" => format!(
            "zone {} started {conns} connection(s) to {peer}",
            text(f, "zone").unwrap_or_default()
        ),
        "long-connection" => {
            let secs = f
                .extra
                .get("duration")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
            let d = std::time::Duration::from_secs(secs.max(0.0) as u64);
            format!("with {peer}, longest {}", humantime::format_duration(d))
        }
        "port-mismatch" => format!(
            "{} on port {} (with {peer}), {conns} connection(s)",
            text(f, "service").unwrap_or_default(),
            text(f, "port").unwrap_or_default()
        ),
        "top-talker" => format!(
            "{} by {}: {} packets, {} bytes (peers' median {}, {})",
            text(f, "service").unwrap_or_default(),
            text(f, "metric").unwrap_or_default(),
            count(f, "packets"),
            count(f, "bytes"),
            text(f, "peers_median").unwrap_or_default(),
            text(f, "compared_with").unwrap_or_default()
        ),
        _ => f.distinguishing(),
    }
}

/// A count of `extra` with thousands separators (as written when it is no count).
fn count(f: &Finding, key: &str) -> String {
    match f.extra.get(key).and_then(|v| v.as_u64()) {
        Some(n) => crate::text::thousands(n),
        None => text(f, key).unwrap_or_default(),
    }
}

impl TrafficCollector {
    /// Takes a flow finding of the new or open section.
    pub fn add(&mut self, f: &Finding, section: Section, last: String) {
        self.count += 1;
        match self.kinds.iter_mut().find(|k| k.kind == f.feed) {
            Some(k) => k.count += 1,
            None => self.kinds.push(TrafficKind {
                kind: clean(&f.feed, 40),
                severity: f.severity,
                count: 1,
            }),
        }
        let host = f.ip.map(|i| i.to_string()).unwrap_or_default();
        let key = (f.severity, -f.last_seen.timestamp(), host.clone());
        if self.items.len() >= MAX_LISTED * 2 {
            self.items.sort_by(|a, b| a.0.cmp(&b.0));
            self.items.truncate(MAX_LISTED);
        }
        if self.items.len() >= MAX_LISTED
            && self
                .items
                .iter()
                .map(|(k, _)| k)
                .max()
                .is_some_and(|w| key >= *w)
        {
            return;
        }
        self.items.push((
            key,
            TrafficItem {
                severity: f.severity,
                kind: clean(&f.feed, 40),
                host: clean(&host, 45),
                what: clean(&what(f), 200),
                last,
                section,
            },
        ));
    }

    /// The section.
    pub fn view(mut self) -> TrafficView {
        self.items.sort_by(|a, b| a.0.cmp(&b.0));
        self.items.truncate(MAX_LISTED);
        self.kinds
            .sort_by(|a, b| a.severity.cmp(&b.severity).then(a.kind.cmp(&b.kind)));
        TrafficView {
            count: self.count,
            more: self.count - self.items.len(),
            kinds: self.kinds,
            items: self.items.into_iter().map(|(_, i)| i).collect(),
        }
    }
}

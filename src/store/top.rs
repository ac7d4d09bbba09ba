//! [`Top`]: the first `n` findings of a stream by an order, in bounded memory (a heap of `n`),
//! and the orders lookups use.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::finding::Finding;

/// An order of findings (`Less`: shown first).
pub(crate) type Order = fn(&Finding, &Finding) -> Ordering;

/// Newest `last_seen` first, then most severe, then by fingerprint: [`super::Store::query`]'s
/// order.
pub(crate) fn newest_first(a: &Finding, b: &Finding) -> Ordering {
    b.last_seen
        .cmp(&a.last_seen)
        .then_with(|| a.severity.cmp(&b.severity))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

/// Most severe first, then newest, then by fingerprint: the order shown to people.
pub(crate) fn most_severe_first(a: &Finding, b: &Finding) -> Ordering {
    a.severity
        .cmp(&b.severity)
        .then_with(|| b.last_seen.cmp(&a.last_seen))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

struct Ranked {
    f: Finding,
    order: Order,
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        (self.order)(&self.f, &o.f) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.order)(&self.f, &o.f)
    }
}

/// Keeps the first `limit` findings pushed by `order` (all of them with no limit), and counts
/// every finding pushed. Memory: `limit` findings, whatever the number pushed.
pub(crate) struct Top {
    limit: Option<usize>,
    order: Order,
    /// A max-heap by `order`: its top is the last finding kept, the first to go.
    heap: BinaryHeap<Ranked>,
    seen: usize,
}

impl Top {
    /// Keeps at most `limit` findings (`None`: all) by `order`.
    pub(crate) fn new(limit: Option<usize>, order: Order) -> Top {
        Top {
            limit,
            order,
            heap: BinaryHeap::new(),
            seen: 0,
        }
    }

    /// Offers a finding: kept when fewer than `limit` are held or it comes before the last one.
    pub(crate) fn push(&mut self, f: Finding) {
        self.seen += 1;
        let order = self.order;
        match self.limit {
            Some(0) => {}
            Some(n) if self.heap.len() >= n => {
                let mut last = self.heap.peek_mut().expect("n > 0 findings held");
                if order(&f, &last.f) == Ordering::Less {
                    *last = Ranked { f, order };
                }
            }
            _ => self.heap.push(Ranked { f, order }),
        }
    }

    /// Whether [`Top::push`] would keep `f` now (so a caller holding a borrowed finding clones
    /// only those).
    pub(crate) fn admits(&self, f: &Finding) -> bool {
        match self.limit {
            Some(0) => false,
            Some(n) if self.heap.len() >= n => self
                .heap
                .peek()
                .is_some_and(|last| (self.order)(f, &last.f) == Ordering::Less),
            _ => true,
        }
    }

    /// How many findings were pushed (kept or not).
    pub(crate) fn seen(&self) -> usize {
        self.seen
    }

    /// The findings kept, in order.
    pub(crate) fn into_sorted_vec(self) -> Vec<Finding> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.f)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use chrono::{TimeZone, Utc};

    fn f(i: u32, sev: Severity) -> Finding {
        let class = crate::finding::Classification::new("", "x", "y");
        let mut f = Finding::new("s", "feed", class, sev);
        f.ip = Some(std::net::IpAddr::from([10, 0, 0, (i % 256) as u8]));
        f.port = Some(i as u16);
        f.last_seen = Utc.timestamp_opt(1_700_000_000 + i64::from(i), 0).unwrap();
        f.seal();
        f
    }

    #[test]
    fn keeps_the_first_n_by_order_and_counts_all() {
        let sev = [
            Severity::Info,
            Severity::High,
            Severity::Low,
            Severity::Critical,
        ];
        let all: Vec<Finding> = (0..200).map(|i| f(i, sev[(i * 7 % 4) as usize])).collect();
        for order in [newest_first as Order, most_severe_first] {
            for limit in [Some(0), Some(1), Some(7), Some(200), Some(500), None] {
                let mut t = Top::new(limit, order);
                for x in all.iter().rev() {
                    t.push(x.clone());
                }
                assert_eq!(t.seen(), 200);
                let mut want = all.clone();
                want.sort_by(order);
                want.truncate(limit.unwrap_or(usize::MAX));
                assert_eq!(t.into_sorted_vec(), want, "{limit:?}");
            }
        }
    }
}

//! Top talkers per service: a Space-Saving heavy-hitter table per service (ranked by packets
//! and by bytes), and the
//! robust outlier rule (median + k·MAD among a host's peers).
//!
//! Exact while a table holds fewer than 2 × [`TALKER_CAPACITY`] hosts of a service. Past that
//! the table keeps the heaviest [`TALKER_CAPACITY`] hosts by packets and those by bytes (cut
//! in batches when it reaches twice that), and a host that enters later starts from the
//! largest counts cut away (its `error_packets` / `error_bytes`):
//! Space-Saving's guarantee that every host heavier than that count is kept, with counts
//! overestimated by at most `error`. The peers a host is compared with are then the heavy
//! ones only, which raises the median: the rule alerts less, never more.

use std::collections::HashMap;
use std::net::IpAddr;

/// Hosts kept exactly per service and metric (the table grows to twice this before a cut).
pub(crate) const TALKER_CAPACITY: usize = 1024;
/// Fewest hosts a population needs before anyone in it can stand out (with three, the
/// median is a host other than the outlier; a small lab network still gets its top talker).
pub(crate) const MIN_PEERS: usize = 3;
/// Least packets a top talker by packets has moved.
pub(crate) const MIN_PACKETS: u64 = 1_000;
/// Least bytes a top talker by bytes has moved.
pub(crate) const MIN_BYTES: u64 = 10 * 1024 * 1024;

/// Which count a table ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    Packets,
    Bytes,
}

impl Metric {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Metric::Packets => "packets",
            Metric::Bytes => "bytes",
        }
    }
}

/// One host's traffic of one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Talker {
    pub packets: u64,
    pub bytes: u64,
    pub connections: u64,
    /// Start of the first and last connection counted, microseconds.
    pub first_us: i64,
    pub last_us: i64,
    /// Space-Saving's overestimate bounds of packets and bytes (0: exact).
    pub error_packets: u64,
    pub error_bytes: u64,
}

impl Talker {
    pub(crate) fn get(&self, m: Metric) -> u64 {
        match m {
            Metric::Packets => self.packets,
            Metric::Bytes => self.bytes,
        }
    }

    /// The overestimate bound of `m`.
    pub(crate) fn error(&self, m: Metric) -> u64 {
        match m {
            Metric::Packets => self.error_packets,
            Metric::Bytes => self.error_bytes,
        }
    }
}

/// A Space-Saving table of one service's talkers, ranked by packets and by bytes: a cut keeps
/// every host among the heaviest [`TALKER_CAPACITY`] by either count.
#[derive(Debug, Clone, Default)]
pub(crate) struct TalkerTable {
    pub hosts: HashMap<IpAddr, Talker>,
    /// Largest counts cut away so far (a new host starts from them).
    floor_packets: u64,
    floor_bytes: u64,
    /// Hosts cut away (each cut counts the hosts it removed).
    pub evicted: u64,
}

/// The `n`-th largest of `v` (0-based), reordering `v`.
fn nth_largest(v: &mut [u64], n: usize) -> u64 {
    let n = n.min(v.len() - 1);
    *v.select_nth_unstable_by(n, |a, b| b.cmp(a)).1
}

impl TalkerTable {
    pub(crate) fn new() -> Self {
        TalkerTable::default()
    }

    /// Counts one connection of `host`.
    pub(crate) fn add(&mut self, host: IpAddr, packets: u64, bytes: u64, ts_us: i64) {
        let (fp, fb) = (self.floor_packets, self.floor_bytes);
        let t = self.hosts.entry(host).or_insert_with(|| Talker {
            packets: fp,
            bytes: fb,
            first_us: ts_us,
            last_us: ts_us,
            error_packets: fp,
            error_bytes: fb,
            ..Talker::default()
        });
        t.packets = t.packets.saturating_add(packets);
        t.bytes = t.bytes.saturating_add(bytes);
        t.connections += 1;
        t.first_us = t.first_us.min(ts_us);
        t.last_us = t.last_us.max(ts_us);
        if self.hosts.len() >= 2 * TALKER_CAPACITY {
            self.cut();
        }
    }

    /// Keeps the hosts among the heaviest [`TALKER_CAPACITY`] by packets or by bytes.
    fn cut(&mut self) {
        let mut p: Vec<u64> = self.hosts.values().map(|t| t.packets).collect();
        let mut b: Vec<u64> = self.hosts.values().map(|t| t.bytes).collect();
        let bar_p = nth_largest(&mut p, TALKER_CAPACITY - 1);
        let bar_b = nth_largest(&mut b, TALKER_CAPACITY - 1);
        let before = self.hosts.len();
        let (mut cut_p, mut cut_b) = (0, 0);
        self.hosts.retain(|_, t| {
            let keep = t.packets > bar_p || t.bytes > bar_b;
            if !keep {
                cut_p = cut_p.max(t.packets);
                cut_b = cut_b.max(t.bytes);
            }
            keep
        });
        if self.hosts.len() == before {
            // Everyone ties above the bars: cut those at the bars after all.
            self.hosts.retain(|_, t| {
                let keep = t.packets > bar_p.saturating_sub(1) && t.bytes > bar_b.saturating_sub(1);
                if !keep {
                    cut_p = cut_p.max(t.packets);
                    cut_b = cut_b.max(t.bytes);
                }
                keep
            });
        }
        self.floor_packets = self.floor_packets.max(cut_p);
        self.floor_bytes = self.floor_bytes.max(cut_b);
        self.evicted += (before - self.hosts.len()) as u64;
    }

    /// The hosts, heaviest by `m` first.
    pub(crate) fn ranked(&self, m: Metric) -> Vec<(IpAddr, Talker)> {
        let mut v: Vec<(IpAddr, Talker)> = self.hosts.iter().map(|(a, t)| (*a, *t)).collect();
        v.sort_unstable_by(|a, b| b.1.get(m).cmp(&a.1.get(m)).then(a.0.cmp(&b.0)));
        v
    }
}

fn median(sorted: &[u64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0
    }
}

/// The bar a value must pass to stand out in `population`: median + k·scale, where scale is
/// the MAD but at least a quarter of the median and at least 1 (so a flat population, whose
/// MAD is 0, does not make every host a little above the median an outlier). `None` when the
/// population is smaller than [`MIN_PEERS`].
pub(crate) fn outlier_bar(population: &[u64], k: f64) -> Option<f64> {
    if population.len() < MIN_PEERS {
        return None;
    }
    let mut v = population.to_vec();
    v.sort_unstable();
    let med = median(&v);
    let mut dev: Vec<u64> = v.iter().map(|&x| (x as f64 - med).abs() as u64).collect();
    dev.sort_unstable();
    let mad = median(&dev);
    let scale = mad.max(med / 4.0).max(1.0);
    Some(med + k * scale)
}

/// The least a top talker by `m` has moved.
pub(crate) fn minimum(m: Metric) -> u64 {
    match m {
        Metric::Packets => MIN_PACKETS,
        Metric::Bytes => MIN_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_population_has_no_outlier_and_a_spike_does() {
        let flat = vec![5_000u64; 20];
        let bar = outlier_bar(&flat, 10.0).unwrap();
        assert!(5_500.0 < bar);
        let mut spiky = vec![5_000u64, 5_100, 4_900, 5_050, 4_950, 5_020];
        spiky.push(500_000);
        let bar = outlier_bar(&spiky, 10.0).unwrap();
        assert!(500_000.0 > bar);
        // Two hosts are no population; three are: a lab network of two quiet hosts and a
        // loud one has its top talker.
        assert!(outlier_bar(&[1, 2], 10.0).is_none());
        let bar = outlier_bar(&[1_000, 1_200, 60_000], 10.0).unwrap();
        assert!(60_000.0 > bar && bar > 1_200.0, "{bar}");
    }

    #[test]
    fn table_keeps_heavy_hitters_within_capacity() {
        let mut t = TalkerTable::new();
        let heavy: IpAddr = "10.9.9.9".parse().unwrap();
        for i in 0..100_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.add(ip, 1, 10, 0);
            if i % 10 == 0 {
                t.add(heavy, 100, 100, 0);
            }
        }
        assert!(t.hosts.len() < 2 * TALKER_CAPACITY);
        let top = t.ranked(Metric::Packets);
        assert_eq!(top[0].0, heavy);
        assert!(top[0].1.packets >= 1_000_000);
        assert!(t.evicted > 90_000);
    }
}

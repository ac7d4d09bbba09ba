//! Findings encoded for the store as soon as they are parsed ([`PreparedBatch`]), so that a bulk
//! import touches each finding once while it is still in the CPU cache, and holds a chunk as a
//! few compact buffers instead of thousands of `Finding` structs.

use chrono::{DateTime, Utc};

use super::keys;
use super::record::{self, FP_LEN};
use crate::finding::{Finding, FindingView, HistoryEntry, Status};
use crate::store::{Result, StoreError};

/// Byte ranges of one prepared finding inside [`PreparedBatch`]'s buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    pub fp: [u8; FP_LEN],
    pub home: (u32, u32),
    pub rec: (u32, u32),
    /// Posting pairs: repeated `u16 LE length, posting prefix, u16 LE length, entry`.
    pub posts: (u32, u32),
}

/// A chunk of findings, each sealed and encoded as the record of a *new* finding observed at
/// `now` (the store merges it into its stored twin when there is one), or, for a restore,
/// as given.
#[derive(Debug)]
pub(super) struct PreparedBatch {
    pub(crate) now: DateTime<Utc>,
    pub(crate) buf: Vec<u8>,
    pub(crate) items: Vec<Item>,
    home: Vec<u8>,
    scratch: Vec<u8>,
    /// The history of a new finding: `new` at `now`.
    new_history: Vec<HistoryEntry>,
    /// Findings are kept as given (a restore), not stamped new.
    as_given: bool,
}

fn at(n: usize) -> u32 {
    n as u32
}

impl PreparedBatch {
    /// An empty batch for findings observed at `now`.
    pub(super) fn new(now: DateTime<Utc>) -> Self {
        Self::with_capacity(now, 1 << 20)
    }

    /// An empty batch with room for about `bytes` of prepared findings (see [`Self::bytes`]).
    pub(super) fn with_capacity(now: DateTime<Utc>, bytes: usize) -> Self {
        PreparedBatch {
            now,
            buf: Vec::with_capacity(bytes),
            // A prepared scan row takes about 300 bytes.
            items: Vec::with_capacity(bytes / 300),
            home: Vec::with_capacity(32),
            scratch: Vec::with_capacity(64),
            new_history: vec![HistoryEntry {
                at: now,
                event: crate::finding::Event::New,
            }],
            as_given: false,
        }
    }

    /// A batch whose findings keep the life cycle they are given (a restore).
    pub(super) fn keeping_given(mut self) -> Self {
        self.as_given = true;
        self
    }

    /// Findings in the batch.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held (to bound a batch by memory).
    pub(super) fn bytes(&self) -> usize {
        self.buf.len() + self.items.len() * std::mem::size_of::<Item>()
    }

    /// Appends `f` (sealed here when it is not): as a new finding's record, or as given.
    pub(super) fn push(&mut self, f: &Finding) -> Result<()> {
        let sealed;
        let f = if f.fingerprint.is_empty() {
            let mut g = f.clone();
            g.seal();
            sealed = g;
            &sealed
        } else {
            f
        };
        let fp = keys::fp_checked(&f.fingerprint)?;
        if self.as_given {
            return self
                .push_encoded_with(&f.view(), fp, |buf| record::encode_finding(f, &fp, buf));
        }
        self.push_sealed(&f.view(), fp)
    }

    /// Appends a sealed view (see [`FindingView`]) as a new finding (or as given), without an
    /// owned copy.
    pub(super) fn push_view(&mut self, v: &FindingView<'_>) -> Result<()> {
        let fp = v.fingerprint();
        if self.as_given {
            return self.push_encoded_with(v, fp, |buf| record::encode(v, &fp, buf));
        }
        self.push_sealed(v, fp)
    }

    fn push_sealed(&mut self, v: &FindingView<'_>, fp: [u8; FP_LEN]) -> Result<()> {
        // The life cycle of a new finding, as `lifecycle::stamp_new` sets it.
        let history = std::mem::take(&mut self.new_history);
        let v = FindingView {
            first_seen: self.now,
            last_seen: self.now,
            times_seen: 1,
            status: Status::New,
            history: &history,
            ..*v
        };
        let r = self.push_encoded_with(&v, fp, |buf| record::encode(&v, &fp, buf));
        self.new_history = history;
        r
    }

    /// Appends the home of `v`, the record `encode` writes and `v`'s postings.
    fn push_encoded_with(
        &mut self,
        v: &FindingView<'_>,
        fp: [u8; FP_LEN],
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), record::RecordError>,
    ) -> Result<()> {
        let h0 = self.buf.len();
        keys::home_into(v, &mut self.home);
        self.buf.extend_from_slice(&self.home);
        let r0 = self.buf.len();
        if let Err(e) = encode(&mut self.buf) {
            self.buf.truncate(h0);
            return Err(StoreError::backend(e));
        }
        let p0 = self.buf.len();
        for d in keys::posting_domains(v, &self.home) {
            keys::posting_key_into(d, &mut self.scratch);
            self.buf
                .extend_from_slice(&(self.scratch.len() as u16).to_le_bytes());
            self.buf.extend_from_slice(&self.scratch);
            let e0 = self.buf.len();
            self.buf.extend_from_slice(&[0, 0]);
            keys::push_posting(d, &fp, &self.home, &mut self.buf);
            let n = (self.buf.len() - e0 - 2) as u16;
            self.buf[e0..e0 + 2].copy_from_slice(&n.to_le_bytes());
        }
        self.end_item(fp, h0, r0, p0);
        Ok(())
    }

    /// Appends an item prepared by another batch of the same `now` (merging spilled runs).
    pub(crate) fn push_encoded(&mut self, fp: [u8; FP_LEN], home: &[u8], rec: &[u8], posts: &[u8]) {
        let h0 = self.buf.len();
        self.buf.extend_from_slice(home);
        let r0 = self.buf.len();
        self.buf.extend_from_slice(rec);
        let p0 = self.buf.len();
        self.buf.extend_from_slice(posts);
        self.end_item(fp, h0, r0, p0);
    }

    /// Records the item whose home, record and postings start at `h0`, `r0` and `p0` and run
    /// to the end of the buffer.
    fn end_item(&mut self, fp: [u8; FP_LEN], h0: usize, r0: usize, p0: usize) {
        self.items.push(Item {
            fp,
            home: (at(h0), at(r0)),
            rec: (at(r0), at(p0)),
            posts: (at(p0), at(self.buf.len())),
        });
    }

    /// Empties the batch, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    /// Whether the items are in home order.
    pub(crate) fn is_sorted_by_home(&self) -> bool {
        self.items
            .windows(2)
            .all(|w| self.slice(w[0].home) <= self.slice(w[1].home))
    }

    /// Sorts the items by home; items of one home keep their order (later rows stay later).
    pub(crate) fn sort_by_home(&mut self) {
        let buf = &self.buf;
        let home = |i: &Item| &buf[i.home.0 as usize..i.home.1 as usize];
        self.items.sort_by(|a, b| home(a).cmp(home(b)));
    }

    /// The home of the last item.
    pub(crate) fn last_home(&self) -> Option<&[u8]> {
        self.items.last().map(|i| self.slice(i.home))
    }

    /// The index of the first of the trailing items that share the last item's home (0 when
    /// every item does, or there is none).
    pub(crate) fn last_home_start(&self) -> usize {
        let Some(last) = self.last_home() else {
            return 0;
        };
        self.items
            .iter()
            .rposition(|it| self.slice(it.home) != last)
            .map_or(0, |p| p + 1)
    }

    /// Drops the items before `first`, moving the rest and their bytes to the front. The items
    /// must still be in the order they were pushed (not sorted), so their bytes are the tail
    /// of the buffer.
    pub(crate) fn keep_from(&mut self, first: usize) {
        let Some(start) = self.items.get(first).map(|it| it.home.0) else {
            self.clear();
            return;
        };
        debug_assert!(
            self.items[first..]
                .windows(2)
                .all(|w| w[0].posts.1 == w[1].home.0)
        );
        self.buf.drain(..start as usize);
        self.items.drain(..first);
        for it in &mut self.items {
            for r in [&mut it.home, &mut it.rec, &mut it.posts] {
                r.0 -= start;
                r.1 -= start;
            }
        }
    }

    pub(crate) fn slice(&self, r: (u32, u32)) -> &[u8] {
        &self.buf[r.0 as usize..r.1 as usize]
    }

    /// The (posting key, entry) pairs of an item.
    pub(crate) fn posts(&self, item: &Item) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut rest = self.slice(item.posts);
        std::iter::from_fn(move || {
            let (k, r) = take_u16_prefixed(rest)?;
            let (e, r) = take_u16_prefixed(r)?;
            rest = r;
            Some((k, e))
        })
    }
}

/// Splits `u16 LE length, bytes` off the front of `b`.
fn take_u16_prefixed(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as usize;
    Some((b.get(2..2 + n)?, &b[2 + n..]))
}

//! A unit of work on sled. Findings held in memory are one batch with the unit's state and run
//! entry. Streamed findings go through the bulk path: each is encoded as it arrives
//! ([`PreparedBatch`]) into runs of bounded size, sorted by home and spilled to anonymous files
//! in the store's folder ([`SortedIngest`]). A reader that may fail by itself
//! ([`Reading::WholeOrNothing`]) is deferred: nothing is written while it runs, so its failure
//! leaves no trace, and once it succeeded the runs are merged into batches of whole buckets. A
//! reader that fails only with the store ([`Reading::AsItComes`]) has runs in address order
//! written as they fill (a report sorted by address is never spilled). The state and run entry
//! go last, in a batch of their own.

use chrono::{DateTime, Utc};

use super::SledStore;
use super::prepared::PreparedBatch;
use super::sorted_ingest::{CHUNK, SortedIngest};
use super::write::{Mode, group};
use crate::finding::{Finding, FindingView};
use crate::store::{
    FindingWriter, Findings, IngestStats, ReadError, Reading, Result, StoreError, Unit, Write,
};

impl SledStore {
    /// [`crate::store::Store::ingest_unit`] on sled.
    pub(super) fn write_unit(&self, unit: Unit<'_>) -> Result<IngestStats> {
        let mode = match unit.write {
            Write::Observe => Mode::Merge(unit.now),
            Write::Restore => Mode::Replace,
        };
        match unit.findings {
            Findings::Owned(findings) => {
                let groups = group(findings)?;
                let _g = self.lock();
                self.write_groups(groups, unit.state, unit.run, mode)
            }
            Findings::Streamed(read, reading) => {
                let ingest = SortedIngest::new(self, unit.now, mode, &self.path);
                let mut bulk = Bulk {
                    ingest: match reading {
                        Reading::WholeOrNothing => ingest.deferred(),
                        Reading::AsItComes => ingest,
                    },
                };
                read(&mut bulk).map_err(|e| match e {
                    ReadError::Store(e) => *e,
                    unread => StoreError::Unread(unread),
                })?;
                bulk.ingest.finish_with(unit.state, unit.run)
            }
        }
    }
}

/// sled's writer for streamed findings.
struct Bulk<'s> {
    ingest: SortedIngest<'s>,
}

impl FindingWriter for Bulk<'_> {
    fn view(&mut self, f: &FindingView<'_>) -> Result<()> {
        self.ingest.push_view(f)
    }

    fn finding(&mut self, f: &Finding) -> Result<()> {
        self.ingest.push(f)
    }
}

/// A writer that encodes findings as the bulk path does (record, home, postings) and drops
/// each full chunk unstored: the `prepare` phase of `benches/shadowserver_import.rs`, which
/// tells encoding apart from writing.
#[doc(hidden)]
pub fn bench_encoder(now: DateTime<Utc>) -> impl FindingWriter {
    Encoder {
        batch: PreparedBatch::new(now),
    }
}

struct Encoder {
    batch: PreparedBatch,
}

impl Encoder {
    fn full(&mut self) {
        if self.batch.len() >= CHUNK {
            std::hint::black_box(&self.batch);
            self.batch = PreparedBatch::new(self.batch.now);
        }
    }
}

impl FindingWriter for Encoder {
    fn view(&mut self, f: &FindingView<'_>) -> Result<()> {
        self.batch.push_view(f)?;
        self.full();
        Ok(())
    }

    fn finding(&mut self, f: &Finding) -> Result<()> {
        self.batch.push(f)?;
        self.full();
        Ok(())
    }
}

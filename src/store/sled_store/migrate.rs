//! Migration of a store of an earlier layout into the current one (on open).

use super::keys;
use super::legacy;
use super::{Layout, LayoutError, SledStore, corrupt, engine};
use crate::finding::Finding;
use crate::store::{Result, Store};

impl SledStore {
    /// Rewrites a store of an earlier layout (`from`) into a new database in this layout, then
    /// swaps the folders: `db` becomes `db.v1` or `db.v2` (kept; delete it when satisfied) and
    /// the new one becomes `db`. A fresh database rather than rewriting in place, because sled
    /// would keep the dead records in its log and open slowly ever after. Consumes `self`; the
    /// caller reopens. Safe to interrupt: the old database is untouched until the swap.
    pub(super) fn migrate(self, from: Layout) -> Result<()> {
        let path = self.path.clone();
        tracing::info!(path = %path.display(), ?from, "migrating the store to the current layout");
        let fresh_dir = path.join("db.migrating");
        if fresh_dir.exists() {
            std::fs::remove_dir_all(&fresh_dir).map_err(engine)?;
        }
        let fresh = Self::open_db(&path, "db.migrating")?;
        let mut batch = sled::Batch::default();
        let mut n = 0usize;
        for kv in self.db.iter() {
            let (k, v) = kv.map_err(engine)?;
            if matches!(k.first(), Some(&keys::RUN) | Some(&keys::STATE)) {
                batch.insert(k, v);
                n += 1;
                if n.is_multiple_of(10_000) {
                    fresh
                        .db
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(engine)?;
                }
            }
        }
        fresh.db.apply_batch(batch).map_err(engine)?;
        let mut chunk = Vec::new();
        let mut findings = 0usize;
        let mut add = |f: Finding| -> Result<()> {
            chunk.push(f);
            if chunk.len() >= 10_000 {
                findings += fresh.restore(std::mem::take(&mut chunk))?;
            }
            Ok(())
        };
        if from == Layout::V1 {
            for kv in self.db.scan_prefix([legacy::RECORD]) {
                let (k, v) = kv.map_err(engine)?;
                let json =
                    legacy::record_json(&v).ok_or_else(|| corrupt(&k, LayoutError::Legacy))?;
                add(serde_json::from_slice(json).map_err(|e| corrupt(&k, e))?)?;
            }
        } else {
            // Records kept their format; only bucket keys and postings changed.
            self.for_each(&mut add)?;
        }
        findings += fresh.restore(chunk)?;
        fresh
            .db
            .insert(keys::LAYOUT, &[keys::LAYOUT_VERSION][..])
            .map_err(engine)?;
        fresh.db.flush().map_err(engine)?;
        drop(fresh);
        drop(self);
        let backup = path.join(if from == Layout::V1 { "db.v1" } else { "db.v2" });
        if backup.exists() {
            std::fs::remove_dir_all(&backup).map_err(engine)?;
        }
        std::fs::rename(path.join("db"), &backup).map_err(engine)?;
        std::fs::rename(&fresh_dir, path.join("db")).map_err(engine)?;
        tracing::warn!(
            findings,
            backup = %backup.display(),
            "store migrated to the current layout; the old database was kept, delete it when satisfied"
        );
        Ok(())
    }
}

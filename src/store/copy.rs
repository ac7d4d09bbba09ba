//! Copies one store into another, whatever their backends (`outwatch migrate`): findings
//! streamed as one restore unit (as given, life cycle included), then the run log and the
//! state; the counts of both stores are compared at the end.

use std::cell::Cell;

use chrono::Utc;

use super::{Findings, ReadError, Reading, Result, Store, StoreError, Unit, Write};

/// What a copy moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Copied {
    pub findings: usize,
    pub runs: usize,
    pub state: usize,
}

/// Copies everything of `from` into `to`, which must hold no findings, no runs and no state.
/// The findings are one unit (all or nothing; streamed, in the target's bounded memory); the
/// run log and the state follow (the state one entry at a time: kept indicator sets are some
/// MB each). Fails with [`StoreError::Refused`] when a count differs at the end.
pub(crate) fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied> {
    let (held, runs_held, state_held) = (to.count()?, to.runs(None, 1)?.len(), state_count(to)?);
    if held + runs_held + state_held > 0 {
        return Err(StoreError::Refused(format!(
            "the target is not empty ({held} findings{}); migrate into a new store",
            if runs_held + state_held > 0 {
                ", a run log and state"
            } else {
                ""
            }
        )));
    }
    let handed = Cell::new(0usize);
    to.ingest_unit(Unit {
        now: Utc::now(),
        write: Write::Restore,
        findings: Findings::Streamed(
            Box::new(|w| {
                from.for_each(&mut |f| {
                    handed.set(handed.get() + 1);
                    w.finding(&f)
                })
                .map_err(ReadError::from)
            }),
            Reading::WholeOrNothing,
        ),
        state: Vec::new(),
        run: None,
    })?;
    let mut runs = from.runs(None, usize::MAX)?;
    runs.reverse();
    for r in &runs {
        to.record_run(r)?;
    }
    let mut state = 0;
    from.state_each("", &mut |k, v| {
        state += 1;
        to.state_put(k, Some(v))
    })?;
    to.flush()?;
    let copied = Copied {
        findings: handed.get(),
        runs: runs.len(),
        state,
    };
    let found = Copied {
        findings: to.count()?,
        runs: to.runs(None, usize::MAX)?.len(),
        state: state_count(to)?,
    };
    let source = Copied {
        findings: from.count()?,
        ..copied
    };
    if found != copied || source != copied {
        return Err(StoreError::Refused(format!(
            "the counts differ after the copy: read {} findings ({} in the source), the target \
             holds {}; runs {} → {}; state {} → {}",
            copied.findings,
            source.findings,
            found.findings,
            copied.runs,
            found.runs,
            copied.state,
            found.state
        )));
    }
    Ok(copied)
}

/// How many state entries `store` holds, read one at a time.
fn state_count(store: &dyn Store) -> Result<usize> {
    let mut n = 0;
    store.state_each("", &mut |_, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

//! Pure scheduling arithmetic: next fire times (with time zone and DST de-duplication), retry
//! backoff and jitter. No clock, no sleeping: the scheduler feeds "now" in, tests feed fixed
//! times in.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::CronSchedule;

/// Retry policy after a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub base: Duration,
    /// Longest wait between two retries.
    pub cap: Duration,
    /// Retries after the first failure; then the job waits for its next scheduled slot.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(3600),
            max_retries: 5,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0-based): `base * 2^retry`, at most `cap`;
    /// `None` once the retries are used up.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.cap))
    }
}

/// The largest jitter added to a slot: a tenth of the schedule's interval, at most `cap`.
pub fn max_jitter(interval: chrono::Duration, cap: Duration) -> Duration {
    (interval / 10).to_std().unwrap_or_default().min(cap)
}

/// A jitter in `[0, max]` from a uniform `unit` in `[0, 1)` (the caller draws the randomness).
pub fn jitter(max: Duration, unit: f64) -> Duration {
    let u = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    max.mul_f64(u).min(max)
}

/// The next slot of `schedule` (read in time zone `tz`) strictly after `after`. A local time
/// that occurs twice when clocks go back is fired once: a candidate with the same local wall
/// time as `last_fired` is skipped. Missed slots are never returned (the result is after
/// `after`), so a late wake-up skips them rather than bursting.
pub fn next_fire(
    schedule: &CronSchedule,
    tz: Tz,
    after: DateTime<Utc>,
    last_fired: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let last_local = last_fired.map(|t| t.with_timezone(&tz).naive_local());
    schedule
        .schedule
        .after(&after.with_timezone(&tz))
        .take(4)
        .map(|t| t.with_timezone(&Utc))
        .find(|t| Some(t.with_timezone(&tz).naive_local()) != last_local)
}

/// The last slot of `schedule` (read in `tz`) at or before `at`: the slot a catch-up run at
/// start-up stands for, so that nodes starting together agree on it. Looked for over a span
/// of the schedule's interval, widened fourfold up to eight times (an irregular schedule).
pub fn prev_fire(schedule: &CronSchedule, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut span = schedule
        .interval(&at)
        .unwrap_or(chrono::Duration::days(1))
        .max(chrono::Duration::seconds(1));
    for _ in 0..8 {
        let last = schedule
            .schedule
            .after(&(at - span).with_timezone(&tz))
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t <= at)
            .last();
        if last.is_some() {
            return last;
        }
        span = span * 4;
    }
    None
}

/// How long to sleep towards `target` from `now`: the remaining time, but at most `step`, so
/// the caller looks at the wall clock again (suspend, NTP steps) at least that often.
pub fn sleep_step(now: DateTime<Utc>, target: DateTime<Utc>, step: Duration) -> Option<Duration> {
    let left = (target - now).to_std().ok()?;
    if left.is_zero() {
        return None;
    }
    Some(left.min(step))
}

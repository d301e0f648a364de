//! When to sync: the one backoff policy for stores and peers, and which stores are due.
//!
//! Both are pure (time and randomness come in as arguments), so the rules are tested as tables;
//! the daemon, the CLI and an embedding app ask the same questions and get the same answers.

use super::{StoreId, StoreStatus};
use std::time::Duration;

/// Retrying after failures: the pause doubles from `first` up to `longest`, and each pause is
/// scaled by a random factor in 0.75–1.25 so that devices do not retry in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failure.
    pub first: Duration,
    /// The longest pause.
    pub longest: Duration,
}

impl Backoff {
    /// ferry's policy for stores and peers alike: 1 s, 2 s, 4 s … up to 5 minutes. A peer or
    /// store that comes back is noticed sooner anyway (mDNS news, an incoming connection, a
    /// local write, "sync now").
    pub const DEFAULT: Self = Self { first: Duration::from_secs(1), longest: Duration::from_secs(300) };

    /// The same policy with LAN bounds, for peer links: 0.25 s doubling to 1.5 s. A retry costs one
    /// connection attempt on the local network, and a peer that comes back after a partition
    /// must be found again within about two seconds, whatever told this device or nothing did.
    pub const LAN: Self = Self { first: Duration::from_millis(250), longest: Duration::from_millis(1500) };

    /// The pause after `failures` failures in a row (at least 1), before jitter.
    pub fn base(&self, failures: u64) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1).min(32)).unwrap_or(32);
        self.first.saturating_mul(2u32.saturating_pow(doublings)).min(self.longest)
    }

    /// The pause after `failures` failures, scaled by `jitter` in 0.0–1.0 (0.5: no change).
    pub fn pause(&self, failures: u64, jitter: f64) -> Duration {
        self.base(failures).mul_f64(0.75 + jitter.clamp(0.0, 1.0) * 0.5)
    }

    /// [`Backoff::pause`] with fresh random jitter.
    pub fn pause_now(&self, failures: u64) -> Duration {
        let mut noise = [0u8; 2];
        // Without randomness the pause is merely unjittered.
        let jitter = getrandom::fill(&mut noise).map_or(0.5, |()| f64::from(u16::from_le_bytes(noise)) / 65535.0);
        self.pause(failures, jitter)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why stores are being synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncReason {
    /// The user asked ("sync now"): every store, backoff or not.
    SyncNow,
    /// Local writes to publish: every store not waiting out a backoff.
    LocalWrite,
    /// The periodic round: stores whose interval has passed and whose backoff is over.
    Tick,
}

/// Why a store is due now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DueBecause {
    /// The user asked.
    Asked,
    /// Local writes wait to be published.
    LocalWrites,
    /// It was never synced.
    NeverSynced,
    /// The interval since its last attempt has passed.
    IntervalPassed,
}

/// Why a store is not due now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WaitBecause {
    /// It failed and its backoff runs until this time (ms since the Unix epoch).
    BackingOff {
        /// When the backoff ends.
        until_ms: u64,
    },
    /// It was attempted recently; the next round is at this time.
    Interval {
        /// When the interval has passed.
        next_ms: u64,
    },
    /// A peer (a device pulled from directly), which links follow, not store rounds.
    Peer,
}

/// One store's answer to "is it due?".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Due {
    /// The store.
    pub store: StoreId,
    /// Its location.
    pub url: String,
    /// Due now, and why; or why not.
    pub verdict: Result<DueBecause, WaitBecause>,
}

/// Which of `stores` are due for `reason` at `now_ms`, given the daemon's `interval` between
/// periodic rounds: one answer per store, in order. Pure.
pub fn due(stores: &[StoreStatus], reason: SyncReason, interval: Duration, now_ms: u64) -> Vec<Due> {
    let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    stores
        .iter()
        .map(|store| {
            let backing_off = store.next_retry_ms.filter(|&until| until > now_ms);
            let verdict = match (reason, backing_off) {
                _ if store.peer => Err(WaitBecause::Peer),
                (SyncReason::SyncNow, _) => Ok(DueBecause::Asked),
                (_, Some(until_ms)) => Err(WaitBecause::BackingOff { until_ms }),
                (SyncReason::LocalWrite, None) => Ok(DueBecause::LocalWrites),
                (SyncReason::Tick, None) => match store.last_attempt_ms {
                    None => Ok(DueBecause::NeverSynced),
                    Some(at) if at.saturating_add(interval) <= now_ms => Ok(DueBecause::IntervalPassed),
                    Some(at) => Err(WaitBecause::Interval { next_ms: at.saturating_add(interval) }),
                },
            };
            Due { store: store.id, url: store.url.clone(), verdict }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreState;

    fn store(peer: bool, last_attempt_ms: Option<u64>, next_retry_ms: Option<u64>) -> StoreStatus {
        StoreStatus {
            id: StoreId(1),
            peer,
            url: "folder:/s".into(),
            state: StoreState::UpToDate,
            last_attempt_ms,
            last_success_ms: None,
            last_error: None,
            failures: 0,
            next_retry_ms,
            uploaded_seq: 0,
            pending_segments: 0,
            queued_objects: 0,
            pending_purge: None,
            size: None,
        }
    }

    #[test]
    fn which_stores_are_due() {
        use DueBecause::*;
        use SyncReason::*;
        let minute = Duration::from_secs(60);
        let now = 1_000_000;
        #[rustfmt::skip]
        let table: &[(SyncReason, StoreStatus, Result<DueBecause, WaitBecause>)] = &[
            // the user asks: every store, even one backing off
            (SyncNow, store(false, Some(now - 1), Some(now + 5_000)), Ok(Asked)),
            (SyncNow, store(false, None, None), Ok(Asked)),
            // a local write: every store not backing off
            (LocalWrite, store(false, Some(now - 1), None), Ok(LocalWrites)),
            (LocalWrite, store(false, Some(now - 1), Some(now + 5_000)), Err(WaitBecause::BackingOff { until_ms: now + 5_000 })),
            // a backoff that has ended no longer counts
            (LocalWrite, store(false, Some(now - 1), Some(now)), Ok(LocalWrites)),
            // the periodic round: never synced, or the interval passed, and no backoff
            (Tick, store(false, None, None), Ok(NeverSynced)),
            (Tick, store(false, Some(now - 60_000), None), Ok(IntervalPassed)),
            (Tick, store(false, Some(now - 59_999), None), Err(WaitBecause::Interval { next_ms: now + 1 })),
            (Tick, store(false, Some(now - 600_000), Some(now + 1)), Err(WaitBecause::BackingOff { until_ms: now + 1 })),
            // peers are followed by links, never by store rounds
            (SyncNow, store(true, None, None), Err(WaitBecause::Peer)),
            (Tick, store(true, None, None), Err(WaitBecause::Peer)),
        ];
        for (i, (reason, status, expected)) in table.iter().enumerate() {
            let answer = due(std::slice::from_ref(status), *reason, minute, now);
            assert_eq!(answer[0].verdict, *expected, "row {i}: {reason:?}");
        }
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_with_bounded_jitter() {
        let policy = Backoff::DEFAULT;
        #[rustfmt::skip]
        let table: &[(u64, u64)] = &[(0, 1), (1, 1), (2, 2), (3, 4), (6, 32), (9, 256), (10, 300), (64, 300), (u64::MAX, 300)];
        for &(failures, seconds) in table {
            let base = Duration::from_secs(seconds);
            assert_eq!(policy.base(failures), base, "{failures} failures");
            assert_eq!(policy.pause(failures, 0.0), base.mul_f64(0.75));
            assert_eq!(policy.pause(failures, 1.0), base.mul_f64(1.25));
            assert_eq!(policy.pause(failures, 7.0), base.mul_f64(1.25), "jitter is clamped");
            let pause = policy.pause_now(failures);
            assert!(pause >= base.mul_f64(0.75) && pause <= base.mul_f64(1.25), "{failures}: {pause:?}");
        }
    }
}

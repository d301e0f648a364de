//! Stores that wrap stores: request counting and fault injection, for tests and status.

use crate::{Created, Fetched, Store, StoreError, StoreErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many calls of each kind a [`CountingStore`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `get` and `get_if_changed`.
    pub reads: u64,
    /// `list`.
    pub lists: u64,
    /// `put` and `put_if_absent`.
    pub writes: u64,
    /// `delete`.
    pub deletes: u64,
    /// Bytes sent by `put` and `put_if_absent`.
    pub bytes_written: u64,
}

impl CallCounts {
    /// Every request (bytes are not requests).
    pub fn total(&self) -> u64 {
        self.reads + self.lists + self.writes + self.deletes
    }
}

/// Counts the requests made to the store it wraps.
#[derive(Debug, Clone)]
pub struct CountingStore<S> {
    inner: S,
    counts: Arc<[AtomicU64; 5]>,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner, counts: Arc::new(Default::default()) }
    }

    /// The counts so far.
    pub fn counts(&self) -> CallCounts {
        let [reads, lists, writes, deletes, bytes_written] = &*self.counts;
        CallCounts {
            reads: reads.load(Ordering::Relaxed),
            lists: lists.load(Ordering::Relaxed),
            writes: writes.load(Ordering::Relaxed),
            deletes: deletes.load(Ordering::Relaxed),
            bytes_written: bytes_written.load(Ordering::Relaxed),
        }
    }

    /// Starts counting from zero.
    pub fn reset(&self) {
        self.counts.iter().for_each(|c| c.store(0, Ordering::Relaxed));
    }

    fn count(&self, slot: usize) {
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
    }
}

impl<S: Store> Store for CountingStore<S> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count(0);
        self.inner.get(path)
    }
    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        self.count(0);
        self.inner.get_if_changed(path, etag)
    }
    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        self.count(2);
        self.counts[4].fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.inner.put_if_absent(path, bytes)
    }
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.count(2);
        self.counts[4].fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.inner.put(path, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.count(1);
        self.inner.list(prefix)
    }
    fn list_sized(&self, prefix: &str) -> Result<Vec<crate::Listed>, StoreError> {
        self.count(1);
        self.inner.list_sized(prefix)
    }
    fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.count(3);
        self.inner.delete(path)
    }
}

/// When a [`FaultyStore`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPlan {
    /// Never (a transparent wrapper).
    Never,
    /// Call number `n` (from 0) fails, and so does every later call: the process "died" there.
    CrashAt(u64),
    /// Every call fails while offline (see [`FaultyStore::set_offline`]).
    Offline,
}

/// Fails calls to the store it wraps, as planned: for crash-safety and offline tests.
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    plan: FaultPlan,
    calls: Arc<AtomicU64>,
    offline: Arc<AtomicBool>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner` with a plan.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        Self { inner, plan, calls: Arc::default(), offline: Arc::new(AtomicBool::new(plan == FaultPlan::Offline)) }
    }

    /// Takes the store off- or online (with [`FaultPlan::Offline`]).
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::Relaxed);
    }

    /// Calls made so far, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn enter(&self, path: &str) -> Result<(), StoreError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let fail = match self.plan {
            FaultPlan::Never => false,
            FaultPlan::CrashAt(n) => call >= n,
            FaultPlan::Offline => self.offline.load(Ordering::Relaxed),
        };
        if fail {
            Err(StoreError::new(StoreErrorKind::Unavailable, path, "injected fault: store unreachable"))
        } else {
            Ok(())
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.enter(path)?;
        self.inner.get(path)
    }
    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        self.enter(path)?;
        self.inner.get_if_changed(path, etag)
    }
    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        self.enter(path)?;
        self.inner.put_if_absent(path, bytes)
    }
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.enter(path)?;
        self.inner.put(path, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.enter(prefix)?;
        self.inner.list(prefix)
    }
    fn list_sized(&self, prefix: &str) -> Result<Vec<crate::Listed>, StoreError> {
        self.enter(prefix)?;
        self.inner.list_sized(prefix)
    }
    fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.enter(path)?;
        self.inner.delete(path)
    }
}

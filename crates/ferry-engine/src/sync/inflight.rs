//! One pull of a device's log at a time, across every handle of a home in this process: the
//! daemon follows several peers at once, and two of them serving the same device's new
//! segments would otherwise both be read, fetched, verified and imported (the second import
//! adding nothing). The handle that finds a device claimed leaves it to the one pulling it and
//! says so ([`crate::PullReport::deferred`]); pulling again once that one is done finds the
//! device up to date and fetches nothing.

use ferry_format::DeviceId;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PULLING: Mutex<BTreeSet<(PathBuf, DeviceId)>> = Mutex::new(BTreeSet::new());

/// A claim on pulling one device's log into one home; released when dropped.
pub(crate) struct Claim {
    key: (PathBuf, DeviceId),
}

/// Claims pulling `device` into `home`, unless another handle of this process holds it.
pub(crate) fn claim(home: &Path, device: DeviceId) -> Option<Claim> {
    let key = (home.to_path_buf(), device);
    let claimed = PULLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key.clone());
    // Made only when claimed: a dropped `Claim` releases its key.
    claimed.then(|| Claim { key })
}

impl Drop for Claim {
    fn drop(&mut self) {
        PULLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.key);
    }
}

//! Recent connection attempts, both ways, with the reason of each failure: what
//! `GET /api/sync/attempts` and `ferry peers` show when a peer is refused or unreachable.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many attempts are kept (the oldest go first).
const KEPT: usize = 500;

/// Which side started the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Another machine connected to this device.
    Inbound,
    /// This device connected to a peer.
    Outbound,
}

/// One attempt.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Who started it.
    pub direction: Direction,
    /// The remote address.
    pub address: String,
    /// The vault device at the other end, when its key was recognised.
    pub device_id: Option<String>,
    /// Whether it worked.
    pub ok: bool,
    /// What happened: what was pulled, or why it failed.
    pub detail: String,
}

/// The attempts log, shared by the server, the peer links and the local API.
#[derive(Clone, Debug, Default)]
pub struct Attempts(Arc<Mutex<VecDeque<Attempt>>>);

impl Attempts {
    /// Records an attempt.
    pub fn record(&self, direction: Direction, address: &str, device_id: Option<String>, ok: bool, detail: String) {
        let mut log = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if log.len() == KEPT {
            log.pop_front();
        }
        log.push_back(Attempt {
            at_ms: crate::now_ms(),
            direction,
            address: address.to_owned(),
            device_id,
            ok,
            detail,
        });
    }

    /// The newest `limit` attempts, newest first.
    pub fn latest(&self, limit: usize) -> Vec<Attempt> {
        let log = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_attempts() {
        let attempts = Attempts::default();
        for n in 0..KEPT + 3 {
            attempts.record(Direction::Inbound, "127.0.0.1:1", None, false, format!("attempt {n}"));
        }
        let latest = attempts.latest(KEPT + 10);
        assert_eq!(latest.len(), KEPT);
        assert_eq!(latest[0].detail, format!("attempt {}", KEPT + 2));
        assert_eq!(attempts.latest(2).len(), 2);
    }
}

//! What a device serves changed: the signal peers long-poll on (`GET /v1/wait`).
//!
//! A version is `<boot>-<counter>`: the boot part is random per process, so a restarted
//! device never looks unchanged to a peer that remembers its old version.

use std::time::Duration;
use tokio::sync::watch;

/// A cloneable handle on the version of what this device serves.
#[derive(Clone, Debug)]
pub struct Changes {
    boot: u64,
    counter: watch::Sender<u64>,
}

impl Default for Changes {
    fn default() -> Self {
        let mut boot = [0u8; 8];
        // Without randomness the boot part falls back to the clock: still distinct per start.
        if getrandom::fill(&mut boot).is_err() {
            boot = crate::now_ms().to_le_bytes();
        }
        Self { boot: u64::from_le_bytes(boot), counter: watch::Sender::new(0) }
    }
}

impl Changes {
    /// The current version.
    pub fn version(&self) -> String {
        format!("{:016x}-{}", self.boot, *self.counter.borrow())
    }

    /// What this device serves has changed: wake every waiting peer.
    pub fn bump(&self) {
        self.counter.send_modify(|counter| *counter += 1);
    }

    /// Waits until the version differs from `seen` or `timeout` passes; returns the version then.
    pub async fn wait_unlike(&self, seen: &str, timeout: Duration) -> String {
        let mut receiver = self.counter.subscribe();
        let changed = async {
            while self.version() == seen {
                if receiver.changed().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, changed).await;
        self.version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_a_change_or_the_timeout() {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap_or_else(|e| panic!("{e}"));
        let changes = Changes::default();
        let first = changes.version();
        let unchanged = runtime.block_on(changes.wait_unlike(&first, Duration::from_millis(20)));
        assert_eq!(unchanged, first);
        let (waiter, bumper, seen) = (changes.clone(), changes.clone(), first.clone());
        let changed = runtime.block_on(async move {
            let wait = tokio::spawn(async move { waiter.wait_unlike(&seen, Duration::from_secs(30)).await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            bumper.bump();
            wait.await
        });
        assert_eq!(changed.unwrap_or_default(), changes.version());
        assert_ne!(changes.version(), first);
        assert!(!Changes::default().version().starts_with(&changes.version()[..16]));
    }
}

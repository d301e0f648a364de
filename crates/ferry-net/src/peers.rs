//! What the daemon knows of each other device of the vault as a peer: where it was found
//! (mDNS, the address that last worked), when it was last seen and synced, and why the last
//! attempt failed. Shared by the links, the server, discovery and the local API; each device
//! also has a [`Wake`] so a link sleeping after failures retries as soon as there is news.

use ferry_format::DeviceId;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A peer's state, as users see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// No address known yet (not found by mDNS, none stored).
    #[default]
    Searching,
    /// The last attempt worked; changes arrive as they happen.
    Connected,
    /// No address answered; retrying with backoff.
    Unreachable,
    /// It answered but the exchange failed (refused, or bad data): see the error.
    Failing,
}

/// One peer, as shown by `GET /api/sync/peers` and `ferry peers`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerInfo {
    /// The device.
    pub device_id: String,
    /// Its name in the registry.
    pub name: String,
    /// Its state.
    pub state: PeerState,
    /// Where mDNS last found it.
    pub mdns_address: Option<String>,
    /// The address in use, or that last worked.
    pub address: Option<String>,
    /// The addresses stored for it (`ferry peers add`, or found by mDNS and worked), the one
    /// that last worked first.
    pub stored_addresses: Vec<String>,
    /// Last contact, either way (ms since the Unix epoch).
    pub last_seen_ms: Option<u64>,
    /// Last successful pull from it.
    pub last_sync_ms: Option<u64>,
    /// Ops imported from it since the daemon started.
    pub pulled_ops: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Since when it has had changes this device has not imported yet (ms since the Unix
    /// epoch): set when it says its data changed, cleared once they are imported. A peer that
    /// stays behind on a bad link shows here, not as "connected and fine".
    pub behind_since_ms: Option<u64>,
    /// How long the last catch-up took, from the peer's news to the import (ms).
    pub last_catch_up_ms: Option<u64>,
}

/// A catch-up slower than this is logged.
const SLOW_CATCH_UP_MS: u64 = 5_000;

/// A flag a sleeping thread can be woken by.
#[derive(Debug, Default)]
pub struct Wake {
    woken: Mutex<bool>,
    bell: Condvar,
}

impl Wake {
    /// Wakes the sleeper (or makes its next sleep return at once).
    pub fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.bell.notify_all();
    }

    /// Sleeps up to `duration`, less if woken. Returns whether it was woken.
    pub fn sleep(&self, duration: Duration) -> bool {
        let guard = self.woken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut woken, _) = self
            .bell
            .wait_timeout_while(guard, duration, |woken| !*woken)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *woken)
    }
}

#[derive(Default)]
struct Entry {
    info: PeerInfo,
    mdns: Option<SocketAddr>,
    wake: Arc<Wake>,
}

/// The peer table.
#[derive(Clone, Default)]
pub struct PeerTable(Arc<Mutex<HashMap<DeviceId, Entry>>>);

impl std::fmt::Debug for PeerTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerTable({} peers)", self.lock().len())
    }
}

impl PeerTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, Entry>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with(&self, device: DeviceId, f: impl FnOnce(&mut Entry)) {
        let mut table = self.lock();
        let entry = table.entry(device).or_default();
        if entry.info.device_id.is_empty() {
            entry.info.device_id = device.to_string();
        }
        f(entry);
    }

    /// Keeps exactly these devices (the vault's other active devices), with their names.
    pub fn set_members(&self, members: &[(DeviceId, String)]) {
        let mut table = self.lock();
        table.retain(|device, _| members.iter().any(|(d, _)| d == device));
        for (device, name) in members {
            let entry = table.entry(*device).or_default();
            entry.info.device_id = device.to_string();
            entry.info.name.clone_from(name);
        }
    }

    /// The devices in the table.
    pub fn devices(&self) -> Vec<DeviceId> {
        self.lock().keys().copied().collect()
    }

    /// Every peer, sorted by name.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self.lock().values().map(|e| e.info.clone()).collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.device_id.cmp(&b.device_id)));
        peers
    }

    /// The state of `device`, if it is a peer.
    pub fn state(&self, device: DeviceId) -> Option<PeerState> {
        self.lock().get(&device).map(|entry| entry.info.state)
    }

    /// The device's wake flag.
    pub fn wake_of(&self, device: DeviceId) -> Arc<Wake> {
        let mut wake = None;
        self.with(device, |entry| wake = Some(entry.wake.clone()));
        wake.unwrap_or_default()
    }

    /// Wakes every link sleeping after failures (sync now).
    pub fn wake_all(&self) {
        for entry in self.lock().values() {
            entry.wake.wake();
        }
    }

    /// mDNS found `device` at `addr`.
    pub fn discovered(&self, device: DeviceId, addr: SocketAddr) {
        self.with(device, |entry| {
            let new = entry.mdns != Some(addr);
            entry.mdns = Some(addr);
            entry.info.mdns_address = Some(addr.to_string());
            entry.info.last_seen_ms = Some(crate::now_ms());
            if new {
                entry.wake.wake();
            }
        });
    }

    /// Where mDNS last found `device`.
    pub fn mdns_address(&self, device: DeviceId) -> Option<SocketAddr> {
        self.lock().get(&device).and_then(|entry| entry.mdns)
    }

    /// `device` connected to this one: it is up, and so is the network, so every link waiting
    /// to retry tries now.
    pub fn contacted_by(&self, device: DeviceId) {
        let mut was_waiting = false;
        self.with(device, |entry| {
            entry.info.last_seen_ms = Some(crate::now_ms());
            was_waiting = entry.info.state != PeerState::Connected;
        });
        if was_waiting {
            self.wake_waiting();
        }
    }

    /// `device` says its data changed: this device is behind it until a pull catches up.
    pub fn has_news(&self, device: DeviceId) {
        self.with(device, |entry| {
            entry.info.behind_since_ms.get_or_insert_with(crate::now_ms);
        });
    }

    /// A pull from `device` at `addr` worked; `caught_up` when it imported everything the peer
    /// served (nothing was left to another link).
    pub fn synced(&self, device: DeviceId, addr: &str, ops: u64, caught_up: bool) {
        self.answered(device, addr);
        self.with(device, |entry| {
            let now = crate::now_ms();
            entry.info.last_sync_ms = Some(now);
            entry.info.pulled_ops += ops;
            if caught_up && let Some(since) = entry.info.behind_since_ms.take() {
                let took = now.saturating_sub(since);
                entry.info.last_catch_up_ms = Some(took);
                if took > SLOW_CATCH_UP_MS {
                    let (peer, device) = (&entry.info.name, device.short());
                    tracing::warn!(%peer, %device, seconds = took / 1000, "caught up with a peer slowly");
                }
            }
        });
    }

    /// `device` answered at `addr` (a long-poll returned): the link is up. A peer coming back
    /// means the network may be back too: every other link still waiting to retry tries now.
    pub fn answered(&self, device: DeviceId, addr: &str) {
        let mut came_back = false;
        self.with(device, |entry| {
            if entry.info.state != PeerState::Connected {
                came_back = true;
                tracing::info!(peer = %entry.info.name, device = %device.short(), %addr, "peer connected");
            }
            entry.info.state = PeerState::Connected;
            entry.info.address = Some(addr.to_owned());
            entry.info.last_seen_ms = Some(crate::now_ms());
            entry.info.last_error = None;
        });
        if came_back {
            self.wake_waiting();
        }
    }

    /// Wakes the links of peers not connected now.
    fn wake_waiting(&self) {
        for entry in self.lock().values().filter(|entry| entry.info.state != PeerState::Connected) {
            entry.wake.wake();
        }
    }

    /// The last attempt at `device` failed. Logged when the state or the reason changes, so a
    /// peer that stays away is one line, not one per retry.
    pub fn failed(&self, device: DeviceId, state: PeerState, error: String) {
        self.with(device, |entry| {
            let news = entry.info.state != state || entry.info.last_error.as_deref() != Some(error.as_str());
            if news {
                let (peer, device) = (&entry.info.name, device.short());
                match (entry.info.state, state) {
                    (PeerState::Connected, _) => tracing::warn!(%peer, %device, %error, "peer lost"),
                    (_, PeerState::Failing) => tracing::warn!(%peer, %device, %error, "peer refused or failing"),
                    _ => tracing::info!(%peer, %device, %error, "peer unreachable"),
                }
            }
            entry.info.state = state;
            entry.info.last_error = Some(error);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_ends_a_sleep_early_and_only_once() {
        let wake = Arc::new(Wake::default());
        let waker = wake.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        });
        assert!(wake.sleep(Duration::from_secs(30)));
        assert!(!wake.sleep(Duration::from_millis(1)));
        let _ = thread.join();
    }

    #[test]
    fn a_peer_is_behind_from_its_news_until_a_pull_catches_up() {
        let a = DeviceId::from_bytes([1; 16]);
        let table = PeerTable::default();
        table.set_members(&[(a, "laptop".into())]);
        table.has_news(a);
        let since = table.snapshot()[0].behind_since_ms;
        assert!(since.is_some());
        table.has_news(a);
        assert_eq!(table.snapshot()[0].behind_since_ms, since, "the first news counts");
        table.synced(a, "10.0.0.1:7420", 1, false);
        assert_eq!(table.snapshot()[0].behind_since_ms, since, "a pull that left some behind is not a catch-up");
        table.synced(a, "10.0.0.1:7420", 1, true);
        let peer = &table.snapshot()[0];
        assert_eq!(peer.behind_since_ms, None);
        assert!(peer.last_catch_up_ms.is_some());
    }

    #[test]
    fn members_decide_who_is_in_the_table() {
        let (a, b) = (DeviceId::from_bytes([1; 16]), DeviceId::from_bytes([2; 16]));
        let table = PeerTable::default();
        table.set_members(&[(a, "laptop".into()), (b, "phone".into())]);
        table.discovered(a, "10.0.0.1:7420".parse().unwrap_or_else(|e| panic!("{e}")));
        table.synced(b, "10.0.0.2:7420", 5, true);
        table.set_members(&[(a, "laptop".into())]);
        let peers = table.snapshot();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].mdns_address.as_deref(), Some("10.0.0.1:7420"));
        assert_eq!(peers[0].state, PeerState::Searching);
    }
}

//! One thread per other device of the vault: find it (dial order: where mDNS saw it, the
//! address that last worked, the other stored addresses), long-poll it for changes, pull when
//! something changed. On failure the next address is tried; when none answers, the link sleeps
//! with ferry's backoff (`ferry_engine::Backoff`), and wakes early when the peer shows up (mDNS, or the
//! peer connecting here) or the user asks to sync now.

use crate::attempts::{Attempts, Direction};
use crate::dial::dial_order;
use crate::peer_store::PeerStore;
use crate::peers::{PeerState, PeerTable};
use crate::tls::{Pins, TlsIdentity};
use ferry_engine::{Backoff, Vault};
use ferry_format::DeviceId;
use ferry_store::{StoreError, StoreErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one long-poll is held by the peer: with `WAIT_GRACE`, the longest a dead or frozen
/// peer still shows as connected (one small request every few seconds per idle peer).
const POLL: Duration = Duration::from_secs(3);
/// The pause before pulling again what another link was importing.
const DEFERRED_PAUSE: Duration = Duration::from_millis(200);
/// The pause while no address at all is known, before reading the stored ones again (mDNS
/// news wakes it sooner).
const SEARCH_PAUSE: Duration = Duration::from_secs(2);

/// What every link shares.
#[derive(Clone)]
pub(crate) struct LinkShared {
    pub identity: Arc<TlsIdentity>,
    pub pins: Pins,
    pub peers: PeerTable,
    pub attempts: Attempts,
}

/// A running link; dropping it asks the thread to stop (it ends after its current long-poll).
pub(crate) struct Link {
    stop: Arc<AtomicBool>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts following `device`, with its own connection to the vault.
pub(crate) fn spawn(device: DeviceId, vault: Vault, shared: LinkShared) -> std::io::Result<Link> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name(format!("ferry-link-{}", &device.to_string()[..8]))
        .spawn(move || run(device, vault, &shared, &flag))?;
    Ok(Link { stop })
}

/// Why following one address ended.
struct Failure {
    state: PeerState,
    error: String,
}

fn run(device: DeviceId, mut vault: Vault, shared: &LinkShared, stop: &AtomicBool) {
    let wake = shared.peers.wake_of(device);
    let mut seen = String::new();
    let mut failures = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let addresses = addresses(device, &vault, &shared.peers);
        if addresses.is_empty() {
            wake.sleep(SEARCH_PAUSE);
            continue;
        }
        let mut last_failure = None;
        for (addr, stored) in &addresses {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match follow(device, addr, *stored, &mut vault, shared, stop, &mut seen) {
                Ok(()) => return,
                Err(failure) => last_failure = Some(failure),
            }
        }
        if let Some(failure) = last_failure {
            // A link that was following its peer starts its backoff over.
            if shared.peers.state(device) == Some(PeerState::Connected) {
                failures = 0;
            }
            shared.peers.failed(device, failure.state, failure.error);
        }
        failures = failures.saturating_add(1);
        wake.sleep(Backoff::LAN.pause_now(failures));
    }
}

/// Where to look for `device` now (see [`dial_order`]).
fn addresses(device: DeviceId, vault: &Vault, peers: &PeerTable) -> Vec<(String, bool)> {
    let stored = vault.peer_addresses_of(device).unwrap_or_default();
    dial_order(peers.mdns_address(device).map(|a| a.to_string()), stored)
}

/// Follows `device` at `addr` until the address fails (`Err`) or the link stops (`Ok`).
fn follow(
    device: DeviceId,
    addr: &str,
    mut stored: bool,
    vault: &mut Vault,
    shared: &LinkShared,
    stop: &AtomicBool,
    seen: &mut String,
) -> Result<(), Failure> {
    let who = Some(device.to_string());
    let fail = |state: PeerState, error: String| {
        shared.attempts.record(Direction::Outbound, addr, who.clone(), false, error.clone());
        Failure { state, error }
    };
    let peer = PeerStore::new(addr, &shared.identity, shared.pins.clone())
        .map_err(|e| fail(PeerState::Failing, e.to_string()))?;
    let mut imports = ImportLog::default();
    while !stop.load(Ordering::Relaxed) {
        let waited = peer.wait_for_change(seen, POLL).map_err(|e| fail(state_of(&e), e.to_string()))?;
        if waited.device.parse::<DeviceId>().ok() != Some(device) {
            let error = format!("{addr} now answers as device {}, not {device}", waited.device);
            return Err(fail(PeerState::Failing, error));
        }
        shared.peers.answered(device, addr);
        if waited.version == *seen {
            continue;
        }
        shared.peers.has_news(device);
        match vault.pull_from_peer(&peer) {
            Ok(report) => {
                if report.deferred.is_empty() {
                    *seen = waited.version;
                } else {
                    // Another link is importing some of what this peer serves: look again once
                    // it is done (the next wait answers at once), finding those up to date.
                    std::thread::sleep(DEFERRED_PAUSE);
                }
                // An address found by mDNS is remembered once as the last good one (stored
                // ones already are: their last success orders them). Failing that is harmless.
                if !stored {
                    stored = vault.note_peer_address(device, addr).is_ok();
                }
                shared.peers.synced(device, addr, report.imported_ops, report.deferred.is_empty());
                imports.add(device, addr, report.imported_ops, report.imported_segments);
                let detail = format!("pulled {} ops in {} segments", report.imported_ops, report.imported_segments);
                shared.attempts.record(Direction::Outbound, addr, who.clone(), true, detail);
            }
            Err(err) => {
                let state = match &err {
                    ferry_engine::Error::Store(e) => state_of(e),
                    _ => PeerState::Failing,
                };
                return Err(fail(state, err.with_causes()));
            }
        }
    }
    Ok(())
}

/// Import counts from one peer, logged at most once a second so a busy link stays readable.
#[derive(Default)]
struct ImportLog {
    ops: u64,
    segments: u64,
    logged: Option<std::time::Instant>,
}

impl ImportLog {
    fn add(&mut self, device: DeviceId, addr: &str, ops: u64, segments: u64) {
        self.ops += ops;
        self.segments += segments;
        if self.ops == 0 || self.logged.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        tracing::info!(device = %device.short(), %addr, ops = self.ops, segments = self.segments, "imported from peer");
        (self.ops, self.segments, self.logged) = (0, 0, Some(std::time::Instant::now()));
    }
}

fn state_of(err: &StoreError) -> PeerState {
    match err.kind {
        StoreErrorKind::Unavailable => PeerState::Unreachable,
        _ => PeerState::Failing,
    }
}

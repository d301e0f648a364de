//! The daemon behind `ferry serve`: everything that keeps a device in sync without anyone
//! typing `ferry sync`.
//!
//! Threads, each with its own connection to the vault so that none waits on another's I/O:
//! - the **watcher** polls SQLite's `data_version` (20 times a second: one page read), so it
//!   sees writes from any process — the CLI, an app using the library. On a change it seals the
//!   new ops into a segment and, if what the device serves changed, bumps [`Changes`], which
//!   answers every peer's long-poll at once; it also asks the store thread for a push. Every
//!   couple of seconds it refreshes the TLS pins and the peer links from the device registry,
//!   so a device paired or revoked anywhere is trusted or refused here within seconds;
//! - the **peer server** serves what the device holds (`server`), and the **local API**
//!   (`api`) answers apps on 127.0.0.1;
//! - one **link** per other device follows it (`link`), found by mDNS (`discovery`) or at a
//!   stored address;
//! - the **store thread** syncs the stores: soon after a local write, on an interval, on
//!   "sync now", honouring each store's backoff after failures.

use crate::api::{self, ApiState, DaemonInfo};
use crate::attempts::{Attempt, Attempts, Direction};
use crate::changes::Changes;
use crate::discovery::{self, Discovery};
use crate::link::{self, Link, LinkShared};
use crate::peers::{PeerInfo, Wake};
use crate::replicator::Replicator;
use crate::server::{ServeError, Server, ServerEvents, serve};
use crate::tls::{Pins, TlsError, TlsIdentity};
use ferry_engine::{SyncReason, Vault};
use ferry_format::DeviceId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the watcher looks for local writes.
const WATCH_EVERY: Duration = Duration::from_millis(50);
/// How often the registry (pins, links) is re-read.
const REGISTRY_EVERY: Duration = Duration::from_secs(2);
/// How long local writes gather before a push to the stores.
const PUSH_AFTER_WRITE: Duration = Duration::from_secs(1);
/// The store thread looks at least this often whether a store is due (its backoff may end).
const STORE_TICK: Duration = Duration::from_secs(5);

/// How to run the daemon.
pub struct DaemonConfig {
    /// Where the peer API listens (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the local API listens (a loopback address), if at all.
    pub api: Option<SocketAddr>,
    /// Advertise and browse with mDNS.
    pub mdns: bool,
    /// Syncs the stores (`None`: peers only).
    pub stores: Option<StoreSync>,
}

/// How the daemon syncs the stores.
#[derive(Debug)]
pub struct StoreSync {
    /// Opens and syncs them ([`Replicator::for_vault`]).
    pub replicator: Replicator,
    /// The pause between periodic rounds.
    pub interval: Duration,
}

/// What can stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The TLS identity.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The vault.
    #[error(transparent)]
    Engine(#[from] ferry_engine::Error),
    /// Files or threads.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io { what: what.to_owned(), source }
}

/// Asks the store thread to sync.
#[derive(Clone, Debug, Default)]
pub(crate) struct StoreTrigger {
    wake: Arc<Wake>,
    forced: Arc<AtomicBool>,
    written: Arc<AtomicBool>,
}

impl StoreTrigger {
    /// Sync every store now, whatever its backoff.
    pub(crate) fn now(&self) {
        self.forced.store(true, Ordering::Relaxed);
        self.wake.wake();
    }

    fn after_write(&self) {
        self.written.store(true, Ordering::Relaxed);
        self.wake.wake();
    }
}

/// A running daemon; dropping it stops it.
pub struct Daemon {
    device: DeviceId,
    home: PathBuf,
    peer_server: Option<Server>,
    api_server: Option<Server>,
    info: DaemonInfo,
    events: ServerEvents,
    stop: Arc<AtomicBool>,
    stores: StoreTrigger,
    threads: Vec<JoinHandle<()>>,
    discovery: Option<Discovery>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Daemon({} on {})", self.device, self.info.listen)
    }
}

impl Daemon {
    /// Starts the daemon for the vault open in `vault` (in `vault.home()`; the API key goes in
    /// the file [`api::TOKEN_FILE`] there).
    ///
    /// # Errors
    /// [`DaemonError`]; mDNS failing to start is not one (the daemon runs without it and says
    /// why in [`DaemonInfo::mdns_error`]).
    pub fn start(vault: Vault, config: DaemonConfig) -> Result<Self, DaemonError> {
        let device = vault.device_id();
        let identity = Arc::new(TlsIdentity::new(&vault.device_signing_secret()?)?);
        let pins = Pins::default();
        pins.set(vault.active_device_keys()?);
        let events = ServerEvents::default();
        let peer_server = serve(vault.reopen()?, &identity, pins.clone(), config.listen, events.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stores = StoreTrigger::default();

        let (discovery, mdns_error) = if config.mdns {
            match discovery::start(device, peer_server.addr().port(), events.peers.clone()) {
                Ok(discovery) => (Some(discovery), None),
                Err(err) => (None, Some(err.to_string())),
            }
        } else {
            (None, None)
        };
        let info = DaemonInfo {
            listen: peer_server.addr().to_string(),
            mdns: discovery.is_some(),
            mdns_error,
            started_ms: crate::now_ms(),
            pid: std::process::id(),
        };
        let api_server = match config.api {
            Some(listen) => {
                let token = api::load_or_create_token(&token_path(&vault)).map_err(io("cannot write the API key"))?;
                let state = ApiState {
                    token: Arc::new(token),
                    vault: Arc::new(Mutex::new(vault.reopen()?)),
                    peers: events.peers.clone(),
                    attempts: events.attempts.clone(),
                    info: info.clone(),
                    stores: stores.clone(),
                };
                let server = api::serve_api(listen, state)?;
                let file = api::DaemonFile { pid: info.pid, api: server.addr(), listen: info.listen.clone() };
                let text = serde_json::to_vec_pretty(&file).map_err(|e| io("daemon file")(std::io::Error::other(e)))?;
                api::write_private(&vault.home().root().join(api::DAEMON_FILE), &text)
                    .map_err(io("cannot write the daemon file"))?;
                Some(server)
            }
            None => None,
        };
        let home = vault.home().root().to_owned();

        let shared =
            LinkShared { identity, pins: pins.clone(), peers: events.peers.clone(), attempts: events.attempts.clone() };
        // The store thread's own connection, only when it runs (it is opened before the watcher
        // takes `vault`).
        let store_vault = config.stores.as_ref().map(|_| vault.reopen()).transpose()?;
        let mut threads = Vec::new();
        let watcher = Watcher {
            vault,
            pins,
            shared,
            changes: events.changes.clone(),
            stores: stores.clone(),
            links: HashMap::new(),
        };
        let flag = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ferry-watcher".into())
                .spawn(move || watcher.run(&flag))
                .map_err(io("cannot start a thread"))?,
        );
        let (flag, trigger, attempts) = (stop.clone(), stores.clone(), events.attempts.clone());
        if let (Some(StoreSync { replicator, interval }), Some(store_vault)) = (config.stores, store_vault) {
            threads.push(
                std::thread::Builder::new()
                    .name("ferry-stores".into())
                    .spawn(move || {
                        let stores = StoreRounds { vault: store_vault, replicator, interval, failing: HashMap::new() };
                        stores.run(&trigger, &attempts, &flag);
                    })
                    .map_err(io("cannot start a thread"))?,
            );
        }
        Ok(Self {
            device,
            home,
            peer_server: Some(peer_server),
            api_server,
            info,
            events,
            stop,
            stores,
            threads,
            discovery,
        })
    }

    /// Where the peer API listens.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_server.as_ref().map(Server::addr)
    }

    /// Where the local API listens.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_server.as_ref().map(Server::addr)
    }

    /// What the daemon says of itself.
    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    /// The other devices as peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.events.peers.snapshot()
    }

    /// What this daemon served its peers since it started.
    pub fn served(&self) -> crate::server::ServedCounts {
        self.events.served.counts()
    }

    /// Recent connection attempts, newest first.
    pub fn attempts(&self, limit: usize) -> Vec<Attempt> {
        self.events.attempts.latest(limit)
    }

    /// Syncs every store now and retries every peer now.
    pub fn sync_now(&self) {
        self.stores.now();
        self.events.peers.wake_all();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stores.wake.wake();
        self.discovery.take();
        if self.api_server.take().is_some() {
            let _ = std::fs::remove_file(self.home.join(api::DAEMON_FILE));
        }
        self.peer_server.take();
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}

/// Where the API key is kept for the vault's home.
pub fn token_path(vault: &Vault) -> PathBuf {
    vault.home().root().join(api::TOKEN_FILE)
}

struct Watcher {
    vault: Vault,
    pins: Pins,
    shared: LinkShared,
    changes: Changes,
    stores: StoreTrigger,
    links: HashMap<DeviceId, Link>,
}

impl Watcher {
    fn run(mut self, stop: &AtomicBool) {
        let mut seen_version = None;
        let mut served = self.vault.served_state().ok();
        let mut registry_read: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            if registry_read.is_none_or(|at| at.elapsed() >= REGISTRY_EVERY) {
                self.refresh_registry();
                registry_read = Some(Instant::now());
            }
            let version = self.vault.data_version().ok();
            if version != seen_version {
                seen_version = version;
                // New local ops become a segment at once: a peer asking now gets them.
                if let Ok(sealed) = self.vault.seal_local_writes()
                    && sealed > 0
                {
                    self.stores.after_write();
                }
                let now_served = self.vault.served_state().ok();
                if now_served != served {
                    served = now_served;
                    self.changes.bump();
                }
            }
            std::thread::sleep(WATCH_EVERY);
        }
    }

    /// Pins the vault's active devices and follows each other one.
    fn refresh_registry(&mut self) {
        let Ok(keys) = self.vault.active_device_keys() else { return };
        let names: HashMap<String, String> =
            self.vault.devices().unwrap_or_default().into_iter().map(|d| (d.device_id, d.name)).collect();
        self.pins.set(keys.iter().copied());
        let me = self.vault.device_id();
        let members: Vec<(DeviceId, String)> = keys
            .iter()
            .filter(|(device, _)| *device != me)
            .map(|(device, _)| (*device, names.get(&device.to_string()).cloned().unwrap_or_default()))
            .collect();
        self.shared.peers.set_members(&members);
        self.links.retain(|device, _| members.iter().any(|(d, _)| d == device));
        for (device, _) in members {
            if self.links.contains_key(&device) {
                continue;
            }
            let Ok(vault) = self.vault.reopen() else { continue };
            if let Ok(link) = link::spawn(device, vault, self.shared.clone()) {
                self.links.insert(device, link);
            }
        }
    }
}

/// The store thread: rounds of due stores (see [`ferry_engine::due`]).
struct StoreRounds {
    vault: Vault,
    replicator: Replicator,
    interval: Duration,
    /// Stores whose last round failed, with the error logged (logged again only when it changes).
    failing: HashMap<String, String>,
}

/// Logs a store round: a store failing (once per distinct error), back, or bringing changes.
fn log_store(failing: &mut HashMap<String, String>, outcome: &crate::StoreOutcome) {
    let url = &outcome.url;
    match &outcome.result {
        Err(err) => {
            let error = err.with_causes();
            if failing.get(url) != Some(&error) {
                tracing::warn!(store = %url, %error, "store sync failed");
                failing.insert(url.clone(), error);
            }
        }
        Ok(_) => {
            if failing.remove(url).is_some() {
                tracing::info!(store = %url, "store reachable again");
            }
            if let Some((pushed, pulled)) = outcome.ops().filter(|&ops| ops != (0, 0)) {
                tracing::info!(store = %url, pushed, pulled, "store synced");
            }
        }
    }
}

impl StoreRounds {
    /// Once a day ([`ferry_engine::PRUNE_EVERY`]): the vault's retention here and in the stores,
    /// with the default grace period.
    fn prune_if_due(&mut self) {
        if !self.vault.prune_due().unwrap_or(false) || self.vault.stores().map_or(true, |s| s.is_empty()) {
            return;
        }
        let options = ferry_engine::PruneOptions { scheduled: true, ..ferry_engine::PruneOptions::default() };
        match self.replicator.prune(&mut self.vault, &options) {
            Ok(report) => {
                let deleted: u64 =
                    report.stores.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|p| p.deleted_objects).sum();
                tracing::info!(dropped_ops = report.local.ops, deleted_objects = deleted, "pruned");
            }
            Err(err) => tracing::warn!(error = %err, "prune failed"),
        }
    }

    fn run(mut self, trigger: &StoreTrigger, attempts: &Attempts, stop: &AtomicBool) {
        // A first round at start: whatever happened while the daemon was down.
        let mut reason = Some(SyncReason::SyncNow);
        while !stop.load(Ordering::Relaxed) {
            if let Some(reason) = reason.take() {
                // A status that cannot be read is retried at the next tick.
                let outcomes = self.replicator.sync_due(&mut self.vault, reason, self.interval).unwrap_or_default();
                for outcome in outcomes {
                    log_store(&mut self.failing, &outcome);
                    attempts.record(Direction::Outbound, &outcome.url, None, outcome.result.is_ok(), outcome.summary());
                }
                self.prune_if_due();
            }
            trigger.wake.sleep(STORE_TICK);
            if stop.load(Ordering::Relaxed) {
                return;
            }
            reason = Some(if trigger.forced.swap(false, Ordering::Relaxed) {
                SyncReason::SyncNow
            } else if trigger.written.swap(false, Ordering::Relaxed) {
                // Let a burst of writes finish before pushing it.
                std::thread::sleep(PUSH_AFTER_WRITE);
                SyncReason::LocalWrite
            } else {
                SyncReason::Tick
            });
        }
    }
}

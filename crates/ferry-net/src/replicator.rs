//! [`Replicator`]: how one device reaches every place it syncs with, and the loops over them.
//!
//! A store location is only text in the vault (`folder:…`, `s3://…`, `hub://…`); opening it
//! needs things the engine does not hold: S3 credentials, and for hubs and peers this device's
//! TLS identity and the keys of the vault's members. The replicator holds those once, so the
//! CLI, the daemon and an embedding app open stores the same way, sync every store with one
//! failure never stopping the others, ask the engine's pure [`ferry_engine::due`] which stores
//! are due, and reach a peer in one dial order.

use crate::dial::dial_order;
use crate::peer_store::{ClaimAs, PeerStore, hub_opener};
use crate::tls::{Pins, TlsIdentity};
use ferry_engine::{
    ConfiguredStore, Direction, Due, DueBecause, Error, PullReport, StoreHandle, StoreId, SyncReason, SyncReport, Vault,
};
use ferry_format::SecretBytes;
use ferry_store::{OpenOptions, Store, StoreError, StoreErrorKind, StoreUrl};
use std::sync::Arc;
use std::time::Duration;

/// How this device opens stores and reaches peers. Cheap to clone.
#[derive(Clone)]
pub struct Replicator {
    options: OpenOptions,
    peers: Option<(Arc<TlsIdentity>, Pins)>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator").field("options", &self.options).field("peers", &self.peers.is_some()).finish()
    }
}

/// What syncing with one store did, or why it failed.
#[derive(Debug)]
#[non_exhaustive]
pub struct StoreOutcome {
    /// The store.
    pub store: StoreId,
    /// Its location.
    pub url: String,
    /// Why it was synced (in a round of due stores).
    pub because: Option<DueBecause>,
    /// The report, or the error (also recorded for `sync status` and backoff).
    pub result: Result<SyncReport, Error>,
}

impl StoreOutcome {
    /// Ops pushed and ops pulled, if the sync worked.
    pub fn ops(&self) -> Option<(u64, u64)> {
        self.result.as_ref().ok().map(ops_of)
    }

    /// "pushed N ops, pulled M ops", or the error with its causes.
    pub fn summary(&self) -> String {
        match &self.result {
            Ok(report) => {
                let (pushed, pulled) = ops_of(report);
                format!("pushed {pushed} ops, pulled {pulled} ops")
            }
            Err(err) => err.with_causes(),
        }
    }
}

fn ops_of(report: &SyncReport) -> (u64, u64) {
    (report.push.as_ref().map_or(0, |p| p.uploaded_ops), report.pull.as_ref().map_or(0, |p| p.imported_ops))
}

/// A revocation and how the stores took it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Revocation {
    /// What was revoked.
    pub revoked: ferry_engine::Revoked,
    /// The pull from every store before (a failure here means devices only that store knows
    /// of will have to pair again).
    pub pulled: Vec<StoreOutcome>,
    /// The push of the rotation to every store after.
    pub pushed: Vec<StoreOutcome>,
}

/// A pull from a peer: where it answered, and what came.
#[derive(Debug)]
#[non_exhaustive]
pub struct PeerPull {
    /// The address that answered.
    pub addr: String,
    /// What was imported.
    pub report: PullReport,
}

impl Replicator {
    /// The replicator of an enrolled device: hubs and peers are reached with its key, and a hub
    /// location that still carries its one-time secret is claimed for the vault with every
    /// active device pinned. `credentials_command` prints AWS `credential_process` JSON for S3
    /// stores (`None`: the standard places).
    ///
    /// # Errors
    /// The device's keys cannot be read; its TLS identity cannot be made.
    pub fn for_vault(vault: &Vault, credentials_command: Option<String>) -> Result<Self, Error> {
        let secret = vault.device_signing_secret()?;
        let members = vault.active_device_keys()?;
        let identity = TlsIdentity::new(&secret).map_err(|e| setup_error("this device's TLS identity", &e))?;
        let pins = Pins::default();
        pins.set(members.iter().copied());
        let claim_as: ClaimAs = (vault.vault_id(), members);
        let options = OpenOptions { credentials_command, hub: Some(hub_opener(secret, Some(claim_as))) };
        Ok(Self { options, peers: Some((Arc::new(identity), pins)) })
    }

    /// The replicator of a device that is not in a vault yet (pairing, joining): a hub is
    /// reached with `device_key`, which the hub does not know yet (only pairing exchanges are
    /// open to it); there are no peers.
    pub fn joining(device_key: SecretBytes, credentials_command: Option<String>) -> Self {
        Self { options: OpenOptions { credentials_command, hub: Some(hub_opener(device_key, None)) }, peers: None }
    }

    /// A replicator that opens folder and S3 stores only.
    pub fn without_hubs(credentials_command: Option<String>) -> Self {
        Self { options: OpenOptions { credentials_command, hub: None }, peers: None }
    }

    /// Opens the store at `location`.
    ///
    /// # Errors
    /// The location does not parse, or the store cannot be opened (credentials, a hub that
    /// refuses this device).
    pub fn open(&self, location: &str) -> Result<Arc<dyn Store>, Error> {
        self.open_url(&StoreUrl::parse(location)?)
    }

    /// Opens the store at `url` (a hub location may carry its one-time claim secret, which
    /// [`StoreUrl::to_text`] leaves out).
    ///
    /// # Errors
    /// As [`Replicator::open`].
    pub fn open_url(&self, url: &StoreUrl) -> Result<Arc<dyn Store>, Error> {
        Ok(ferry_store::outside_async(|| ferry_store::open(url, &self.options))?)
    }

    /// Syncs with one configured store; the attempt is recorded (status, backoff).
    pub fn sync_store(&self, vault: &mut Vault, store: &ConfiguredStore, direction: Direction) -> StoreOutcome {
        let result = ferry_store::outside_async(|| {
            let opened = self.open(&store.url)?;
            vault.sync(StoreHandle { id: store.id, store: opened.as_ref() }, direction)
        });
        StoreOutcome { store: store.id, url: store.url.clone(), because: None, result }
    }

    /// Syncs with every configured store in turn; one store's failure does not stop the others.
    ///
    /// # Errors
    /// The list of stores cannot be read.
    pub fn sync_all(&self, vault: &mut Vault, direction: Direction) -> Result<Vec<StoreOutcome>, Error> {
        Ok(vault.stores()?.iter().map(|store| self.sync_store(vault, store, direction)).collect())
    }

    /// Applies the vault's retention (or `options.keep`) on this device and in every configured
    /// store it can open (see [`Vault::prune`]); a store that cannot be opened is reported with
    /// the others' results.
    ///
    /// # Errors
    /// Local failures.
    pub fn prune(
        &self,
        vault: &mut Vault,
        options: &ferry_engine::PruneOptions,
    ) -> Result<ferry_engine::PruneReport, Error> {
        let configured = vault.stores()?;
        let mut opened = Vec::new();
        let mut unopened = Vec::new();
        for store in &configured {
            match self.open(&store.url) {
                Ok(store_handle) => opened.push((store.id, store_handle)),
                Err(err) => unopened.push((store.url.clone(), Err(err.to_string()))),
            }
        }
        let handles: Vec<StoreHandle<'_>> =
            opened.iter().map(|(id, store)| StoreHandle { id: *id, store: store.as_ref() }).collect();
        let mut report = ferry_store::outside_async(|| vault.prune(&handles, options))?;
        report.stores.extend(unopened);
        Ok(report)
    }

    /// Syncs both ways with the stores due for `reason` (see [`ferry_engine::due`]): the
    /// daemon's round, and an app's own timer.
    ///
    /// # Errors
    /// The stores' status cannot be read.
    pub fn sync_due(
        &self,
        vault: &mut Vault,
        reason: SyncReason,
        interval: Duration,
    ) -> Result<Vec<StoreOutcome>, Error> {
        let status = vault.sync_status()?;
        let due: Vec<Due> = ferry_engine::due(&status.stores, reason, interval, ferry_engine::now_ms());
        let mut outcomes = Vec::new();
        for store in due {
            let Ok(because) = store.verdict else { continue };
            let configured = ConfiguredStore { id: store.store, url: store.url };
            let mut outcome = self.sync_store(vault, &configured, Direction::Both);
            outcome.because = Some(because);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Adds the store at `url` and syncs with it once: the location is prepared (a folder is
    /// created), the store opened (a hub whose location carries its one-time secret is claimed
    /// for the vault) and attached (an empty store receives the vault, with the vault passphrase
    /// slot when `unlock` holds the passphrase).
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] when an empty store needs the passphrase and `unlock` has none
    /// or the wrong one (ask, and call again); the store holds another vault; it cannot be
    /// opened. A failed first sync is the outcome's error: the store stays added.
    pub fn add_store(
        &self,
        vault: &mut Vault,
        url: &StoreUrl,
        unlock: Option<&ferry_engine::Unlock>,
    ) -> Result<StoreOutcome, Error> {
        ferry_store::prepare(url)?;
        let store = self.open_url(url)?;
        let location = url.to_text();
        let id = ferry_store::outside_async(|| vault.attach_store(&location, store.as_ref(), unlock))?;
        let result =
            ferry_store::outside_async(|| vault.sync(StoreHandle { id, store: store.as_ref() }, Direction::Both));
        Ok(StoreOutcome { store: id, url: location, because: None, result })
    }

    /// Revokes `device` (name or id prefix): pulls from every store first (the new key goes to
    /// the devices known here), rotates the vault key, and pushes the rotation to every store.
    ///
    /// # Errors
    /// The device is unknown, this one, or revoked already; local failures. Stores that fail
    /// are in the outcomes.
    pub fn revoke(&self, vault: &mut Vault, device: &str) -> Result<Revocation, Error> {
        let pulled = self.sync_all(vault, Direction::Pull)?;
        let revoked = vault.revoke_device(device)?;
        let pushed = self.sync_all(vault, Direction::Push)?;
        Ok(Revocation { revoked, pulled, pushed })
    }

    /// Pulls once from another device serving on the LAN: `target` is `HOST:PORT`, or a device
    /// (name or id prefix) tried at its known addresses, the one that last worked first.
    ///
    /// # Errors
    /// The device is unknown or has no known address; every address failed (the last error).
    pub fn pull_from_peer(&self, vault: &mut Vault, target: &str) -> Result<PeerPull, Error> {
        let addresses = if target.contains(':') {
            vec![target.to_owned()]
        } else {
            let device = vault.find_device(target)?;
            let addresses: Vec<String> =
                dial_order(None, vault.peer_addresses_of(device)?).into_iter().map(|(addr, _)| addr).collect();
            if addresses.is_empty() {
                return Err(Error::NoPeerAddress(device.to_string()));
            }
            addresses
        };
        let (identity, pins) = self.peers.as_ref().ok_or_else(|| {
            Error::Store(StoreError::new(StoreErrorKind::Other, target, "this device is not in a vault yet"))
        })?;
        let mut last_error = None;
        for addr in addresses {
            let result = ferry_store::outside_async(|| {
                let peer = PeerStore::new(&addr, identity, pins.clone()).map_err(|e| setup_error(&addr, &e))?;
                vault.pull_from_peer(&peer)
            });
            match result {
                Ok(report) => return Ok(PeerPull { addr, report }),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::NoPeerAddress(target.to_owned())))
    }

    /// The devices' keys this replicator trusts on peer connections, refreshed from `vault`'s
    /// registry (after pairing or revoking while it runs).
    ///
    /// # Errors
    /// The registry cannot be read.
    pub fn refresh_pins(&self, vault: &Vault) -> Result<(), Error> {
        if let Some((_, pins)) = &self.peers {
            pins.set(vault.active_device_keys()?);
        }
        Ok(())
    }
}

fn setup_error(what: &str, err: &dyn std::fmt::Display) -> Error {
    Error::Store(StoreError::new(StoreErrorKind::Other, what, err.to_string()))
}

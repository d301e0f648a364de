//! The facets of a [`crate::Vault`]: short-lived borrows that group its operations.

use ferry_engine::{
    ChangeBatch, ChangeCursor, CollectionInfo, DeviceInfo, Direction, Due, ListOptions, Page, PageRequest, Record,
    Result, Subscription, SyncReason, SyncStatus, Writer,
};
use ferry_format::OpId;
use ferry_net::{Invitation, PeerPull, Replicator, Revocation, StoreOutcome};
use std::time::Duration;

/// Records: JSON values by collection and key ([`crate::Vault::records`]).
#[derive(Debug)]
pub struct Records<'v> {
    vault: &'v mut ferry_engine::Vault,
}

impl<'v> Records<'v> {
    pub(crate) fn new(vault: &'v mut ferry_engine::Vault) -> Self {
        Self { vault }
    }

    /// Sets a record's value.
    ///
    /// # Errors
    /// A bad collection name or key, a value over the size limit; database failures.
    pub fn put(&mut self, collection: &str, key: &str, value: &serde_json::Value) -> Result<OpId> {
        self.vault.put(collection, key, value)
    }

    /// Sets a record's value from JSON text (checked, kept exactly as given).
    ///
    /// # Errors
    /// As [`Records::put`], and invalid JSON.
    pub fn put_json(&mut self, collection: &str, key: &str, json: &str) -> Result<OpId> {
        self.vault.put_json(collection, key, json)
    }

    /// A record's current value (`None`: never written, or deleted).
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn get(&self, collection: &str, key: &str) -> Result<Option<Record>> {
        self.vault.get(collection, key)
    }

    /// The live records of a collection, most recently written first.
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn list(&self, collection: &str, options: &ListOptions) -> Result<Vec<Record>> {
        self.vault.list(collection, options)
    }

    /// One page of a collection in key order, keys starting with `prefix`, after `after` (the
    /// previous page's `next`).
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn page(&self, collection: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page> {
        let request = PageRequest { prefix: prefix.to_owned(), after: after.map(str::to_owned), limit };
        self.vault.page(collection, &request)
    }

    /// Deletes a record (an op like any other: a later put revives it).
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn rm(&mut self, collection: &str, key: &str) -> Result<OpId> {
        self.vault.delete(collection, key)
    }

    /// Writes several changes in one transaction: all commit, or none. Much faster than one
    /// call each for many writes.
    ///
    /// # Errors
    /// Whatever `f` returns; database failures. Nothing is written on error.
    pub fn batch<T>(&mut self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        self.vault.write(f)
    }

    /// Every collection that has held a record.
    ///
    /// # Errors
    /// Database failures.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        self.vault.collections()
    }
}

/// The change feed ([`crate::Vault::changes`]).
#[derive(Debug)]
pub struct Changes<'v> {
    vault: &'v ferry_engine::Vault,
}

impl<'v> Changes<'v> {
    pub(crate) fn new(vault: &'v ferry_engine::Vault) -> Self {
        Self { vault }
    }

    /// The feed's end now: a cursor that has seen every change so far.
    ///
    /// # Errors
    /// Database failures.
    pub fn cursor(&self) -> Result<ChangeCursor> {
        self.vault.change_cursor()
    }

    /// Up to `limit` changes after `cursor`, and the cursor to read on from.
    ///
    /// # Errors
    /// Database failures.
    pub fn since(&self, cursor: &ChangeCursor, limit: usize) -> Result<ChangeBatch> {
        self.vault.changes_since(cursor, limit)
    }

    /// Follows every change from now on, made by any handle in any process.
    ///
    /// # Errors
    /// The follower's connection cannot be opened.
    pub fn subscribe(&self) -> Result<Subscription> {
        self.vault.subscribe(None)
    }

    /// Follows every change after `cursor` (one kept from an earlier run, say).
    ///
    /// # Errors
    /// The follower's connection cannot be opened.
    pub fn subscribe_from(&self, cursor: ChangeCursor) -> Result<Subscription> {
        self.vault.subscribe(Some(cursor))
    }
}

/// Syncing with stores and peers ([`crate::Vault::sync`]).
#[derive(Debug)]
pub struct Sync<'v> {
    vault: &'v mut ferry_engine::Vault,
    credentials_command: Option<String>,
}

impl<'v> Sync<'v> {
    pub(crate) fn new(vault: &'v mut ferry_engine::Vault, credentials_command: Option<String>) -> Self {
        Self { vault, credentials_command }
    }

    fn replicator(&self) -> Result<Replicator> {
        Replicator::for_vault(self.vault, self.credentials_command.clone())
    }

    /// Syncs with every store, one after another; one store's failure does not stop the
    /// others (each outcome says how it went; failures also set the store's backoff).
    ///
    /// # Errors
    /// Local failures before any store was tried.
    pub fn all(&mut self, direction: Direction) -> Result<Vec<StoreOutcome>> {
        self.replicator()?.sync_all(self.vault, direction)
    }

    /// Which stores are due for `reason` at `now_ms`, with rounds `interval` apart, and why
    /// (or why not): see [`ferry_engine::due`].
    ///
    /// # Errors
    /// Database failures.
    pub fn due(&self, reason: SyncReason, interval: Duration, now_ms: u64) -> Result<Vec<Due>> {
        Ok(ferry_engine::due(&self.vault.sync_status()?.stores, reason, interval, now_ms))
    }

    /// Syncs both ways with the stores due now (an app's own timer does what `ferry serve` does).
    ///
    /// # Errors
    /// Local failures before any store was tried.
    pub fn run_due(&mut self, reason: SyncReason, interval: Duration) -> Result<Vec<StoreOutcome>> {
        self.replicator()?.sync_due(self.vault, reason, interval)
    }

    /// Adds the store at `location` and syncs with it once. An empty store receives the vault
    /// (with its passphrase slot when `unlock` gives the vault passphrase).
    ///
    /// # Errors
    /// The store holds another vault; it cannot be opened; the first sync failed (the store
    /// stays added: the next sync retries).
    pub fn add_store(&mut self, location: &str, unlock: Option<&ferry_engine::Unlock>) -> Result<StoreOutcome> {
        let url = ferry_store::StoreUrl::parse(location)?;
        self.replicator()?.add_store(self.vault, &url, unlock)
    }

    /// Pulls once from a device serving on the LAN (`HOST:PORT`, or a device name or id tried
    /// at its known addresses).
    ///
    /// # Errors
    /// Every address failed; the device has none.
    pub fn peer(&mut self, target: &str) -> Result<PeerPull> {
        self.replicator()?.pull_from_peer(self.vault, target)
    }

    /// How syncing went, per store and per device.
    ///
    /// # Errors
    /// Database failures.
    pub fn status(&self) -> Result<SyncStatus> {
        self.vault.sync_status()
    }
}

/// The vault's devices ([`crate::Vault::devices`]).
#[derive(Debug)]
pub struct Devices<'v> {
    vault: &'v mut ferry_engine::Vault,
    credentials_command: Option<String>,
}

impl<'v> Devices<'v> {
    pub(crate) fn new(vault: &'v mut ferry_engine::Vault, credentials_command: Option<String>) -> Self {
        Self { vault, credentials_command }
    }

    /// Every device the vault has had, this one included, revoked ones too.
    ///
    /// # Errors
    /// Database failures.
    pub fn list(&self) -> Result<Vec<DeviceInfo>> {
        self.vault.devices()
    }

    /// Invites a new device through the first store, valid for `valid_for`.
    ///
    /// # Errors
    /// [`ferry_engine::Error::NoStore`]; the store cannot be reached.
    pub fn invite(self, valid_for: Duration) -> Result<Invitation<'v>> {
        self.invite_through(None, valid_for)
    }

    /// Invites a new device through the store `through` (its id or location).
    ///
    /// # Errors
    /// As [`Devices::invite`], and an unknown store.
    pub fn invite_through(self, through: Option<&str>, valid_for: Duration) -> Result<Invitation<'v>> {
        let replicator = Replicator::for_vault(self.vault, self.credentials_command.clone())?;
        replicator.invite(self.vault, through, valid_for)
    }

    /// Revokes a device (name or id prefix): a new vault key that it never sees, for every
    /// other device. The latest registry is pulled from every store first, and the revocation
    /// pushed to every store after; their outcomes come back with it.
    ///
    /// # Errors
    /// An unknown device, this device, the last device; local failures.
    pub fn revoke(self, device: &str) -> Result<Revocation> {
        Replicator::for_vault(self.vault, self.credentials_command.clone())?.revoke(self.vault, device)
    }
}

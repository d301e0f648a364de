//! ferry: an app's records on every device of its user, end-to-end encrypted, synced through
//! storage the user owns (a folder, an S3 bucket, a hub) or straight over the LAN.
//!
//! ```no_run
//! use ferry::{CreateOptions, Direction, Home, KdfCost, Passphrase, Unlock, Vault};
//! use std::time::Duration;
//!
//! let home = Home::new("/home/me/.local/share/myapp/ferry");
//! let unlock = Unlock { passphrase: Passphrase::new("correct horse"), kdf_cost: KdfCost::Standard };
//! let options = CreateOptions { device_name: "laptop".into(), unlock: unlock.clone() };
//! let created = Vault::create_for_store(&home, options, "folder:/mnt/usb/myapp")?;
//! println!("write this down: {}", created.recovery_phrase.to_words());
//! let mut vault = created.vault;
//!
//! vault.records().put("notes", "n1", &serde_json::json!({"title": "hi"}))?;
//! let changes = vault.changes().subscribe()?;              // every change, any process
//! let report = vault.sync().all(Direction::Both)?;          // every store, opened the right way
//! let health = vault.doctor()?;                             // typed checks with hints
//! let mut invite = vault.devices().invite(Duration::from_secs(600))?;
//! println!("on the new device: {}", invite.token());
//! if let Some(request) = invite.wait_for_request(Duration::from_secs(600))? {
//!     let typed = "123 456"; // what the person typed: the code the new device shows
//!     invite.approve(&request, typed)?;
//! }
//! # Ok::<(), ferry::Error>(())
//! ```
//!
//! A [`Vault`] is one device's open vault. Its facets group what an app does with it:
//! - [`Vault::records`]: put, get, list (newest first, or paged in key order with a prefix),
//!   delete, and batches that commit together;
//! - [`Vault::changes`]: the change feed, with a cursor an app can persist; a
//!   [`Subscription`] sees changes made by any handle in any process (the daemon's imports too);
//! - [`Vault::sync`]: every store at once, the stores that are due and why, one store, a peer;
//! - [`Vault::devices`]: the vault's devices, pairing a new one ([`Invitation`], and [`accept`]
//!   on the new device), revoking one;
//! - [`Vault::doctor`]: health checks that say what to do.
//!
//! **Threads and async.** Every call blocks until done. A `Vault` is `Send`: use it from one
//! thread at a time, or open one per thread ([`Vault::reopen`]); any number of handles, in one
//! process or several, may share a home. Calls are safe inside an async runtime (tokio): the
//! network I/O moves to a helper thread instead of panicking, but the calling task still waits,
//! so prefer `tokio::task::spawn_blocking` around long calls such as [`Sync::all`].
//!
//! **Errors** are [`Error`]: [`Error::class`] sorts them (bad input, locked, not found, setup,
//! unavailable, other) and the message says what to do.

mod facets;

pub use facets::{Changes, Devices, Records, Sync};
pub use ferry_engine::Change;
pub use ferry_engine::Hint;
pub use ferry_engine::{
    Backoff, ChangeBatch, ChangeCursor, CollectionInfo, ConfiguredStore, CreateOptions, DeviceInfo, Direction, Due,
    DueBecause, Error, ErrorClass, FeedItem, HistoryFilter, Home, JoinOptions, JoinWith, KdfCost, ListOptions, Page,
    PageRequest, PairingConfirmation, PairingRequest, Passphrase, PullReport, PushReport, Record, Result, Revoked,
    Status, StoreId, Subscription, SyncReason, SyncReport, SyncStatus, Unlock, WaitBecause,
};
pub use ferry_format::{DeviceId, OpId, RecoveryPhrase};
pub use ferry_net::{Acceptance, Check, Invitation, Level, PeerPull, Replicator, Revocation, StoreOutcome};

/// One device's open vault, with its facets.
#[derive(Debug)]
pub struct Vault {
    engine: ferry_engine::Vault,
    credentials_command: Option<String>,
}

/// A vault just created, and its recovery phrase: show it to the user once, never store it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Created {
    /// The open vault.
    pub vault: Vault,
    /// With every device lost, the only way back.
    pub recovery_phrase: RecoveryPhrase,
}

impl Vault {
    /// Creates a vault on this device, syncing with nothing yet.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`]; a bad device name; the home cannot be written.
    pub fn create(home: &Home, options: CreateOptions) -> Result<Created> {
        let created = ferry_engine::Vault::create(home, options)?;
        Ok(Created { vault: Self::from_engine(created.vault), recovery_phrase: created.recovery_phrase })
    }

    /// Creates a vault on this device and publishes it to the store at `location`
    /// (`folder:PATH`, `s3://bucket/prefix?endpoint=…`) at the first sync.
    ///
    /// # Errors
    /// [`Error::StoreHasVault`] (join or pair instead); the store cannot be opened.
    pub fn create_for_store(home: &Home, options: CreateOptions, location: &str) -> Result<Created> {
        let store = Replicator::without_hubs(None).open(location)?;
        let created = ferry_store::outside_async(|| {
            ferry_engine::Vault::create_for_store(home, options, location, store.as_ref())
        })?;
        Ok(Created { vault: Self::from_engine(created.vault), recovery_phrase: created.recovery_phrase })
    }

    /// Joins the vault in the store at `location` with the vault passphrase or the recovery
    /// phrase (`options.with`). Sync next to receive its records.
    ///
    /// # Errors
    /// [`Error::NoVaultInStore`]; a wrong passphrase or phrase; the store cannot be opened.
    pub fn join(home: &Home, options: JoinOptions, location: &str) -> Result<Self> {
        let store = Replicator::without_hubs(None).open(location)?;
        let engine = ferry_store::outside_async(|| ferry_engine::Vault::join(home, options, location, store.as_ref()))?;
        Ok(Self::from_engine(engine))
    }

    /// Opens this device's vault with its passphrase.
    ///
    /// # Errors
    /// [`Error::NoVault`], [`Error::WrongPassphrase`]; database failures.
    pub fn open(home: &Home, unlock: &Unlock) -> Result<Self> {
        ferry_engine::Vault::open(home, unlock).map(Self::from_engine)
    }

    /// Opens this device's vault with the key kept in the OS keychain (`None`: not there).
    ///
    /// # Errors
    /// Database failures.
    pub fn open_from_keychain(home: &Home) -> Result<Option<Self>> {
        Ok(ferry_engine::Vault::open_from_keychain(home)?.map(Self::from_engine))
    }

    /// Wraps an engine handle (for apps that also use `ferry-engine` directly).
    pub fn from_engine(engine: ferry_engine::Vault) -> Self {
        Self { engine, credentials_command: None }
    }

    /// S3 stores take their credentials from this command's AWS `credential_process` JSON
    /// instead of the standard places (environment, profile files).
    #[must_use]
    pub fn with_credentials_command(mut self, command: impl Into<String>) -> Self {
        self.credentials_command = Some(command.into());
        self
    }

    /// Another handle on this vault (another database connection), for another thread.
    ///
    /// # Errors
    /// Database failures.
    pub fn reopen(&self) -> Result<Self> {
        Ok(Self { engine: self.engine.reopen()?, credentials_command: self.credentials_command.clone() })
    }

    /// Records: put, get, list, delete, batches.
    pub fn records(&mut self) -> Records<'_> {
        Records::new(&mut self.engine)
    }

    /// The change feed.
    pub fn changes(&self) -> Changes<'_> {
        Changes::new(&self.engine)
    }

    /// Syncing with stores and peers.
    pub fn sync(&mut self) -> Sync<'_> {
        Sync::new(&mut self.engine, self.credentials_command.clone())
    }

    /// The vault's devices: list, pair, revoke.
    pub fn devices(&mut self) -> Devices<'_> {
        Devices::new(&mut self.engine, self.credentials_command.clone())
    }

    /// Checks this device end to end: registry, keys, every store, the last syncs.
    ///
    /// # Errors
    /// Only local database failures; everything else is a check that failed.
    pub fn doctor(&self) -> Result<Vec<Check>> {
        let replicator = Replicator::for_vault(&self.engine, self.credentials_command.clone())?;
        ferry_net::doctor(&self.engine, &replicator)
    }

    /// A summary of this device and its vault.
    ///
    /// # Errors
    /// Database failures.
    pub fn status(&self) -> Result<Status> {
        self.engine.status()
    }

    /// The engine handle underneath, for what the facets do not cover (blobs, policies,
    /// conflicts, search, forget, export).
    pub fn engine(&mut self) -> &mut ferry_engine::Vault {
        &mut self.engine
    }
}

/// Answers an invite on a new device: see [`Acceptance`]. `home` must hold no vault yet.
///
/// # Errors
/// [`Error::AlreadyInitialized`]; a token that does not parse or has expired; the store cannot
/// be reached.
pub fn accept(home: &Home, token: &str, options: CreateOptions) -> Result<Acceptance> {
    ferry_net::accept(home, token, options, None)
}

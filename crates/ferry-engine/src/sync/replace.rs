//! `ferry init --store URL --force`: replacing a store's vault without destroying it.
//!
//! The old vault's objects are moved (copied, then deleted) under `previous/<vault id>/` in the
//! same store, which is itself a store location: `ferry join <url>/previous/<id> --recovery`
//! opens it with the old recovery phrase. That is why the phrase must be typed and must open
//! the old vault before anything moves: without it the moved vault would be unreadable forever.
//! The move is idempotent and ordered so a crash at any point is finished by running it again:
//! everything is copied first; the originals are deleted; the old vault file goes last.

use super::enroll::read_vault_file;
use crate::vault::{CreateOptions, Created};
use crate::{Error, Home, Result, Vault};
use ferry_format::RecoveryPhrase;
use ferry_format::objects::paths;
use ferry_store::Store;

/// The prefixes a vault's objects live under (besides the vault file).
const VAULT_PREFIXES: [&str; 5] = ["keys/", "devices/", "log/", "blobs/", "pair/"];

/// Checks that `phrase` opens the newest recovery slot of the store's vault.
fn confirm_recovery_phrase(store: &dyn Store, vault_id: &str, phrase: &RecoveryPhrase) -> Result<()> {
    let refused = || Error::RecoveryNotConfirmed { location: store.location(), vault_id: vault_id.to_owned() };
    let identity = crate::identity::recovery_identity(phrase)?;
    match super::enroll::open_newest_slot(store, "recovery", |slot| age::decrypt(&identity, slot))? {
        super::enroll::NewestSlot::Opened(..) => Ok(()),
        super::enroll::NewestSlot::WrongSecret | super::enroll::NewestSlot::Missing => Err(refused()),
    }
}

/// Moves the store's vault under `previous/<vault id>/`; returns that prefix.
fn move_aside(store: &dyn Store, vault_id: &str) -> Result<String> {
    let archive = format!("previous/{vault_id}/");
    let mut originals = Vec::new();
    for prefix in VAULT_PREFIXES {
        originals.extend(store.list(prefix)?);
    }
    for path in &originals {
        if let Some(bytes) = store.get(path)? {
            store.put(&format!("{archive}{path}"), &bytes)?;
        }
    }
    if let Some(bytes) = store.get(paths::VAULT_FILE)? {
        store.put(&format!("{archive}{}", paths::VAULT_FILE), &bytes)?;
    }
    for path in &originals {
        store.delete(path)?;
    }
    store.delete(paths::VAULT_FILE)?;
    Ok(archive)
}

impl Vault {
    /// Creates a new vault in a store that holds one already, after moving the old one aside
    /// to `previous/<old vault id>/` in the same store. `old_phrase` must open the old vault
    /// (the caller also asks the person to confirm by typing). Returns the new vault and where
    /// the old one went.
    ///
    /// # Errors
    /// [`Error::RecoveryNotConfirmed`] (nothing changes), [`Error::AlreadyInitialized`], the
    /// store is unreachable (run again: the move resumes), local failures.
    pub fn create_for_store_replacing(
        home: &Home,
        options: CreateOptions,
        url: &str,
        store: &dyn Store,
        old_phrase: &RecoveryPhrase,
    ) -> Result<(Created, Option<String>)> {
        if home.has_vault() {
            return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
        }
        let archived = match read_vault_file(store)? {
            Some(old) => {
                let vault_id = old.vault_id.to_string();
                confirm_recovery_phrase(store, &vault_id, old_phrase)?;
                Some(move_aside(store, &vault_id)?)
            }
            None => None,
        };
        let created = Vault::create_for_store(home, options, url, store)?;
        Ok((created, archived))
    }
}

//! Health checks of an open device, end to end: its registry entry, its keys, every store
//! (reached, checked for this vault's keys and for holding what this device holds), the last
//! sync of each, what was skipped.
//!
//! Each [`Check`] says ok / warn / fail, what was found, and a [`Hint`] naming what to do, as
//! data: the CLI words a hint as a command, an app as a button.

use crate::replicator::Replicator;
use ferry_engine::{AuditReport, Error, Hint, StoreHandle, StoreKeyCheck, StoreState, Vault};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but something needs attention.
    Warn,
    /// Broken.
    Fail,
}

/// One health check.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked (`device`, `store 2`, …).
    pub check: String,
    /// How it came out.
    pub result: Level,
    /// What was found.
    pub detail: String,
    /// What to do about it.
    pub hint: Option<Hint>,
}

impl Check {
    fn new(check: impl Into<String>, result: Level, detail: impl Into<String>, hint: Option<Hint>) -> Self {
        Self { check: check.into(), result, detail: detail.into(), hint }
    }
}

/// Checks the device open in `vault`, reaching its stores through `replicator`.
///
/// # Errors
/// Only local database failures; everything else is a failed check.
pub fn doctor(vault: &Vault, replicator: &Replicator) -> Result<Vec<Check>, Error> {
    let mut checks = Vec::new();
    let status = vault.status()?;
    let me = vault.devices()?.into_iter().find(|d| d.this_device);
    checks.push(match me.as_ref().and_then(|d| d.revoked_by.clone()) {
        Some(by) => {
            Check::new("device", Level::Fail, format!("this device was revoked by {by}"), Some(Hint::PairAgain))
        }
        None => Check::new(
            "device",
            Level::Ok,
            format!("\"{}\" {} (fingerprint {})", status.device_name, status.device_id, status.device_fingerprint),
            None,
        ),
    });
    checks.push(Check::new(
        "vault key",
        Level::Ok,
        format!("fingerprint {} (epoch {})", status.vault_key_fingerprint, status.key_epoch),
        None,
    ));
    checks.push(match vault.recovery_confirmed_ms()? {
        Some(at) => Check::new("recovery phrase", Level::Ok, format!("confirmed {}", ferry_engine::rfc3339(at)), None),
        None => Check::new(
            "recovery phrase",
            Level::Warn,
            "never confirmed on this device",
            Some(Hint::ConfirmRecoveryPhrase),
        ),
    });
    let stores = vault.stores()?;
    if stores.is_empty() {
        checks.push(Check::new("stores", Level::Warn, "none: this device syncs with nothing", Some(Hint::AddStore)));
    }
    for configured in stores {
        let name = format!("store {}", configured.id);
        let store = match replicator.open(&configured.url) {
            Ok(store) => store,
            Err(err) => {
                let detail = format!("{}: unreachable: {}", configured.url, err.with_causes());
                checks.push(Check::new(name, Level::Fail, detail, None));
                continue;
            }
        };
        checks.push(match vault.check_store(store.as_ref()) {
            Ok(keys) => {
                let (level, hint) = store_verdict(&keys);
                let detail = format!("{}: {}", configured.url, describe(&keys, &status.vault_key_fingerprint));
                Check::new(name.clone(), level, detail, hint)
            }
            Err(err) => {
                Check::new(name.clone(), Level::Fail, format!("{}: {}", configured.url, err.with_causes()), None)
            }
        });
        let handle = StoreHandle { id: configured.id, store: store.as_ref() };
        if let Ok(contents) = vault.check_store_contents(handle) {
            checks.push(contents_check(&name, &configured.url, &contents));
        }
    }
    let sync = vault.sync_status()?;
    for store in sync.stores.iter().filter(|s| matches!(s.state, StoreState::Error | StoreState::Offline)) {
        let error = store.last_error.as_deref().unwrap_or("unknown error");
        checks.push(Check::new("last sync", Level::Warn, format!("{}: {error}", store.url), None));
    }
    checks.push(if sync.skipped.is_empty() {
        Check::new("skipped objects", Level::Ok, "none", None)
    } else {
        Check::new(
            "skipped objects",
            Level::Warn,
            format!("{} objects could not be used", sync.skipped.len()),
            Some(Hint::SeeSyncStatus),
        )
    });
    checks.push(Check::new(
        "pending ops",
        Level::Ok,
        format!("{} local changes not yet in every store", sync.unpublished_ops),
        None,
    ));
    Ok(checks)
}

/// Whether a store still holds what this device holds.
fn contents_check(name: &str, url: &str, contents: &AuditReport) -> Check {
    let check = format!("{name} contents");
    if contents.is_complete() {
        let detail = format!("{url}: holds everything this device holds ({} objects listed)", contents.listed);
        return Check::new(check, Level::Ok, detail, None);
    }
    let mut lacks = Vec::new();
    if contents.keys_missing {
        lacks.push("the vault file or a current key slot".to_owned());
    }
    if let Some(first) = contents.missing.first() {
        lacks.push(format!("{} objects this device holds (first: {first})", contents.missing.len()));
    }
    if let Some(first) = contents.damaged.first() {
        lacks.push(format!("good copies of {} damaged objects (first: {first})", contents.damaged.len()));
    }
    Check::new(check, Level::Warn, format!("{url}: lacks {}", lacks.join(", ")), Some(Hint::RepairStore))
}

fn store_verdict(keys: &StoreKeyCheck) -> (Level, Option<Hint>) {
    if keys.has_vault && !keys.fingerprint_matches {
        (Level::Fail, Some(Hint::CompareFingerprints))
    } else if !keys.has_vault || !keys.own_slot_opens || !keys.recovery_slot {
        (Level::Warn, Some(Hint::Sync))
    } else if !keys.passphrase_slot {
        (Level::Ok, Some(Hint::SetPassphrase))
    } else {
        (Level::Ok, None)
    }
}

/// A store's key check in words (`ours`: this device's vault key fingerprint).
pub fn describe(check: &StoreKeyCheck, ours: &str) -> String {
    if !check.has_vault {
        return "no vault here yet (the next sync publishes it)".into();
    }
    if !check.fingerprint_matches {
        return format!(
            "KEY MISMATCH: the store's fingerprint is {}, this device's {ours}",
            check.store_fingerprint.as_deref().unwrap_or("?")
        );
    }
    let mut parts = vec!["keys match".to_owned()];
    parts.push(if check.own_slot_opens {
        "this device's key slot opens".into()
    } else {
        "this device's key slot is missing or does not open (the next sync publishes it)".into()
    });
    if !check.recovery_slot {
        parts.push("recovery slot missing".into());
    }
    parts.push(if check.passphrase_slot {
        "joining with the passphrase works".into()
    } else {
        "no passphrase slot (setting the vault passphrase again adds one)".into()
    });
    parts.join("; ")
}

//! `ferry key fingerprint | passphrase | verify | keychain on|off`.

use crate::cli::{GlobalArgs, KeyAction};
use crate::exit::CliError;
use crate::unlock::{Purpose, kdf_cost, unlock};
use crate::{output, prompt};
use anyhow::{Context, Result};
use ferry_engine::{Direction, ErrorClass, Passphrase, StoreKeyCheck, Unlock, UnlockedWith, Vault};
use std::io::Write;

pub fn key(global: &GlobalArgs, action: &KeyAction) -> Result<()> {
    let mut vault = super::open(global)?;
    match action {
        KeyAction::Fingerprint(json) => fingerprint(&vault, json.json),
        KeyAction::Passphrase => passphrase(global, &mut vault),
        KeyAction::Verify { recovery, json } => verify(global, &vault, *recovery, json.json),
        KeyAction::Keychain { state } => keychain(&vault, state == "on"),
    }
}

fn fingerprint(vault: &Vault, json: bool) -> Result<()> {
    let status = vault.status()?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(
            &mut out,
            &serde_json::json!({
                "vault_id": status.vault_id,
                "vault_key_fingerprint": status.vault_key_fingerprint,
                "key_epoch": status.key_epoch,
                "device_id": status.device_id,
                "device_fingerprint": status.device_fingerprint,
            }),
        );
    }
    writeln!(
        out,
        "vault key fingerprint: {}  (vault {}, key epoch {})",
        status.vault_key_fingerprint, status.vault_id, status.key_epoch
    )?;
    writeln!(
        out,
        "this device:           {}  (\"{}\", {})",
        status.device_fingerprint, status.device_name, status.device_id
    )?;
    writeln!(out, "Every device of the vault shows the same vault key fingerprint; compare them to be sure.")?;
    Ok(())
}

fn passphrase(global: &GlobalArgs, vault: &mut Vault) -> Result<()> {
    if vault.status()?.unlocked_with != UnlockedWith::Passphrase {
        // Opened from the keychain: prove knowledge of the current passphrase anyway.
        let current = unlock(global, Purpose::Enter)?;
        vault.check_passphrase(&current).context("the current passphrase is needed to change it")?;
    }
    let new = prompt::new_passphrase("New passphrase: ")?;
    vault.change_passphrase(&Unlock { passphrase: Passphrase::from_zeroizing(new), kdf_cost: kdf_cost() })?;
    let outcomes = super::sync::sync_with_stores(global, vault, Direction::Push)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Passphrase changed: it unlocks this device, and joins new devices to the vault ({} store(s) updated).",
        outcomes.iter().filter(|o| o.result.is_ok()).count()
    )?;
    super::sync::fail_on_errors(outcomes)
}

fn verify(global: &GlobalArgs, vault: &Vault, recovery: bool, json: bool) -> Result<()> {
    let mut results: Vec<(String, Result<StoreKeyCheck, String>)> = Vec::new();
    let replicator = super::replicator(global, vault)?;
    for configured in vault.stores()? {
        let checked = replicator
            .open(&configured.url)
            .and_then(|store| vault.check_store(store.as_ref()))
            .map_err(|e| e.with_causes());
        results.push((configured.url, checked));
    }
    let phrase_ok = if recovery {
        let phrase = prompt::recovery_phrase("Recovery phrase (24 words): ")?;
        Some(vault.confirm_recovery_phrase(&phrase)?)
    } else {
        None
    };
    let status = vault.status()?;
    let mut out = std::io::stdout().lock();
    if json {
        let stores: Vec<serde_json::Value> = results
            .iter()
            .map(|(url, r)| match r {
                Ok(check) => serde_json::json!({ "store": url, "ok": check.is_ok(), "check": check }),
                Err(error) => serde_json::json!({ "store": url, "ok": false, "error": error }),
            })
            .collect();
        output::json(
            &mut out,
            &serde_json::json!({
                "vault_key_fingerprint": status.vault_key_fingerprint,
                "stores": stores,
                "recovery_phrase_matches": phrase_ok,
                "recovery_phrase_confirmed_ms": vault.recovery_confirmed_ms()?,
            }),
        )?;
    } else {
        writeln!(
            out,
            "this device: vault key fingerprint {} (epoch {})",
            status.vault_key_fingerprint, status.key_epoch
        )?;
        for (url, result) in &results {
            match result {
                Ok(check) => {
                    writeln!(out, "{url}: {}", ferry_net::describe_store_keys(check, &status.vault_key_fingerprint))?
                }
                Err(error) => writeln!(out, "{url}: cannot check: {error}")?,
            }
        }
        match phrase_ok {
            Some(true) => writeln!(out, "recovery phrase: matches this vault (confirmed now)")?,
            Some(false) => writeln!(out, "recovery phrase: DOES NOT match this vault")?,
            None => match vault.recovery_confirmed_ms()? {
                Some(at) => writeln!(out, "recovery phrase: last confirmed {}", output::timestamp(at))?,
                None => writeln!(out, "recovery phrase: never confirmed here (`ferry key verify --recovery`)")?,
            },
        }
    }
    if phrase_ok == Some(false) {
        return Err(CliError::new(ErrorClass::Locked, "the recovery phrase given is not this vault's").into());
    }
    if let Some((url, _)) =
        results.iter().find(|(_, r)| r.as_ref().is_ok_and(|c| c.has_vault && !c.fingerprint_matches))
    {
        return Err(
            CliError::new(ErrorClass::Setup, format!("key mismatch: {url} holds other keys than this device")).into()
        );
    }
    if results.iter().any(|(_, r)| !r.as_ref().is_ok_and(StoreKeyCheck::is_ok)) {
        return Err(CliError::new(ErrorClass::Other, "some stores are not in order: see above").into());
    }
    Ok(())
}

/// One line about a store's keys.
fn keychain(vault: &Vault, on: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if on {
        vault.remember_in_keychain()?;
        writeln!(out, "This device's key is in the OS keychain: commands here need no passphrase.")?;
    } else {
        vault.forget_keychain()?;
        writeln!(out, "This device's key is no longer in the OS keychain: commands ask for the passphrase.")?;
    }
    Ok(())
}

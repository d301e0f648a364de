//! `ferry doctor`: checks this device end to end and says what to do about each problem.

use crate::cli::{GlobalArgs, JsonArg};
use crate::exit::CliError;
use crate::output;
use anyhow::Result;
use ferry_engine::{ErrorClass, StoreState, UnlockedWith, Vault};
use ferry_store::StoreUrl;
use std::io::Write;

#[derive(serde::Serialize)]
struct Check {
    check: String,
    /// ok, warn or fail.
    result: &'static str,
    detail: String,
}

fn check(list: &mut Vec<Check>, name: impl Into<String>, result: &'static str, detail: impl Into<String>) {
    list.push(Check { check: name.into(), result, detail: detail.into() });
}

pub fn doctor(global: &GlobalArgs, args: &JsonArg) -> Result<()> {
    let mut checks = Vec::new();
    let home = super::home(global)?;
    let opened = if home.has_vault() {
        check(&mut checks, "home", "ok", format!("vault in {}", home.root().display()));
        match super::open(global) {
            Ok(vault) => Some(vault),
            Err(err) => {
                check(&mut checks, "unlock", "fail", format!("{err:#}"));
                None
            }
        }
    } else {
        check(
            &mut checks,
            "home",
            "fail",
            format!("no vault in {}: `ferry init`, `ferry join` or `ferry pair accept`", home.root().display()),
        );
        None
    };
    if let Some(vault) = &opened {
        device_checks(global, vault, &mut checks)?;
    }
    let failed = checks.iter().filter(|c| c.result == "fail").count();
    let mut out = std::io::stdout().lock();
    if args.json {
        output::json(&mut out, &checks)?;
    } else {
        for c in &checks {
            writeln!(out, "{:<4}  {:<18} {}", c.result, c.check, c.detail)?;
        }
    }
    if failed > 0 {
        return Err(CliError::new(ErrorClass::Other, format!("{failed} check(s) failed: see above")).into());
    }
    Ok(())
}

fn device_checks(global: &GlobalArgs, vault: &Vault, checks: &mut Vec<Check>) -> Result<()> {
    let status = vault.status()?;
    let how = match status.unlocked_with {
        UnlockedWith::Keychain => "the OS keychain holds this device's key (no passphrase needed)".to_owned(),
        UnlockedWith::Passphrase if global.no_keychain => {
            "the passphrase (--no-keychain / FERRY_NO_KEYCHAIN)".to_owned()
        }
        UnlockedWith::Passphrase => format!("the passphrase; OS keychain {}", status.keychain),
    };
    check(checks, "unlock", "ok", how);
    let me = vault.devices()?.into_iter().find(|d| d.this_device);
    match me.as_ref().and_then(|d| d.revoked_by.clone()) {
        Some(by) => {
            check(checks, "device", "fail", format!("this device was revoked by {by}: pair it again into a new home"))
        }
        None => check(
            checks,
            "device",
            "ok",
            format!("\"{}\" {} (fingerprint {})", status.device_name, status.device_id, status.device_fingerprint),
        ),
    }
    check(
        checks,
        "vault key",
        "ok",
        format!("fingerprint {} (epoch {})", status.vault_key_fingerprint, status.key_epoch),
    );
    match vault.recovery_confirmed_ms()? {
        Some(at) => check(checks, "recovery phrase", "ok", format!("confirmed {}", output::timestamp(at))),
        None => check(
            checks,
            "recovery phrase",
            "warn",
            "never confirmed on this device: check your copy with `ferry key verify --recovery`",
        ),
    }
    let stores = vault.stores()?;
    if stores.is_empty() {
        check(checks, "stores", "warn", "none: this device syncs with nothing (`ferry store add STORE`)");
    }
    let options = super::store_options(global, vault)?;
    for configured in stores {
        let name = format!("store {}", configured.id);
        let opened = StoreUrl::parse(&configured.url).and_then(|url| ferry_store::open(&url, &options));
        let result = opened.map_err(ferry_engine::Error::Store).and_then(|store| vault.check_store(store.as_ref()));
        match result {
            Ok(c) if c.is_ok() => check(
                checks,
                name,
                "ok",
                format!("{}: {}", configured.url, super::keys::describe(&c, &status.vault_key_fingerprint)),
            ),
            Ok(c) if c.has_vault && !c.fingerprint_matches => check(
                checks,
                name,
                "fail",
                format!("{}: {}", configured.url, super::keys::describe(&c, &status.vault_key_fingerprint)),
            ),
            Ok(c) => check(
                checks,
                name,
                "warn",
                format!("{}: {}", configured.url, super::keys::describe(&c, &status.vault_key_fingerprint)),
            ),
            Err(err) => check(checks, name, "fail", format!("{}: unreachable: {}", configured.url, err.with_causes())),
        }
    }
    let sync = vault.sync_status()?;
    for store in &sync.stores {
        if matches!(store.state, StoreState::Error | StoreState::Offline) {
            let error = store.last_error.as_deref().unwrap_or("unknown error");
            check(checks, "last sync", "warn", format!("{}: {error}", store.url));
        }
    }
    if sync.skipped.is_empty() {
        check(checks, "skipped objects", "ok", "none");
    } else {
        check(
            checks,
            "skipped objects",
            "warn",
            format!("{} objects could not be used: see `ferry sync status`", sync.skipped.len()),
        );
    }
    check(checks, "pending ops", "ok", format!("{} local changes not yet in every store", sync.unpublished_ops));
    Ok(())
}

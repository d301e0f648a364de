//! `ferry init`: a new vault, this device its first member, optionally in a store.

use crate::cli::{GlobalArgs, InitArgs};
use crate::output;
use crate::unlock::{Purpose, unlock};
use anyhow::{Context, Result};
use ferry_engine::{CreateOptions, Direction, Vault};
use ferry_store::StoreUrl;
use std::io::Write;

pub fn init(global: &GlobalArgs, args: &InitArgs) -> Result<()> {
    let home = super::home(global)?;
    if home.has_vault() {
        return Err(ferry_engine::Error::AlreadyInitialized { home: home.root().to_owned() }.into());
    }
    let device_name = super::device_name(args.name.as_deref())?;
    let store = args.store.as_deref().map(StoreUrl::parse).transpose()?;
    if let Some(url) = &store {
        ferry_store::prepare(url).with_context(|| format!("cannot use the store {}", url.to_text()))?;
    }
    let options = CreateOptions { device_name, unlock: unlock(global, Purpose::Choose)? };
    let (mut vault, recovery_phrase) = match &store {
        None => {
            let created = Vault::create(&home, options)?;
            (created.vault, created.recovery_phrase)
        }
        Some(url) => {
            let opened = ferry_store::open(url, &super::store_options(global))?;
            let created = Vault::create_for_store(&home, options, &url.to_text(), opened.as_ref())?;
            (created.vault, created.recovery_phrase)
        }
    };
    // Publish the vault to its store now; if that fails, the next `ferry sync` finishes it.
    let publish_error = match &store {
        Some(_) => super::sync::sync_all(&mut vault, Direction::Push, &super::store_options(global))?
            .into_iter()
            .find_map(|outcome| outcome.error),
        None => None,
    };
    let keychain = super::offer_keychain(global, &vault);
    let status = vault.status()?;
    let words = recovery_phrase.to_words();

    let mut out = std::io::stdout().lock();
    if let Some(err) = &publish_error {
        eprintln!("ferry: warning: the vault was created, but the store could not be prepared yet: {err}");
        eprintln!("ferry: run `ferry sync` to finish; until then other devices cannot join");
    }
    if args.json.json {
        let mut report = output::device_json(&status);
        report.insert("store".into(), store.as_ref().map(StoreUrl::to_text).into());
        report.insert("store_ready".into(), (store.is_some() && publish_error.is_none()).into());
        report.insert("recovery_phrase".into(), words.into());
        return output::json(&mut out, &report);
    }
    writeln!(
        out,
        "Created vault {} with this device, \"{}\" ({}).",
        status.vault_id, status.device_name, status.device_id
    )?;
    writeln!(out, "Vault key fingerprint: {}", status.vault_key_fingerprint)?;
    if let Some(url) = &store {
        writeln!(out, "Store: {}", url.to_text())?;
    }
    writeln!(out, "Home: {}", status.home.display())?;
    writeln!(out, "{keychain}")?;
    writeln!(out)?;
    writeln!(out, "================ RECOVERY PHRASE: WRITE IT DOWN NOW ================")?;
    for (row, chunk) in words.split(' ').collect::<Vec<_>>().chunks(6).enumerate() {
        let cells: Vec<String> =
            chunk.iter().enumerate().map(|(i, w)| format!("{:>2}. {w:<9}", row * 6 + i + 1)).collect();
        writeln!(out, "  {}", cells.join(" ").trim_end())?;
    }
    writeln!(out, "====================================================================")?;
    writeln!(out, "This phrase is shown ONCE and stored nowhere. If you lose every device")?;
    writeln!(out, "AND this phrase, your data is gone for good: nobody can recover it.")?;
    Ok(())
}

//! `ferry init`: a new vault, this device its first member, optionally in a store.

use crate::cli::{GlobalArgs, InitArgs};
use crate::exit::CliError;
use crate::unlock::{Purpose, unlock};
use crate::{output, prompt};
use anyhow::{Context, Result};
use ferry_engine::{CreateOptions, Direction, ErrorClass, Vault};
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
        Some(hub @ StoreUrl::Hub(_)) => {
            // A hub is reached with the device's key, so the vault comes first; adding the hub
            // then claims it (the location's one-time secret) and queues the vault for it.
            let created = Vault::create(&home, options.clone())?;
            let mut vault = created.vault;
            let cannot_add = || {
                format!(
                    "the vault was created, but the hub {} cannot be added: retry with `ferry store add` and the line the hub printed",
                    hub.to_text()
                )
            };
            let opened = super::replicator(global, &vault)?.open_url(hub).with_context(cannot_add)?;
            vault.attach_store(&hub.to_text(), opened.as_ref(), Some(&options.unlock)).with_context(cannot_add)?;
            (vault, created.recovery_phrase)
        }
        Some(url) => {
            let opened = super::replicator_without_hubs(global).open_url(url)?;
            let created = match Vault::create_for_store(&home, options.clone(), &url.to_text(), opened.as_ref()) {
                Err(ferry_engine::Error::StoreHasVault { vault_id, .. }) if args.force => {
                    replace(&home, options, url, opened.as_ref(), &vault_id)?
                }
                other => other?,
            };
            (created.vault, created.recovery_phrase)
        }
    };
    // Publish the vault to its store now; if that fails, the next `ferry sync` finishes it.
    let publish_error = match &store {
        Some(_) => super::sync::sync_with_stores(global, &mut vault, Direction::Push)?
            .into_iter()
            .find_map(|outcome| outcome.result.err().map(|e| e.with_causes())),
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

/// `--force` over a store that holds a vault: typed confirmation, then the old recovery phrase,
/// then the old vault is moved aside and the new one created.
fn replace(
    home: &ferry_engine::Home,
    options: CreateOptions,
    url: &StoreUrl,
    store: &dyn ferry_store::Store,
    old_vault: &str,
) -> Result<ferry_engine::Created> {
    let short = &old_vault[..old_vault.len().min(8)];
    eprintln!("{} holds vault {old_vault}. It will be moved to previous/{old_vault}/ in the store,", url.to_text());
    eprintln!("where only its recovery phrase can open it again: devices of that vault stop syncing here.");
    let typed = prompt::line(&format!("Type {short} to replace it: "), false)?;
    if typed.trim() != short {
        return Err(CliError::new(ErrorClass::BadInput, "not confirmed: nothing was changed").into());
    }
    let phrase = prompt::recovery_phrase("Recovery phrase of the vault being replaced (24 words): ")?;
    let (created, moved) = Vault::create_for_store_replacing(home, options, &url.to_text(), store, &phrase)
        .context("cannot replace the vault")?;
    if let Some(moved) = moved {
        eprintln!("The old vault is now at {moved} in the store (`ferry join <store>/{moved} --recovery` opens it).");
    }
    Ok(created)
}

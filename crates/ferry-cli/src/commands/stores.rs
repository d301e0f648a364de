//! `ferry store add | ls | rm`: the stores a device syncs with.

use crate::cli::{GlobalArgs, StoreAction};
use crate::output;
use crate::unlock::{Purpose, unlock};
use anyhow::{Context, Result};
use ferry_engine::Vault;
use ferry_store::StoreUrl;
use std::io::Write;

pub fn store(global: &GlobalArgs, vault: &mut Vault, action: &StoreAction) -> Result<()> {
    match action {
        StoreAction::Add { store, json } => add(global, vault, store, json.json),
        StoreAction::Ls(json) => ls(vault, json.json),
        StoreAction::Rm { store } => {
            let found = super::find_store(vault, store)?;
            vault.detach_store(found.id)?;
            writeln!(std::io::stdout().lock(), "stopped syncing with {} (its objects stay where they are)", found.url)?;
            Ok(())
        }
    }
}

fn add(global: &GlobalArgs, vault: &mut Vault, text: &str, json: bool) -> Result<()> {
    let url = StoreUrl::parse(text)?;
    let replicator = super::replicator(global, vault)?;
    let cannot_use = || format!("cannot use the store {}", url.to_text());
    let outcome = match replicator.add_store(vault, &url, None) {
        // An empty store gets the vault's passphrase slot: that needs the passphrase.
        Err(ferry_engine::Error::WrongPassphrase { .. }) => {
            let unlock = unlock(global, Purpose::Enter)?;
            replicator.add_store(vault, &url, Some(&unlock)).with_context(cannot_use)?
        }
        other => other.with_context(cannot_use)?,
    };
    let id = outcome.store;
    let report = outcome.result.with_context(|| {
        format!("the store {} was added, but the first sync failed; `ferry sync` retries", url.to_text())
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, &serde_json::json!({ "id": id, "store": url.to_text(), "report": report }));
    }
    let push = report.push.unwrap_or_default();
    let pull = report.pull.unwrap_or_default();
    writeln!(
        out,
        "added {} (id {id}): published {} own ops and {} objects of other devices; pulled {} ops",
        url.to_text(),
        push.uploaded_ops,
        push.relayed_objects,
        pull.imported_ops
    )?;
    Ok(())
}

fn ls(vault: &Vault, json: bool) -> Result<()> {
    let status = vault.sync_status()?;
    let mut out = std::io::stdout().lock();
    let stores: Vec<_> = status.stores.iter().filter(|s| !s.peer).collect();
    if json {
        return output::json(&mut out, &stores);
    }
    let rows: Vec<Vec<String>> = status
        .stores
        .iter()
        .filter(|s| !s.peer)
        .map(|s| {
            vec![
                s.id.to_string(),
                serde_json::to_value(s.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                s.last_success_ms.map_or_else(|| "never".to_owned(), output::timestamp),
                s.url.clone(),
            ]
        })
        .collect();
    Ok(output::table(&mut out, &["ID", "STATE", "LAST SYNC", "STORE"], &rows)?)
}

//! `ferry store add | ls | check | rm`: the stores a device syncs with.

use crate::cli::{GlobalArgs, StoreAction};
use crate::output;
use crate::unlock::{Purpose, unlock};
use anyhow::{Context, Result};
use ferry_engine::{AuditReport, Direction, StoreHandle, Vault};
use ferry_store::StoreUrl;
use std::io::Write;

pub fn store(global: &GlobalArgs, vault: &mut Vault, action: &StoreAction) -> Result<()> {
    match action {
        StoreAction::Add { store, json } => add(global, vault, store, json.json),
        StoreAction::Ls(json) => ls(vault, json.json),
        StoreAction::Check { store, repair, json } => check(global, vault, store.as_deref(), *repair, json.json),
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

/// `ferry store check`: lists each store once and says what it lacks; `--repair` syncs with it,
/// checking and putting back first.
fn check(global: &GlobalArgs, vault: &mut Vault, which: Option<&str>, repair: bool, json: bool) -> Result<()> {
    let stores = match which {
        Some(text) => vec![super::find_store(vault, text)?],
        None => vault.stores()?,
    };
    let replicator = super::replicator(global, vault)?;
    let mut results = Vec::new();
    for configured in stores {
        let report: Result<AuditReport> = if repair {
            vault.check_store_at_next_push(configured.id)?;
            let outcome = replicator.sync_store(vault, &configured, Direction::Both);
            outcome
                .result
                .with_context(|| format!("cannot repair {}", configured.url))
                .map(|report| report.push.and_then(|push| push.audit).unwrap_or_default())
        } else {
            replicator
                .open(&configured.url)
                .and_then(|store| vault.check_store_contents(StoreHandle { id: configured.id, store: store.as_ref() }))
                .with_context(|| format!("cannot check {}", configured.url))
        };
        results.push((configured, report?));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = results
            .iter()
            .map(|(store, report)| serde_json::json!({ "id": store.id, "store": store.url, "report": report }))
            .collect();
        return output::json(&mut out, &rows);
    }
    let mut lacking = false;
    for (store, report) in &results {
        if report.is_complete() && report.restored == 0 {
            writeln!(out, "{}: holds everything this device holds ({} objects listed)", store.url, report.listed)?;
            continue;
        }
        let verb = if repair { "put back" } else { "lacks" };
        lacking |= !repair;
        if report.keys_missing {
            writeln!(out, "{}: {verb} the vault file or a current key slot", store.url)?;
        }
        for path in &report.missing {
            writeln!(out, "{}: {verb} {path}", store.url)?;
        }
        for path in &report.damaged {
            let verb = if repair { "replaced damaged" } else { "holds a damaged" };
            writeln!(out, "{}: {verb} {path}", store.url)?;
        }
    }
    if lacking {
        // Like `restic check`: a script sees the loss in the exit code.
        anyhow::bail!(
            "a store lacks objects: `ferry store check --repair` puts them back now (a sync does within the hour)"
        );
    }
    Ok(())
}

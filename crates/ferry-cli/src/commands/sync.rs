//! `ferry join` and `ferry sync [push | pull | status]`.

use crate::cli::{GlobalArgs, JoinArgs, JsonArg, SyncAction, SyncArgs};
use crate::output;
use crate::unlock::{Purpose, unlock};
use anyhow::{Context, Result};
use ferry_engine::{Direction, JoinOptions, JoinWith, Vault};
use ferry_net::StoreOutcome;
use ferry_store::StoreUrl;
use std::io::Write;

/// Syncs with every configured store, opened as this device; one store's failure does not
/// stop the others.
pub fn sync_with_stores(global: &GlobalArgs, vault: &mut Vault, direction: Direction) -> Result<Vec<StoreOutcome>> {
    Ok(super::replicator(global, vault)?.sync_all(vault, direction)?)
}

pub fn join(global: &GlobalArgs, args: &JoinArgs) -> Result<()> {
    let home = super::home(global)?;
    if home.has_vault() {
        return Err(ferry_engine::Error::AlreadyInitialized { home: home.root().to_owned() }.into());
    }
    let device_name = super::device_name(args.name.as_deref())?;
    let url = StoreUrl::parse(&args.store)?;
    if matches!(url, StoreUrl::Hub(_)) {
        return Err(crate::exit::CliError::new(
            ferry_engine::ErrorClass::Setup,
            "a hub takes only devices the vault vouches for: run `ferry pair invite` on a device of the vault, then `ferry pair accept …` here",
        )
        .into());
    }
    let store = super::replicator_without_hubs(global).open_url(&url)?;
    let options = if args.recovery {
        let phrase = crate::prompt::recovery_phrase("Recovery phrase (24 words): ")?;
        crate::prompt::note("Choose a passphrase for this device.");
        JoinOptions { device_name, unlock: unlock(global, Purpose::Choose)?, with: JoinWith::RecoveryPhrase(phrase) }
    } else {
        JoinOptions { device_name, unlock: unlock(global, Purpose::Enter)?, with: JoinWith::Passphrase }
    };
    let mut vault = Vault::join(&home, options, &url.to_text(), store.as_ref())
        .with_context(|| format!("cannot join the vault in {}", url.to_text()))?;
    let keychain = super::offer_keychain(global, &vault);
    let outcomes = sync_with_stores(global, &mut vault, Direction::Both)?;
    report_joined(&vault, "Joined", &url.to_text(), &keychain, outcomes, args.json.json)
}

/// After a device joined (with the passphrase, the recovery phrase, or by pairing): what it is
/// now, and how its first sync went.
pub fn report_joined(
    vault: &Vault,
    verb: &str,
    store: &str,
    keychain: &str,
    outcomes: Vec<StoreOutcome>,
    json: bool,
) -> Result<()> {
    let status = vault.status()?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut report = output::device_json(&status);
        report.insert("store".into(), store.into());
        report.insert("records".into(), status.records.into());
        report.insert("ops".into(), status.ops.into());
        output::json(&mut out, &report)?;
    } else {
        writeln!(out, "{verb} vault {} as \"{}\" ({}).", status.vault_id, status.device_name, status.device_id)?;
        writeln!(
            out,
            "Vault key fingerprint: {} (the same on every device of the vault)",
            status.vault_key_fingerprint
        )?;
        writeln!(out, "{keychain}")?;
        print_outcomes(&mut out, &outcomes)?;
    }
    fail_on_errors(outcomes)
}

pub fn sync(global: &GlobalArgs, vault: &mut Vault, args: &SyncArgs) -> Result<()> {
    if let Some(addr) = &args.peer {
        return super::peers::pull_from(global, vault, addr, args.json.json);
    }
    let (direction, json) = match &args.action {
        None => (Direction::Both, args.json.json),
        Some(SyncAction::Push(JsonArg { json })) => (Direction::Push, *json || args.json.json),
        Some(SyncAction::Pull(JsonArg { json })) => (Direction::Pull, *json || args.json.json),
        Some(SyncAction::Status(JsonArg { json })) => return status(vault, *json || args.json.json),
        Some(SyncAction::Now(JsonArg { json })) => {
            let json = *json || args.json.json;
            match ferry_net::api::LocalClient::for_home(vault.home().root()) {
                Ok(daemon) => {
                    let answer = daemon.post("/api/sync/actions/sync-now")?;
                    let mut out = std::io::stdout().lock();
                    if json {
                        return output::json(&mut out, &answer);
                    }
                    writeln!(out, "asked the running daemon to sync every store and retry every peer now")?;
                    return Ok(());
                }
                Err(ferry_net::api::ClientError::NotRunning { .. }) => {
                    eprintln!("No daemon runs for this home: syncing once here.");
                    (Direction::Both, json)
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    if vault.stores()?.is_empty() {
        return Err(ferry_engine::Error::NoStore.into());
    }
    let outcomes = sync_with_stores(global, vault, direction)?;
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                let (report, error) = match &o.result {
                    Ok(report) => (Some(report), None),
                    Err(err) => (None, Some(err.with_causes())),
                };
                serde_json::json!({ "store": o.url, "report": report, "error": error })
            })
            .collect();
        output::json(&mut out, &list)?;
    } else {
        print_outcomes(&mut out, &outcomes)?;
    }
    fail_on_errors(outcomes)
}

pub fn print_outcomes(out: &mut impl Write, outcomes: &[StoreOutcome]) -> Result<()> {
    for outcome in outcomes {
        let report = match &outcome.result {
            Ok(report) => report,
            Err(err) => {
                writeln!(out, "{}: failed: {}", outcome.url, err.with_causes())?;
                continue;
            }
        };
        let mut parts = Vec::new();
        if let Some(push) = &report.push {
            parts.push(format!(
                "pushed {} in {}",
                count(push.uploaded_ops, "op"),
                count(push.uploaded_segments, "segment")
            ));
        }
        if let Some(pull) = &report.pull {
            let from = match &pull.snapshot {
                Some(snapshot) => format!("a snapshot ({snapshot}) and {}", count(pull.imported_segments, "segment")),
                None => count(pull.imported_segments, "segment"),
            };
            parts.push(format!("pulled {} in {from}", count(pull.imported_ops, "op")));
            if pull.new_devices > 0 {
                parts.push(format!("learned {}", count(pull.new_devices, "device")));
            }
            if !pull.skipped.is_empty() {
                parts.push(format!("skipped {} (see `ferry sync status`)", count(pull.skipped.len() as u64, "object")));
            }
        }
        writeln!(out, "{}: {}", outcome.url, parts.join(", "))?;
    }
    Ok(())
}

/// "1 op", "2 ops".
fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// Turns the first failed store into the command's error (and exit code).
pub fn fail_on_errors(outcomes: Vec<StoreOutcome>) -> Result<()> {
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    match outcomes.into_iter().find_map(|o| o.result.err().map(|e| (o.url, e))) {
        None => Ok(()),
        Some((url, err)) => {
            let context =
                if failed > 1 { format!("{failed} stores failed; the first, {url}") } else { format!("store {url}") };
            Err(anyhow::Error::new(err).context(context))
        }
    }
}

fn status(vault: &Vault, json: bool) -> Result<()> {
    let status = vault.sync_status()?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, &status);
    }
    if status.stores.is_empty() {
        writeln!(out, "no stores: this device syncs with nothing (ferry init --store / ferry join)")?;
    }
    for store in &status.stores {
        let state = serde_json::to_value(store.state)?.as_str().unwrap_or_default().to_owned();
        writeln!(out, "{} {}  {state}", if store.peer { "peer" } else { "store" }, store.url)?;
        let when = |ms: Option<u64>| ms.map_or_else(|| "never".to_owned(), output::timestamp);
        writeln!(out, "  last sync: {}   last attempt: {}", when(store.last_success_ms), when(store.last_attempt_ms))?;
        if let Some(error) = &store.last_error {
            writeln!(out, "  last error: {error}")?;
            writeln!(out, "  failures in a row: {}, next retry after {}", store.failures, when(store.next_retry_ms))?;
        }
        writeln!(
            out,
            "  this device's published segments: {} ({} waiting, {} other objects queued)",
            store.uploaded_seq, store.pending_segments, store.queued_objects
        )?;
        if let Some(size) = store.size {
            writeln!(
                out,
                "  holds {} objects, {} (listed {})",
                size.objects,
                output::bytes(size.bytes),
                output::timestamp(size.listed_ms)
            )?;
        }
        if let Some(from) = store.pending_purge {
            writeln!(
                out,
                "  purge pending: segments from {from} on are rewritten without forgotten data at the next sync"
            )?;
        }
    }
    writeln!(out, "pending local ops: {}", status.unpublished_ops)?;
    if !status.devices.is_empty() {
        writeln!(out, "other devices:")?;
        let rows: Vec<Vec<String>> = status
            .devices
            .iter()
            .map(|d| {
                vec![
                    format!("  {}", d.name),
                    d.device_id[..8].to_owned(),
                    d.imported_seq.to_string(),
                    d.imported_ops.to_string(),
                ]
            })
            .collect();
        output::table(&mut out, &["  DEVICE", "ID", "SEGMENTS", "OPS IMPORTED"], &rows)?;
    }
    // Live peer links, when a daemon follows them: their state and how far behind they are.
    if let Ok(daemon) = ferry_net::api::LocalClient::for_home(vault.home().root())
        && let Ok(peers) = daemon.get("/api/sync/peers")
    {
        for peer in peers.as_array().into_iter().flatten() {
            let name = peer["name"].as_str().unwrap_or_default();
            let state = peer["state"].as_str().unwrap_or_default();
            writeln!(out, "peer {name} (daemon): {state}, {}", super::peers::lag(peer))?;
        }
    }
    writeln!(
        out,
        "conflicts: {} concurrent writes resolved automatically; {} records have concurrent heads now",
        status.auto_resolved_conflicts, status.records_with_concurrent_heads
    )?;
    let history = &status.history;
    writeln!(
        out,
        "history: {} ops for {} records, database {}; `ferry prune` would drop up to {} superseded ops (retention {})",
        history.ops,
        history.records,
        output::bytes(history.database_bytes),
        history.prunable_ops,
        history.retention
    )?;
    match &history.snapshot {
        Some((path, at)) => writeln!(out, "  newest snapshot: {path} ({})", output::timestamp(*at))?,
        None => writeln!(out, "  no snapshot yet (`ferry prune` writes one)")?,
    }
    if status.skipped.is_empty() {
        writeln!(out, "skipped objects: none")?;
    } else {
        writeln!(out, "skipped objects ({}):", status.skipped.len())?;
        for skipped in &status.skipped {
            writeln!(
                out,
                "  {} {}: {} ({})",
                skipped.store,
                skipped.path,
                skipped.reason,
                output::timestamp(skipped.at_ms)
            )?;
        }
    }
    Ok(())
}

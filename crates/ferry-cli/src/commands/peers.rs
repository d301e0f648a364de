//! `ferry serve` and `ferry sync --peer`: devices syncing directly over the LAN.

use crate::cli::{GlobalArgs, PeersAction, PeersArgs, ServeArgs};
use crate::output;
use anyhow::{Context, Result};
use ferry_engine::{Direction, Vault};
use ferry_net::{PeerStore, Pins, TlsIdentity};
use std::io::Write;
use std::time::Duration;

/// This device's TLS identity and the keys of the vault's active devices.
fn tls(vault: &Vault) -> Result<(TlsIdentity, Pins)> {
    let identity = TlsIdentity::new(&vault.device_signing_secret()?)?;
    let pins = Pins::default();
    pins.set(vault.active_device_keys()?);
    Ok((identity, pins))
}

pub fn pull_from(vault: &mut Vault, addr: &str, json: bool) -> Result<()> {
    let (identity, pins) = tls(vault)?;
    let peer = PeerStore::new(addr, &identity, pins)?;
    let report = vault.pull_from_peer(&peer).with_context(|| format!("cannot sync with the peer {addr}"))?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, &report);
    }
    writeln!(
        out,
        "peer:{addr}: pulled {} ops in {} segments{}",
        report.imported_ops,
        report.imported_segments,
        if report.skipped.is_empty() { String::new() } else { format!(", skipped {} objects", report.skipped.len()) }
    )?;
    Ok(())
}

pub fn serve(global: &GlobalArgs, mut vault: Vault, args: &ServeArgs) -> Result<()> {
    let (identity, pins) = tls(&vault)?;
    let served = vault.reopen()?;
    let server = ferry_net::serve(served, &identity, pins.clone(), args.listen)
        .with_context(|| format!("cannot serve on {}", args.listen))?;
    let status = vault.status()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "serving {} (\"{}\") on {}", status.device_id, status.device_name, server.addr())?;
    out.flush()?;
    drop(out);
    eprintln!("Other devices of the vault: ferry sync --peer {}. Stop with Ctrl-C.", server.addr());
    let interval = Duration::from_secs(args.interval.max(1));
    loop {
        // Devices paired or revoked since: the next handshake knows.
        pins.set(vault.active_device_keys()?);
        if !vault.stores()?.is_empty() {
            for outcome in super::sync::sync_all(&mut vault, Direction::Both, &super::store_options(global))? {
                if let Some(error) = outcome.error {
                    eprintln!("ferry: {}: {error} (retrying in {}s)", outcome.url, interval.as_secs());
                }
            }
        }
        for (addr, _) in vault.peer_addresses()? {
            // Each attempt is recorded (`ferry peers`); one peer down does not stop the others.
            let pulled = PeerStore::new(&addr, &identity, pins.clone())
                .map_err(anyhow::Error::from)
                .and_then(|peer| vault.pull_from_peer(&peer).map_err(anyhow::Error::from));
            if let Err(error) = pulled {
                eprintln!("ferry: peer {addr}: {error:#}");
            }
        }
        std::thread::sleep(interval);
    }
}

pub fn peers(vault: &mut Vault, args: &PeersArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &args.action {
        Some(PeersAction::Add { id, addr }) => {
            vault.add_peer(id, addr)?;
            writeln!(
                out,
                "remembered {addr}: `ferry serve` pulls from it on every round; `ferry sync --peer {addr}` now"
            )?;
        }
        Some(PeersAction::ForgetAddress { addr }) => {
            vault.remove_peer(addr).map_err(|_| {
                crate::exit::CliError::new(
                    ferry_engine::ErrorClass::NotFound,
                    format!("no stored peer address {addr}: see `ferry peers`"),
                )
            })?;
            writeln!(out, "forgot {addr}")?;
        }
        None => {
            let names: std::collections::HashMap<String, String> =
                vault.devices()?.into_iter().map(|d| (d.device_id, d.name)).collect();
            let stored = vault.peer_addresses()?;
            let status = vault.sync_status()?;
            let peers: Vec<serde_json::Value> = status
                .stores
                .iter()
                .filter(|s| s.peer)
                .map(|s| {
                    let addr = s.url.strip_prefix("peer:").unwrap_or(&s.url);
                    let device = stored.iter().find(|(a, _)| a == addr).and_then(|(_, d)| *d).map(|d| d.to_string());
                    serde_json::json!({
                        "address": addr,
                        "device_id": device,
                        "device_name": device.as_ref().and_then(|d| names.get(d)),
                        "stored": stored.iter().any(|(a, _)| a == addr),
                        "state": s.state,
                        "last_attempt_ms": s.last_attempt_ms,
                        "last_success_ms": s.last_success_ms,
                        "last_error": s.last_error,
                    })
                })
                .collect();
            if args.json.json {
                return output::json(&mut out, &peers);
            }
            if peers.is_empty() {
                writeln!(out, "no peers yet: `ferry peers add ID HOST:PORT`, or `ferry sync --peer HOST:PORT`")?;
                return Ok(());
            }
            let when = |v: &serde_json::Value| v.as_u64().map_or_else(|| "never".to_owned(), output::timestamp);
            let rows: Vec<Vec<String>> = peers
                .iter()
                .map(|p| {
                    vec![
                        p["address"].as_str().unwrap_or_default().to_owned(),
                        p["device_name"].as_str().unwrap_or("?").to_owned(),
                        p["state"].as_str().unwrap_or_default().to_owned(),
                        when(&p["last_success_ms"]),
                        p["last_error"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            output::table(&mut out, &["ADDRESS", "DEVICE", "STATE", "LAST SYNC", "LAST ERROR"], &rows)?;
        }
    }
    Ok(())
}

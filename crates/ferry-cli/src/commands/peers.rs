//! `ferry serve` and `ferry sync --peer`: devices syncing directly over the LAN.

use crate::cli::{GlobalArgs, PeersAction, PeersArgs, ServeArgs};
use crate::output;
use anyhow::{Context, Result};
use ferry_engine::Vault;
use ferry_net::{Daemon, DaemonConfig, StoreSync};
use std::io::Write;
use std::time::Duration;

/// `ferry sync --peer ADDR|DEVICE`: one pull from a peer, at the address given or at the
/// device's known addresses (the one that last worked first).
pub fn pull_from(global: &GlobalArgs, vault: &mut Vault, target: &str, json: bool) -> Result<()> {
    let pulled = super::replicator(global, vault)?
        .pull_from_peer(vault, target)
        .with_context(|| format!("cannot sync with the peer {target}"))?;
    print_pull(&pulled.addr, &pulled.report, json)
}

fn print_pull(addr: &str, report: &ferry_engine::PullReport, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, report);
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

pub fn serve(global: &GlobalArgs, vault: Vault, args: &ServeArgs) -> Result<()> {
    let api = match args.api.as_str() {
        "off" => None,
        addr => {
            Some(addr.parse().with_context(|| format!("--api {addr}: not an address like 127.0.0.1:7421 (or off)"))?)
        }
    };
    let config = DaemonConfig {
        listen: args.listen,
        api,
        mdns: !args.no_mdns,
        stores: Some(StoreSync {
            replicator: super::replicator(global, &vault)?,
            interval: Duration::from_secs(args.interval.max(1)),
        }),
    };
    let status = vault.status()?;
    // Ctrl-C, `kill` and a service manager's stop end the daemon cleanly: it stops its threads
    // and removes `daemon.json`, so no client mistakes a dead daemon for a live one. Listened
    // for before it starts, so a stop that comes early does the same.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, stop.clone()).context("cannot listen for stop signals")?;
    }
    output::start_logging();
    let daemon = Daemon::start(vault, config).with_context(|| format!("cannot serve on {}", args.listen))?;
    let info = daemon.info().clone();
    let mut out = std::io::stdout().lock();
    writeln!(out, "serving {} (\"{}\") on {}", status.device_id, status.device_name, info.listen)?;
    out.flush()?;
    drop(out);
    if let Some(api) = daemon.api_addr() {
        eprintln!("Local API on http://{api} (key in {}).", ferry_net::api::TOKEN_FILE);
    }
    match (&info.mdns_error, info.mdns) {
        (Some(error), _) => eprintln!("ferry: {error}; devices are dialled at stored addresses only."),
        (None, true) => eprintln!("Finding the vault's other devices on the LAN (mDNS)."),
        (None, false) => eprintln!("mDNS off: devices are dialled at stored addresses (`ferry peers add`)."),
    }
    eprintln!("Other devices: ferry sync --peer {}. Stop with Ctrl-C.", info.listen);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("Stopping.");
    drop(daemon);
    Ok(())
}

pub fn peers(vault: &mut Vault, args: &PeersArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &args.action {
        Some(PeersAction::Add { id, addr }) => {
            vault.add_peer(id, addr)?;
            // A running daemon dials it at once rather than at its next retry.
            let told = ferry_net::api::LocalClient::for_home(vault.home().root())
                .and_then(|daemon| daemon.post("/api/sync/actions/sync-now"))
                .is_ok();
            writeln!(
                out,
                "remembered {addr}: {} follows the device there; `ferry sync --peer {addr}` pulls once now",
                if told { "the running daemon" } else { "`ferry serve`" }
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
            // The running daemon knows most (mDNS, last contact, link state); without one, what
            // the database remembers of past pulls.
            let (peers, live) = match ferry_net::api::LocalClient::for_home(vault.home().root()) {
                Ok(daemon) => (daemon.get("/api/sync/peers")?, true),
                Err(ferry_net::api::ClientError::NotRunning { .. }) => (remembered_peers(vault)?, false),
                Err(err) => return Err(err.into()),
            };
            if args.json.json {
                return output::json(&mut out, &peers);
            }
            let peers = peers.as_array().cloned().unwrap_or_default();
            if peers.is_empty() {
                writeln!(out, "no peers yet: pair a device (`ferry pair invite`), then run `ferry serve` on both")?;
                return Ok(());
            }
            let when = |v: &serde_json::Value| v.as_u64().map_or_else(|| "never".to_owned(), output::timestamp);
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
            let rows: Vec<Vec<String>> = peers
                .iter()
                .map(|p| {
                    let address = p["address"].as_str().or_else(|| p["mdns_address"].as_str()).unwrap_or("-");
                    vec![
                        text(&p["name"]),
                        p["device_id"].as_str().map(|d| d.chars().take(8).collect()).unwrap_or_default(),
                        text(&p["state"]),
                        address.to_owned(),
                        when(&p["last_sync_ms"]),
                        lag(p),
                        text(&p["last_error"]),
                    ]
                })
                .collect();
            output::table(&mut out, &["NAME", "DEVICE", "STATE", "ADDRESS", "LAST SYNC", "LAG", "LAST ERROR"], &rows)?;
            if !live {
                writeln!(out, "(no daemon running: states are from the last pulls; `ferry serve` follows peers live)")?;
            }
        }
    }
    Ok(())
}

/// How far behind this device is of a peer: "behind 12 s" while its changes wait to be
/// imported, else how long the last catch-up took.
pub(super) fn lag(peer: &serde_json::Value) -> String {
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    match (peer["behind_since_ms"].as_u64(), peer["last_catch_up_ms"].as_u64()) {
        (Some(since), _) => format!("behind {}", seconds(ferry_engine::now_ms().saturating_sub(since))),
        (None, Some(took)) => format!("caught up in {}", seconds(took)),
        (None, None) => "-".to_owned(),
    }
}

/// The peers as the database remembers them: each stored or used address, by device.
fn remembered_peers(vault: &Vault) -> Result<serde_json::Value> {
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
                "device_id": device,
                "name": device.as_ref().and_then(|d| names.get(d)),
                "address": addr,
                "state": s.state,
                "last_seen_ms": s.last_attempt_ms,
                "last_sync_ms": s.last_success_ms,
                "last_error": s.last_error,
            })
        })
        .collect();
    Ok(serde_json::Value::Array(peers))
}

//! `ferry serve` and `ferry sync --peer`: devices syncing directly over the LAN.

use crate::cli::{GlobalArgs, ServeArgs};
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
        std::thread::sleep(interval);
    }
}

//! `ferry devices` and `ferry devices revoke ID`.

use crate::cli::{DevicesAction, DevicesArgs, GlobalArgs};
use crate::output;
use anyhow::Result;
use ferry_engine::{DeviceInfo, Vault};
use std::io::Write;

pub fn devices(global: &GlobalArgs, vault: &mut Vault, args: &DevicesArgs) -> Result<()> {
    match &args.action {
        None => list(vault, args.json.json),
        Some(DevicesAction::Revoke { id, json }) => revoke(global, vault, id, json.json || args.json.json),
    }
}

fn list(vault: &Vault, json: bool) -> Result<()> {
    let devices = vault.devices()?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, &devices);
    }
    let name_of = |id: &str| {
        devices
            .iter()
            .find(|d| d.device_id == id)
            .map_or_else(|| id.get(..8).unwrap_or(id).to_owned(), |d| d.name.clone())
    };
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.device_id[..8].to_owned(),
                d.fingerprint.clone(),
                d.enrolled_by
                    .as_deref()
                    .map_or_else(String::new, |by| if by == d.device_id { "itself".into() } else { name_of(by) }),
                output::timestamp(d.enrolled_ms),
                d.last_write_ms.map_or_else(|| "never".to_owned(), output::timestamp),
                state(d, &name_of),
            ]
        })
        .collect();
    output::table(&mut out, &["NAME", "ID", "FINGERPRINT", "ENROLLED BY", "ENROLLED", "LAST WRITE", "STATE"], &rows)?;
    Ok(())
}

fn state(device: &DeviceInfo, name_of: &impl Fn(&str) -> String) -> String {
    match (&device.revoked_by, device.revoked_ms) {
        (Some(by), Some(at)) => format!("revoked by {} at {}", name_of(by), output::timestamp(at)),
        _ if !device.active => "left out of a key rotation (pair it again)".into(),
        _ if device.this_device => "active (this device)".into(),
        _ => "active".into(),
    }
}

fn revoke(global: &GlobalArgs, vault: &mut Vault, id: &str, json: bool) -> Result<()> {
    // The new key goes to the devices known here: learn the latest registry first.
    let ferry_net::Revocation { revoked, pulled, pushed: outcomes, .. } =
        super::replicator(global, vault)?.revoke(vault, id)?;
    for outcome in pulled {
        if let Err(error) = outcome.result {
            eprintln!(
                "ferry: warning: could not pull from {} first ({}); devices it knows of and this device does not will have to pair again",
                outcome.url,
                error.with_causes()
            );
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        output::json(&mut out, &revoked)?;
    } else {
        writeln!(out, "Revoked \"{}\" ({}).", revoked.name, revoked.device_id)?;
        writeln!(
            out,
            "The vault key moved to epoch {}, wrapped to {} device(s) and the recovery key; \"{}\" cannot read anything written from now on, and nothing it writes is accepted.",
            revoked.new_epoch, revoked.members, revoked.name
        )?;
        writeln!(
            out,
            "Joining with the vault passphrase is off until you set a new one with `ferry key passphrase` (the revoked device may know the old one)."
        )?;
        super::sync::print_outcomes(&mut out, &outcomes)?;
    }
    super::sync::fail_on_errors(outcomes)
}

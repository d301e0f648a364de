//! `ferry serve --hub`: an always-on store for one vault that cannot read it.

use crate::cli::{GlobalArgs, ServeArgs};
use crate::exit::CliError;
use crate::unlock::{Purpose, unlock};
use anyhow::{Context, Result};
use ferry_engine::{ErrorClass, HubHome};
use ferry_format::SecretBytes;
use ferry_net::TlsIdentity;
use std::io::Write;
use std::time::Duration;

pub fn serve_hub(global: &GlobalArgs, args: &ServeArgs) -> Result<()> {
    let home = super::home(global)?;
    if home.has_vault() {
        return Err(CliError::new(
            ErrorClass::Setup,
            format!(
                "{} holds a device's vault; a hub keeps a home of its own: ferry serve --hub --home /srv/ferry-hub",
                home.root().display()
            ),
        )
        .into());
    }
    let hub_home = HubHome::new(home);
    let key = hub_key(global, &hub_home)?;
    let identity = TlsIdentity::new(&key)?;
    let hub = ferry_net::serve_hub(hub_home.root(), &identity, args.listen)
        .with_context(|| format!("cannot serve the hub on {}", args.listen))?;
    let address = match &args.public_address {
        Some(address) => address.clone(),
        None => format!("{}:{}", super::device_name(None)?, hub.addr().port()),
    };
    let location = hub.location(&address);
    let mut out = std::io::stdout().lock();
    match hub.vault() {
        None => {
            writeln!(out, "ferry store add '{}'", location.to_text_with_secret())?;
            out.flush()?;
            eprintln!("Hub listening on {}, serving no vault yet.", hub.addr());
            eprintln!(
                "Run the line above on one device of the vault: it claims this hub for the vault. The secret works once \
                 (a restart makes a new one). If devices reach this machine by another name, change {address} in the line."
            );
        }
        Some((vault, devices)) => {
            writeln!(out, "hub for vault {vault} ({devices} devices pinned) on {}", hub.addr())?;
            out.flush()?;
            eprintln!("Devices of the vault add it with: ferry store add '{}'", location.to_text());
        }
    }
    drop(out);
    // Refusals and claims, as they happen: what an operator looks for when a device cannot sync.
    let mut shown = ferry_engine::now_ms();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let since = shown;
        // Oldest first, as a log reads.
        for attempt in hub.attempts().latest(100).into_iter().rev().filter(|a| a.at_ms > since) {
            shown = shown.max(attempt.at_ms);
            let device = attempt.device_id.as_deref().map(|d| format!(" (device {})", &d[..8.min(d.len())]));
            eprintln!(
                "{} {}{}: {}",
                crate::output::timestamp(attempt.at_ms),
                attempt.address,
                device.unwrap_or_default(),
                attempt.detail
            );
        }
    }
}

/// The hub's key: from the keychain, else unwrapped with the passphrase; made on the first run.
fn hub_key(global: &GlobalArgs, hub_home: &HubHome) -> Result<SecretBytes> {
    if hub_home.exists() {
        if !global.no_keychain
            && let Some(key) = hub_home.open_from_keychain()
        {
            return Ok(key);
        }
        return Ok(hub_home.open(&unlock(global, Purpose::Enter)?)?);
    }
    crate::prompt::note(&format!(
        "A new hub in {}: choose a passphrase for its key (the hub holds no vault key; this protects its identity).",
        hub_home.root().display()
    ));
    let key = hub_home.create(&unlock(global, Purpose::Choose)?)?;
    if !global.no_keychain {
        match hub_home.remember_in_keychain(&key) {
            Ok(()) => eprintln!("Keychain: the hub's key is in the OS keychain; it starts without a passphrase."),
            Err(err) => eprintln!("Keychain: {err}; the hub asks for its passphrase when it starts."),
        }
    }
    Ok(key)
}

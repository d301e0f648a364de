//! `ferry pair invite` / `ferry pair accept`: enrolling a new device through a store.

use crate::cli::{GlobalArgs, PairAction};
use crate::unlock::{Purpose, unlock};
use crate::{output, prompt};
use anyhow::{Context, Result};
use ferry_engine::{CreateOptions, Direction, Error, Vault};
use std::io::Write;
use std::time::Duration;

/// How long one wait lasts before looking at the clock again (the invite's expiry ends it).
const WAIT: Duration = Duration::from_secs(3600);

pub fn pair(global: &GlobalArgs, action: &PairAction) -> Result<()> {
    match action {
        PairAction::Invite { store, expires } => invite(global, &mut super::open(global)?, store.as_deref(), *expires),
        PairAction::Accept { token, name, json } => accept(global, token, name.as_deref(), json.json),
    }
}

fn invite(global: &GlobalArgs, vault: &mut Vault, store: Option<&str>, minutes: u64) -> Result<()> {
    let replicator = super::replicator(global, vault)?;
    let valid_for = Duration::from_secs(minutes.max(1).saturating_mul(60));
    let mut invitation = replicator.invite(vault, store, valid_for).context("cannot prepare the store for pairing")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ferry pair accept '{}'", invitation.token())?;
    out.flush()?;
    eprintln!(
        "Run the line above on the new device (add --name NAME). This invite works once, until {}.",
        output::timestamp(invitation.expires_ms())
    );
    eprintln!("Waiting for the new device…");
    let request = loop {
        if let Some(request) = invitation.wait_for_request(WAIT)? {
            break request;
        }
    };
    eprintln!(
        "\"{}\" (device {}, key fingerprint {}) answered. Check the new device shows the same fingerprint.",
        request.name,
        &request.device_id[..8],
        request.fingerprint
    );
    let typed = prompt::line("Type the code the new device shows (anything else refuses it): ", false)?;
    invitation.approve(&request, &typed).context("cannot enroll the new device")?;
    writeln!(out, "Enrolled \"{}\" ({}). It finishes on its own and syncs.", request.name, request.device_id)?;
    Ok(())
}

fn accept(global: &GlobalArgs, token: &str, name: Option<&str>, json: bool) -> Result<()> {
    let home = super::home(global)?;
    if home.has_vault() {
        return Err(Error::AlreadyInitialized { home: home.root().to_owned() }.into());
    }
    let device_name = super::device_name(name)?;
    crate::prompt::note(
        "Choose a passphrase for this device (it unlocks this device; the vault keys come from the inviter).",
    );
    let options = CreateOptions { device_name, unlock: unlock(global, Purpose::Choose)? };
    let mut acceptance = ferry_net::accept(&home, token, options, global.credentials_command.clone())
        .context("cannot answer the invite")?;
    eprintln!("Waiting for the inviting device to read this request…");
    let shown = loop {
        if let Some(shown) = acceptance.wait_for_confirmation(WAIT)? {
            break shown;
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "Confirmation code: {}", shown.code)?;
    out.flush()?;
    eprintln!(
        "Type this code on the inviting device, and check it shows this device's key fingerprint {}. Waiting for it…",
        shown.fingerprint
    );
    let mut vault = loop {
        if let Some(vault) = acceptance.wait_for_approval(WAIT).context("cannot finish pairing")? {
            break vault;
        }
    };
    let keychain = super::offer_keychain(global, &vault);
    let outcomes = super::sync::sync_with_stores(global, &mut vault, Direction::Both)?;
    super::sync::report_joined(&vault, "Paired into", &acceptance.store(), &keychain, outcomes, json)
}

//! `ferry pair invite` / `ferry pair accept`: enrolling a new device through a store.

use crate::cli::{GlobalArgs, PairAction};
use crate::exit::CliError;
use crate::unlock::{Purpose, unlock};
use crate::{output, prompt};
use anyhow::{Context, Result};
use ferry_engine::{CreateOptions, Direction, Error, ErrorClass, Pairing, Vault};
use ferry_format::pairing::Invite;
use ferry_store::{Store, StoreUrl};
use std::io::Write;
use std::time::Duration;

/// How often the waiting side looks for the other's object.
const POLL: Duration = Duration::from_millis(300);

pub fn pair(global: &GlobalArgs, action: &PairAction) -> Result<()> {
    match action {
        PairAction::Invite { store, expires } => invite(global, &mut super::open(global)?, store.as_deref(), *expires),
        PairAction::Accept { token, name, json } => accept(global, token, name.as_deref(), json.json),
    }
}

/// Whether the current time is before `deadline_ms`.
fn before(deadline_ms: u64) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    now < u128::from(deadline_ms)
}

fn invite(global: &GlobalArgs, vault: &mut Vault, store: Option<&str>, minutes: u64) -> Result<()> {
    let configured = match store {
        Some(text) => super::find_store(vault, text)?,
        None => vault.stores()?.into_iter().next().ok_or_else(|| {
            CliError::new(
                ErrorClass::Setup,
                "pairing goes through a store and this device has none: add one with `ferry store add`",
            )
        })?,
    };
    let url = StoreUrl::parse(&configured.url)?;
    let opened = ferry_store::open(&url, &super::store_options(global, vault)?)?;
    let store: &dyn Store = opened.as_ref();
    // The new device reads the key history and registry from the store: publish ours first.
    vault
        .sync(ferry_engine::StoreHandle { id: configured.id, store }, Direction::Push)
        .with_context(|| format!("cannot prepare the store {} for pairing", configured.url))?;
    let invite = vault.invite(&configured.url, minutes.max(1).saturating_mul(60_000))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ferry pair accept '{}'", invite.to_token())?;
    out.flush()?;
    eprintln!(
        "Run the line above on the new device (add --name NAME). This invite works once, until {}.",
        output::timestamp(invite.expires_ms)
    );
    eprintln!("Waiting for the new device…");
    let request = loop {
        match vault.pair_request(&invite, store) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(Error::InviteExpired { .. }) => {
                ferry_engine::end_invite(&invite, store);
                return Err(Error::PairingTimedOut.into());
            }
            // A store that is briefly unreachable: keep waiting until the invite expires.
            Err(Error::Store(err)) if err.kind == ferry_store::StoreErrorKind::Unavailable => {}
            Err(err) => {
                ferry_engine::end_invite(&invite, store);
                return Err(err.into());
            }
        }
        std::thread::sleep(POLL);
    };
    eprintln!(
        "\"{}\" (device {}, key fingerprint {}) answered. Check the new device shows the same fingerprint.",
        request.name,
        &request.device_id[..8],
        request.fingerprint
    );
    let typed = prompt::line("Type the code the new device shows (anything else refuses it): ", false)?;
    let normalise = |code: &str| code.chars().filter(char::is_ascii_digit).collect::<String>();
    if normalise(&typed) != normalise(&request.code) {
        ferry_engine::end_invite(&invite, store);
        return Err(Error::PairingCodeMismatch.into());
    }
    vault.approve_pairing(&invite, store, &request).context("cannot enroll the new device")?;
    writeln!(out, "Enrolled \"{}\" ({}). It finishes on its own and syncs.", request.name, request.device_id)?;
    Ok(())
}

fn accept(global: &GlobalArgs, token: &str, name: Option<&str>, json: bool) -> Result<()> {
    let home = super::home(global)?;
    if home.has_vault() {
        return Err(Error::AlreadyInitialized { home: home.root().to_owned() }.into());
    }
    let invite = Invite::parse(token).map_err(Error::from)?;
    let device_name = super::device_name(name)?;
    let url = StoreUrl::parse(&invite.store)?;
    // Through a hub, the exchange goes with a throwaway key (the hub does not know this device
    // yet); the device finishes with its own key, which its inviter's record pins there.
    let mut throwaway = [0u8; 32];
    getrandom::fill(&mut throwaway).map_err(|e| anyhow::anyhow!("no randomness for a connection key: {e}"))?;
    let throwaway = ferry_format::SecretBytes::new(throwaway);
    let opened = ferry_store::open(&url, &super::store_options_joining(global, throwaway))?;
    let store: &dyn Store = opened.as_ref();
    crate::prompt::note(
        "Choose a passphrase for this device (it unlocks this device; the vault keys come from the inviter).",
    );
    let options = CreateOptions { device_name, unlock: unlock(global, Purpose::Choose)? };
    let pairing = Pairing::start(invite, &options.device_name, store).context("cannot answer the invite")?;
    eprintln!("Waiting for the inviting device to read this request…");
    let shown = loop {
        match pairing.confirmation(store) {
            Ok(Some(shown)) => break shown,
            Ok(None) => {}
            Err(Error::Store(err)) if err.kind == ferry_store::StoreErrorKind::Unavailable => {}
            Err(err) => {
                pairing.cancel(store);
                return Err(err.into());
            }
        }
        if !before(pairing.expires_ms()) {
            pairing.cancel(store);
            return Err(Error::PairingTimedOut.into());
        }
        std::thread::sleep(POLL);
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "Confirmation code: {}", shown.code)?;
    out.flush()?;
    eprintln!(
        "Type this code on the inviting device, and check it shows this device's key fingerprint {}. Waiting for it…",
        shown.fingerprint
    );
    let epoch = loop {
        match pairing.poll(store) {
            Ok(Some(epoch)) => break epoch,
            Ok(None) => {}
            Err(Error::Store(err)) if err.kind == ferry_store::StoreErrorKind::Unavailable => {}
            Err(err) => return Err(err.into()),
        }
        if !before(pairing.expires_ms()) {
            pairing.cancel(store);
            return Err(Error::PairingTimedOut.into());
        }
        std::thread::sleep(POLL);
    };
    let as_itself = match url {
        StoreUrl::Hub(_) => {
            ferry_store::open(&url, &super::store_options_joining(global, pairing.device_signing_secret()))?
        }
        _ => opened.clone(),
    };
    let mut vault = pairing.finish(&home, &options, epoch, as_itself.as_ref()).context("cannot finish pairing")?;
    let keychain = super::offer_keychain(global, &vault);
    let outcomes = super::sync::sync_with_stores(global, &mut vault, Direction::Both)?;
    super::sync::report_joined(&vault, "Paired into", &url.to_text(), &keychain, outcomes, json)
}

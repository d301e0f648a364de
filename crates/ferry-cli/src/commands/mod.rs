//! One module per group of commands; `run` dispatches.

mod backup;
mod blob;
mod conflicts;
mod devices;
mod doctor;
mod hub;
mod init;
mod inspect;
mod keys;
mod pair;
mod peers;
mod records;
mod retention;
mod service;
mod stores;
mod sync;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::exit::CliError;
use crate::unlock::{Purpose, unlock};
use anyhow::{Context, Result, anyhow};
use ferry_engine::{ErrorClass, Home, Vault};

pub fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Init(args) => init::init(global, &args),
        Command::Join(args) => sync::join(global, &args),
        Command::Pair(action) => pair::pair(global, &action),
        Command::Devices(args) => devices::devices(global, &mut open(global)?, &args),
        Command::Key(action) => keys::key(global, &action),
        Command::Export(args) => backup::export(&mut open(global)?, &args),
        Command::Import(args) => backup::import(global, &args),
        Command::Doctor(args) => doctor::doctor(global, &args),
        Command::Serve(args) if args.hub => hub::serve_hub(global, &args),
        Command::Serve(args) => peers::serve(global, open(global)?, &args),
        Command::Peers(args) => peers::peers(&mut open(global)?, &args),
        Command::Service(action) => service::service(global, &action),
        Command::Policy(action) => conflicts::policy(&mut open(global)?, &action),
        Command::Conflicts(args) => conflicts::conflicts(&mut open(global)?, &args),
        Command::Find(args) => records::find(&mut open(global)?, &args),
        Command::Forget(args) => records::forget(&mut open(global)?, &args),
        Command::Index(args) => records::index(&mut open(global)?, &args),
        Command::Sync(args) => sync::sync(global, &mut open(global)?, &args),
        Command::Prune(args) => retention::prune(global, &mut open(global)?, &args),
        Command::Store(action) => stores::store(global, &mut open(global)?, &action),
        Command::Blob(action) => blob::blob(global, &mut open(global)?, &action),
        Command::Put(args) => records::put(&mut open(global)?, &args),
        Command::Get(args) => records::get(&open(global)?, &args),
        Command::Ls(args) => records::ls(&open(global)?, &args),
        Command::Rm(args) => records::rm(&mut open(global)?, &args),
        Command::Log(args) => inspect::log(&open(global)?, &args),
        Command::Status(args) => inspect::status(&open(global)?, &args),
        Command::Repair(args) => inspect::repair(&mut open(global)?, &args),
    }
}

/// A configured store, by its id or location.
fn find_store(vault: &Vault, text: &str) -> Result<ferry_engine::ConfiguredStore> {
    vault.stores()?.into_iter().find(|s| s.id.to_string() == text || s.url == text).ok_or_else(|| {
        CliError::new(ErrorClass::NotFound, format!("no store `{text}` on this device: see `ferry store ls`")).into()
    })
}

/// How this device opens stores and reaches peers (hubs with its key; S3 with the
/// credentials command, if any).
fn replicator(global: &GlobalArgs, vault: &Vault) -> Result<ferry_net::Replicator> {
    Ok(ferry_net::Replicator::for_vault(vault, global.credentials_command.clone())?)
}

/// How to open a store before this device is in a vault (it cannot be a hub: the caller
/// handled `hub://` already).
fn replicator_without_hubs(global: &GlobalArgs) -> ferry_net::Replicator {
    ferry_net::Replicator::without_hubs(global.credentials_command.clone())
}

/// The device home: --home, FERRY_HOME, or the user's data directory.
fn home(global: &GlobalArgs) -> Result<Home> {
    if let Some(dir) = &global.home {
        return Ok(Home::new(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "ferry")
        .ok_or_else(|| anyhow!("cannot find a data directory for ferry (no HOME?): pass --home DIR"))?;
    Ok(Home::new(dirs.data_dir()))
}

/// Opens this device's vault: with the key in the OS keychain if it is there, else with the
/// passphrase (asked only once a vault is known to exist).
fn open(global: &GlobalArgs) -> Result<Vault> {
    let home = home(global)?;
    if !home.has_vault() {
        return Err(ferry_engine::Error::NoVault { home: home.root().to_owned() }.into());
    }
    if !global.no_keychain
        && let Some(vault) = Vault::open_from_keychain(&home)?
    {
        return Ok(vault);
    }
    let unlock = unlock(global, Purpose::Enter)?;
    Vault::open(&home, &unlock).context("cannot open the vault")
}

/// After init or join: keeps the device key in the OS keychain unless told not to, and says
/// what that means for the user.
fn offer_keychain(global: &GlobalArgs, vault: &Vault) -> String {
    if global.no_keychain {
        return "Keychain: not used (--no-keychain): commands ask for the passphrase.".to_owned();
    }
    match vault.remember_in_keychain() {
        Ok(()) => "Keychain: this device's key is in the OS keychain; commands here need no passphrase.".to_owned(),
        Err(err) => format!("Keychain: {err}."),
    }
}

/// The device's name: given, or the host name.
fn device_name(given: Option<&str>) -> Result<String> {
    if let Some(name) = given {
        return Ok(name.to_owned());
    }
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            CliError::new(ErrorClass::BadInput, "cannot tell this machine's host name: pass --name NAME").into()
        })
}

//! `ferry init`: a new vault, this device its first member.

use crate::cli::{GlobalArgs, InitArgs};
use crate::exit::CliError;
use crate::output;
use crate::unlock::{Purpose, unlock};
use anyhow::Result;
use ferry_engine::{CreateOptions, ErrorClass, Vault};
use std::io::Write;

pub fn init(global: &GlobalArgs, args: &InitArgs) -> Result<()> {
    let home = super::home(global)?;
    if home.has_vault() {
        return Err(ferry_engine::Error::AlreadyInitialized { home: home.root().to_owned() }.into());
    }
    let device_name = match &args.name {
        Some(name) => name.clone(),
        None => host_name().ok_or_else(|| {
            CliError::new(ErrorClass::BadInput, "cannot tell this machine's host name: pass --name NAME")
        })?,
    };
    let unlock = unlock(global, Purpose::Choose)?;
    let created = Vault::create(&home, CreateOptions { device_name, unlock })?;
    let status = created.vault.status()?;
    let words = created.recovery_phrase.to_words();

    let mut out = std::io::stdout().lock();
    if args.json.json {
        return output::json(
            &mut out,
            &serde_json::json!({
                "vault_id": status.vault_id,
                "device_id": status.device_id,
                "device_name": status.device_name,
                "vault_key_fingerprint": status.vault_key_fingerprint,
                "home": status.home,
                "recovery_phrase": words,
            }),
        );
    }
    writeln!(
        out,
        "Created vault {} with this device, \"{}\" ({}).",
        status.vault_id, status.device_name, status.device_id
    )?;
    writeln!(out, "Vault key fingerprint: {}", status.vault_key_fingerprint)?;
    writeln!(out, "Home: {}", status.home.display())?;
    writeln!(out)?;
    writeln!(out, "================ RECOVERY PHRASE: WRITE IT DOWN NOW ================")?;
    for (row, chunk) in words.split(' ').collect::<Vec<_>>().chunks(6).enumerate() {
        let cells: Vec<String> =
            chunk.iter().enumerate().map(|(i, w)| format!("{:>2}. {w:<9}", row * 6 + i + 1)).collect();
        writeln!(out, "  {}", cells.join(" ").trim_end())?;
    }
    writeln!(out, "====================================================================")?;
    writeln!(out, "This phrase is shown ONCE and stored nowhere. If you lose every device")?;
    writeln!(out, "AND this phrase, your data is gone for good: nobody can recover it.")?;
    Ok(())
}

fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

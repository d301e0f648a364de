//! `ferry export FILE` / `ferry import FILE`.

use crate::cli::{ExportArgs, GlobalArgs, ImportArgs};
use crate::unlock::{Purpose, kdf_cost, unlock};
use crate::{output, prompt};
use anyhow::{Context, Result};
use ferry_engine::{BackupSecret, CreateOptions, ExportTo, ImportReport, Passphrase, Unlock, Vault};
use std::io::Write;

pub fn export(vault: &mut Vault, args: &ExportArgs) -> Result<()> {
    let to = if args.passphrase {
        let passphrase = prompt::new_passphrase("Passphrase for the export file: ")?;
        ExportTo::Passphrase(Unlock { passphrase: Passphrase::from_zeroizing(passphrase), kdf_cost: kdf_cost() })
    } else {
        ExportTo::RecoveryKey
    };
    let report = vault.export(&args.file, &to).with_context(|| format!("cannot export to {}", args.file.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json.json {
        return output::json(&mut out, &report);
    }
    writeln!(
        out,
        "Exported {} ops in {} objects ({} bytes) to {}.",
        report.ops,
        report.objects,
        report.bytes,
        report.path.display()
    )?;
    writeln!(
        out,
        "It opens with {} only: `ferry import {}`.",
        if args.passphrase { "the passphrase you just chose" } else { "the vault's recovery phrase" },
        report.path.display()
    )?;
    Ok(())
}

pub fn import(global: &GlobalArgs, args: &ImportArgs) -> Result<()> {
    let home = super::home(global)?;
    let secret = |prompt_text: &str| -> Result<BackupSecret> {
        Ok(if args.passphrase {
            BackupSecret::Passphrase(Passphrase::from_zeroizing(prompt::line(prompt_text, true)?))
        } else {
            BackupSecret::RecoveryPhrase(prompt::recovery_phrase("Recovery phrase of the exported vault (24 words): ")?)
        })
    };
    let (vault, report, restored) = if home.has_vault() {
        let mut vault = super::open(global)?;
        let secret = secret("Passphrase of the export file: ")?;
        let report =
            vault.import(&args.file, &secret).with_context(|| format!("cannot import {}", args.file.display()))?;
        (vault, report, false)
    } else {
        let secret = secret("Passphrase of the export file: ")?;
        let device_name = super::device_name(args.name.as_deref())?;
        eprintln!("No vault in {}: restoring the exported vault there as a new device.", home.root().display());
        let options = CreateOptions { device_name, unlock: unlock(global, Purpose::Choose)? };
        let (vault, report) = Vault::restore(&home, &options, &args.file, &secret)
            .with_context(|| format!("cannot restore from {}", args.file.display()))?;
        (vault, report, true)
    };
    let keychain = if restored { Some(super::offer_keychain(global, &vault)) } else { None };
    print(&vault, &report, restored, keychain.as_deref(), args.json.json)
}

fn print(vault: &Vault, report: &ImportReport, restored: bool, keychain: Option<&str>, json: bool) -> Result<()> {
    let status = vault.status()?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = output::device_json(&status);
        value.insert("restored".into(), restored.into());
        value.insert("import".into(), serde_json::to_value(report)?);
        return output::json(&mut out, &value);
    }
    if restored {
        writeln!(
            out,
            "Restored vault {} as a new device, \"{}\" ({}).",
            status.vault_id, status.device_name, status.device_id
        )?;
    }
    writeln!(
        out,
        "Imported {} new ops, {} devices and {} blob objects from {} objects; the vault holds {} records.",
        report.imported_ops, report.new_devices, report.blob_objects, report.objects, status.records
    )?;
    for (path, reason) in &report.skipped {
        writeln!(out, "  skipped {path}: {reason}")?;
    }
    if let Some(keychain) = keychain {
        writeln!(out, "{keychain}")?;
        writeln!(out, "Add a store to sync with: `ferry store add STORE` (the vault's old store, or a new one).")?;
    }
    Ok(())
}

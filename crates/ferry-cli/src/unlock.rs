//! Where the passphrase comes from: an environment variable, a command, or a prompt.

use crate::cli::GlobalArgs;
use crate::exit::CliError;
use anyhow::{Context, Result};
use ferry_engine::{ErrorClass, KdfCost, Passphrase, Unlock};
use std::io::IsTerminal;
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// Whether a new passphrase is being chosen (asked twice) or an existing one entered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Choose,
    Enter,
}

/// Builds the unlock settings from the command line.
pub fn unlock(global: &GlobalArgs, purpose: Purpose) -> Result<Unlock> {
    let passphrase = passphrase(global, purpose)?;
    if passphrase.is_empty() {
        let why = match (&global.key_from_env, &global.passphrase_command) {
            (Some(var), _) => format!("--key-from-env {var}: the environment variable {var} is empty"),
            (None, Some(command)) => format!(
                "the passphrase command `{command}` printed nothing (its first line of output is the passphrase)"
            ),
            (None, None) => "the passphrase is empty: choose a passphrase with at least one character".to_owned(),
        };
        return Err(CliError::new(ErrorClass::Locked, why).into());
    }
    Ok(Unlock { passphrase: Passphrase::from_zeroizing(passphrase), kdf_cost: kdf_cost() })
}

/// The passphrase, in a buffer zeroed when dropped (as is every copy made on the way).
fn passphrase(global: &GlobalArgs, purpose: Purpose) -> Result<Zeroizing<String>> {
    if let Some(var) = &global.key_from_env {
        return std::env::var(var).map(Zeroizing::new).map_err(|_| {
            CliError::new(
                ErrorClass::Locked,
                format!("--key-from-env {var}: the environment variable {var} is not set (or not UTF-8)"),
            )
            .into()
        });
    }
    if let Some(command) = &global.passphrase_command {
        return run_passphrase_command(command);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(
            ErrorClass::Locked,
            "ferry needs the vault passphrase and there is no terminal to ask: pass --passphrase-command CMD or --key-from-env VAR",
        )
        .into());
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("Vault passphrase: ").context("cannot read the passphrase from the terminal")?,
    );
    if purpose == Purpose::Choose {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        if *again != *first {
            return Err(
                CliError::new(ErrorClass::BadInput, "the passphrases differ: nothing was created; try again").into()
            );
        }
    }
    Ok(first)
}

/// Runs the user's passphrase command through the shell; its first output line is the passphrase.
fn run_passphrase_command(command: &str) -> Result<Zeroizing<String>> {
    let mut output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run the passphrase command `{command}`"))?;
    if !output.status.success() {
        return Err(CliError::new(
            ErrorClass::Locked,
            format!("the passphrase command `{command}` failed ({}): nothing was changed", output.status),
        )
        .into());
    }
    let stdout = Zeroizing::new(std::mem::take(&mut output.stdout));
    let text = std::str::from_utf8(&stdout).map_err(|_| {
        CliError::new(ErrorClass::Locked, format!("the passphrase command `{command}` printed non-UTF-8 output"))
    })?;
    Ok(Zeroizing::new(text.lines().next().unwrap_or_default().to_owned()))
}

/// The scrypt cost for new wrappings. Debug builds honour `FERRY_INSECURE_KDF_WORK_FACTOR` so
/// the test suite can create many vaults quickly; release builds always use the standard cost.
pub fn kdf_cost() -> KdfCost {
    if cfg!(debug_assertions)
        && let Some(log_n) = std::env::var("FERRY_INSECURE_KDF_WORK_FACTOR").ok().and_then(|v| v.parse().ok())
    {
        return KdfCost::WorkFactor(log_n);
    }
    KdfCost::Standard
}

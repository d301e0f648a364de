//! `ferry doctor`: checks this device end to end and says what to do about each problem.

use crate::cli::{GlobalArgs, JsonArg};
use crate::exit::CliError;
use crate::output;
use anyhow::Result;
use ferry_engine::{ErrorClass, UnlockedWith, Vault};
use ferry_net::Level;
use std::io::Write;

#[derive(serde::Serialize)]
struct Check {
    check: String,
    /// ok, warn or fail.
    result: &'static str,
    detail: String,
}

fn check(list: &mut Vec<Check>, name: impl Into<String>, result: &'static str, detail: impl Into<String>) {
    list.push(Check { check: name.into(), result, detail: detail.into() });
}

pub fn doctor(global: &GlobalArgs, args: &JsonArg) -> Result<()> {
    let mut checks = Vec::new();
    let home = super::home(global)?;
    let opened = if home.has_vault() {
        check(&mut checks, "home", "ok", format!("vault in {}", home.root().display()));
        match super::open(global) {
            Ok(vault) => Some(vault),
            Err(err) => {
                check(&mut checks, "unlock", "fail", format!("{err:#}"));
                None
            }
        }
    } else {
        check(
            &mut checks,
            "home",
            "fail",
            format!("no vault in {}: `ferry init`, `ferry join` or `ferry pair accept`", home.root().display()),
        );
        None
    };
    if let Some(vault) = &opened {
        device_checks(global, vault, &mut checks)?;
    }
    let failed = checks.iter().filter(|c| c.result == "fail").count();
    let mut out = std::io::stdout().lock();
    if args.json {
        output::json(&mut out, &checks)?;
    } else {
        for c in &checks {
            writeln!(out, "{:<4}  {:<18} {}", c.result, c.check, c.detail)?;
        }
    }
    if failed > 0 {
        return Err(CliError::new(ErrorClass::Other, format!("{failed} check(s) failed: see above")).into());
    }
    Ok(())
}

fn device_checks(global: &GlobalArgs, vault: &Vault, checks: &mut Vec<Check>) -> Result<()> {
    let status = vault.status()?;
    let how = match status.unlocked_with {
        UnlockedWith::Keychain => "the OS keychain holds this device's key (no passphrase needed)".to_owned(),
        UnlockedWith::Passphrase if global.no_keychain => {
            "the passphrase (--no-keychain / FERRY_NO_KEYCHAIN)".to_owned()
        }
        UnlockedWith::Passphrase => format!("the passphrase; OS keychain {}", status.keychain),
        _ => "a way this version does not know".to_owned(),
    };
    check(checks, "unlock", "ok", how);
    for found in ferry_net::doctor(vault, &super::replicator(global, vault)?)? {
        let result = match found.result {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        let detail = match found.hint.as_ref().map(crate::hints::text) {
            Some(what) => format!("{}: {what}", found.detail),
            None => found.detail,
        };
        check(checks, found.check, result, detail);
    }
    Ok(())
}

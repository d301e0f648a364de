//! `ferry policy set | ls` and `ferry conflicts [show | resolve]`.

use crate::cli::{ConflictsAction, ConflictsArgs, PolicyAction};
use crate::exit::CliError;
use crate::output;
use anyhow::{Context, Result};
use ferry_engine::{ErrorClass, Head, Policy, Resolution, Vault};
use std::io::Write;

pub fn policy(vault: &mut Vault, action: &PolicyAction) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match action {
        PolicyAction::Set { collection, policy, order } => {
            let policy = match policy.as_str() {
                "fields" => Policy::Fields,
                "manual" => Policy::Manual,
                "priority" => {
                    Policy::Priority { order: order.iter().map(|d| device_id(vault, d)).collect::<Result<_>>()? }
                }
                _ => Policy::Lww,
            };
            vault.set_policy(collection, &policy)?;
            writeln!(
                out,
                "{collection}: {} (syncs to every device; concurrent writes are merged again under it)",
                describe(vault, &policy)?
            )?;
        }
        PolicyAction::Ls(json) => {
            let policies = vault.policies()?;
            if json.json {
                let list: Vec<_> =
                    policies.iter().map(|(c, p)| serde_json::json!({ "collection": c, "policy": p })).collect();
                return output::json(&mut out, &list);
            }
            if policies.is_empty() {
                writeln!(out, "every collection: lww (last writer wins); set one with `ferry policy set`")?;
            }
            let rows: Vec<Vec<String>> =
                policies.iter().map(|(c, p)| Ok(vec![c.clone(), describe(vault, p)?])).collect::<Result<_>>()?;
            output::table(&mut out, &["COLLECTION", "POLICY"], &rows)?;
        }
        PolicyAction::Retention { keep } => return super::retention::retention(vault, keep.as_deref()),
    }
    Ok(())
}

/// A device id from a name or an id (prefix).
fn device_id(vault: &Vault, text: &str) -> Result<String> {
    let devices = vault.devices()?;
    let by_name: Vec<_> = devices.iter().filter(|d| d.name == text).collect();
    let by_id: Vec<_> = devices.iter().filter(|d| d.device_id.starts_with(&text.to_lowercase())).collect();
    match (by_name.as_slice(), by_id.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.device_id.clone()),
        _ => {
            Err(CliError::new(ErrorClass::BadInput, format!("`{text}` names no single device: see `ferry devices`"))
                .into())
        }
    }
}

fn describe(vault: &Vault, policy: &Policy) -> Result<String> {
    Ok(match policy {
        Policy::Priority { order } => {
            let names: std::collections::HashMap<String, String> =
                vault.devices()?.into_iter().map(|d| (d.device_id, d.name)).collect();
            let order: Vec<String> =
                order.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())).collect();
            format!("priority ({})", order.join(" > "))
        }
        other => other.name().to_owned(),
    })
}

pub fn conflicts(vault: &mut Vault, args: &ConflictsArgs) -> Result<()> {
    match &args.action {
        None => list(vault, args.json.json),
        Some(ConflictsAction::Show { collection, key, json }) => {
            show(vault, collection, key, json.json || args.json.json)
        }
        Some(ConflictsAction::Resolve { collection, key, pick, value }) => {
            let resolution = match (pick, value) {
                (Some(op), _) => Resolution::Pick(
                    op.parse().map_err(|e| CliError::new(ErrorClass::BadInput, format!("--pick: {e}")))?,
                ),
                (None, Some(json)) => Resolution::Value(
                    serde_json::from_str(json)
                        .map_err(|e| CliError::new(ErrorClass::BadInput, format!("--value is not JSON: {e}")))?,
                ),
                (None, None) => {
                    return Err(CliError::new(ErrorClass::BadInput, "give --pick OP or --value JSON").into());
                }
            };
            let op = vault.resolve(collection, key, &resolution).context("cannot resolve")?;
            writeln!(std::io::stdout().lock(), "resolved {collection}/{key} (op {op}); it syncs like any write")?;
            Ok(())
        }
    }
}

fn list(vault: &Vault, json: bool) -> Result<()> {
    let report = vault.conflicts()?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, &report);
    }
    if report.unresolved.is_empty() {
        writeln!(out, "no records wait for a decision")?;
    } else {
        writeln!(out, "waiting for a decision (`ferry conflicts show COLLECTION KEY`):")?;
        let rows: Vec<Vec<String>> =
            report.unresolved.iter().map(|c| vec![c.collection.clone(), c.key.clone(), c.heads.to_string()]).collect();
        output::table(&mut out, &["COLLECTION", "KEY", "HEADS"], &rows)?;
    }
    if !report.collections.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = report
            .collections
            .iter()
            .map(|c| {
                vec![
                    c.collection.clone(),
                    c.policy.clone(),
                    c.concurrent_writes.to_string(),
                    c.records_with_heads.to_string(),
                ]
            })
            .collect();
        output::table(&mut out, &["COLLECTION", "POLICY", "CONCURRENT WRITES", "RECORDS WITH HEADS NOW"], &rows)?;
    }
    Ok(())
}

fn show(vault: &Vault, collection: &str, key: &str, json: bool) -> Result<()> {
    let heads = vault.heads(collection, key)?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(&mut out, &heads);
    }
    let shown = vault.get(collection, key)?;
    writeln!(out, "{collection}/{key}: {} head(s)", heads.len())?;
    for head in &heads {
        let device = head.device_name.clone().unwrap_or_else(|| head.device_id[..8].to_owned());
        let value = head.value.as_ref().map_or_else(|| "(deleted)".to_owned(), |v| v.as_str().to_owned());
        let current = shown.as_ref().is_some_and(|r| r.version.to_string() == head.op);
        writeln!(
            out,
            "  {}  {device}  {}{}",
            head.op,
            output::timestamp(head.at_ms),
            if current { "  (shown now)" } else { "" }
        )?;
        writeln!(out, "      {}", output::shorten(&value, 200))?;
    }
    for line in differences(&heads) {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "resolve: ferry conflicts resolve {collection} {key} --pick OP  (or --value JSON)")?;
    Ok(())
}

/// Top-level fields whose values differ between heads, one line each.
fn differences(heads: &[Head]) -> Vec<String> {
    let parsed: Vec<Option<serde_json::Value>> =
        heads.iter().map(|h| h.value.as_ref().and_then(|v| v.to_value().ok())).collect();
    let objects: Vec<Option<&serde_json::Map<String, serde_json::Value>>> =
        parsed.iter().map(|v| v.as_ref().and_then(serde_json::Value::as_object)).collect();
    if heads.len() < 2 || objects.iter().any(Option::is_none) {
        return Vec::new();
    }
    let names: std::collections::BTreeSet<&String> = objects.iter().flatten().flat_map(|o| o.keys()).collect();
    let mut lines = vec!["differences:".to_owned()];
    for name in names {
        let values: Vec<String> = objects
            .iter()
            .map(|o| {
                o.and_then(|o| o.get(name))
                    .map_or_else(|| "(absent)".to_owned(), |v| output::shorten(&v.to_string(), 60))
            })
            .collect();
        if values.windows(2).any(|pair| pair[0] != pair[1]) {
            lines.push(format!("  {name}: {}", values.join("  |  ")));
        }
    }
    if lines.len() == 1 { Vec::new() } else { lines }
}

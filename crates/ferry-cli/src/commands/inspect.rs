//! `ferry log | status | repair`: looking at the vault itself.

use crate::cli::{JsonArg, LogArgs};
use crate::output;
use anyhow::Result;
use ferry_engine::{HistoryFilter, Vault};
use ferry_format::OpKind;
use std::collections::HashMap;
use std::io::Write;

pub fn log(vault: &Vault, args: &LogArgs) -> Result<()> {
    let record = args.collection.clone().zip(args.key.clone());
    let ops = vault.history(&HistoryFilter { record, limit: args.limit })?;
    let names: HashMap<String, String> = vault.devices()?.into_iter().map(|d| (d.device_id, d.name)).collect();
    let device_name = |id: &ferry_format::DeviceId| names.get(&id.to_string()).cloned().unwrap_or_else(|| id.short());
    let mut out = std::io::stdout().lock();
    if args.json.json {
        let list: Vec<OpJson<'_>> = ops
            .iter()
            .map(|op| OpJson {
                op: op.id.to_string(),
                hlc: op.hlc.to_u64(),
                time: output::timestamp(op.hlc.wall_ms()),
                device: op.id.device.to_string(),
                device_name: device_name(&op.id.device),
                kind: op.kind.name(),
                collection: op.collection.as_str(),
                key: op.key.as_str(),
                value: match &op.kind {
                    OpKind::Put(v) => OpValue::Put(v),
                    OpKind::Delete => OpValue::None,
                    OpKind::Forget(f) => OpValue::Forget(f),
                },
                parents: op.parents.iter().map(ToString::to_string).collect(),
            })
            .collect();
        return output::json(&mut out, &list);
    }
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            vec![
                format!("{}.{}", op.id.device.short(), op.id.counter),
                output::timestamp(op.hlc.wall_ms()),
                device_name(&op.id.device),
                op.kind.name().to_owned(),
                format!("{}/{}", op.collection, op.key),
            ]
        })
        .collect();
    Ok(output::table(&mut out, &["OP", "TIME", "DEVICE", "KIND", "RECORD"], &rows)?)
}

pub fn status(vault: &Vault, args: &JsonArg) -> Result<()> {
    let status = vault.status()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return output::json(&mut out, &status);
    }
    let lines = [
        ("device", format!("{} ({})", status.device_name, status.device_id)),
        ("device fingerprint", status.device_fingerprint),
        ("vault", status.vault_id),
        ("vault key fingerprint", format!("{} (epoch {})", status.vault_key_fingerprint, status.key_epoch)),
        ("unlocked with", serde_json::to_value(status.unlocked_with)?.as_str().unwrap_or_default().to_owned()),
        ("OS keychain", status.keychain),
        ("home", status.home.display().to_string()),
        ("created", output::timestamp(status.created_ms)),
        ("collections", status.collections.to_string()),
        ("records", format!("{} live, {} deleted", status.records, status.deleted_records)),
        ("ops", status.ops.to_string()),
        ("unpublished ops", status.unpublished_ops.to_string()),
    ];
    for (label, value) in lines {
        writeln!(out, "{:<22} {value}", format!("{label}:"))?;
    }
    Ok(())
}

pub fn repair(vault: &mut Vault, args: &JsonArg) -> Result<()> {
    let report = vault.repair()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return output::json(&mut out, &report);
    }
    writeln!(
        out,
        "rebuilt {} records from {} ops; {} rows of the derived table were corrected",
        report.records, report.ops, report.corrected
    )?;
    Ok(())
}

/// An op in `log --json`; a put's value is written as stored, byte for byte.
#[derive(serde::Serialize)]
struct OpJson<'a> {
    op: String,
    hlc: u64,
    time: String,
    device: String,
    device_name: String,
    kind: &'static str,
    collection: &'a str,
    key: &'a str,
    value: OpValue<'a>,
    parents: Vec<String>,
}

/// What an op carries: a value, a forget's selector, or nothing (`null`).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum OpValue<'a> {
    Put(&'a ferry_format::JsonValue),
    Forget(&'a ferry_format::Forget),
    None,
}

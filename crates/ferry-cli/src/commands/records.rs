//! `ferry put | get | ls | rm`: records.

use crate::cli::{LsArgs, PutArgs, RecordArgs};
use crate::exit::CliError;
use crate::output;
use anyhow::{Context, Result};
use ferry_engine::{ErrorClass, HistoryFilter, ListOptions, Record, Vault};
use std::io::{Read, Write};

pub fn put(vault: &mut Vault, args: &PutArgs) -> Result<()> {
    let value = if args.value == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the value from stdin")?;
        text
    } else {
        args.value.clone()
    };
    let op = vault.put_json(&args.collection, &args.key, &value)?;
    report_op("put", &args.collection, &args.key, op, args.json.json)
}

pub fn get(vault: &Vault, args: &RecordArgs) -> Result<()> {
    let record = vault.get(&args.collection, &args.key)?.ok_or_else(|| missing(vault, &args.collection, &args.key))?;
    let mut out = std::io::stdout().lock();
    if args.json.json {
        return output::json(&mut out, &record_json(&record)?);
    }
    writeln!(out, "{}", record.value.as_str())?;
    if record.conflict {
        eprintln!(
            "ferry: note: {}/{} has {} concurrent versions; this is the latest. See `ferry conflicts show {} {}`",
            record.collection, record.key, record.heads, record.collection, record.key
        );
    }
    Ok(())
}

pub fn rm(vault: &mut Vault, args: &RecordArgs) -> Result<()> {
    if vault.get(&args.collection, &args.key)?.is_none() {
        return Err(missing(vault, &args.collection, &args.key));
    }
    let op = vault.delete(&args.collection, &args.key)?;
    report_op("deleted", &args.collection, &args.key, op, args.json.json)
}

/// Says which op a write made: `put notes/n1 (op 3fa2c1d0.17)`, or JSON.
fn report_op(verb: &str, collection: &str, key: &str, op: ferry_format::OpId, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(
            &mut out,
            &serde_json::json!({ "collection": collection, "key": key, "op": op.to_string() }),
        );
    }
    writeln!(out, "{verb} {collection}/{key} (op {}.{})", op.device.short(), op.counter)?;
    Ok(())
}

pub fn ls(vault: &Vault, args: &LsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let Some(collection) = &args.collection else {
        let collections = vault.collections()?;
        if args.json.json {
            return output::json(&mut out, &collections);
        }
        let rows: Vec<Vec<String>> =
            collections.iter().map(|c| vec![c.name.clone(), c.records.to_string(), c.deleted.to_string()]).collect();
        return Ok(output::table(&mut out, &["COLLECTION", "RECORDS", "DELETED"], &rows)?);
    };
    if !vault.has_collection(collection)? {
        return Err(unknown_collection(vault, collection));
    }
    let records = vault.list(collection, &ListOptions { limit: args.limit })?;
    if args.json.json {
        let list: Vec<RecordJson<'_>> = records.iter().map(record_json).collect::<Result<_>>()?;
        return output::json(&mut out, &list);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| vec![r.key.clone(), output::timestamp(r.hlc.wall_ms()), output::shorten(r.value.as_str(), 60)])
        .collect();
    Ok(output::table(&mut out, &["KEY", "UPDATED", "VALUE"], &rows)?)
}

/// A record in `--json` output; its value is written as stored, byte for byte.
#[derive(serde::Serialize)]
struct RecordJson<'a> {
    collection: &'a str,
    key: &'a str,
    value: &'a ferry_format::JsonValue,
    version: String,
    updated: String,
    hlc: u64,
    heads: usize,
    conflict: bool,
}

fn record_json(record: &Record) -> Result<RecordJson<'_>> {
    Ok(RecordJson {
        collection: &record.collection,
        key: &record.key,
        value: &record.value,
        version: record.version.to_string(),
        updated: output::timestamp(record.hlc.wall_ms()),
        hlc: record.hlc.to_u64(),
        heads: record.heads,
        conflict: record.conflict,
    })
}

/// The error for a record that `get` or `rm` cannot find, saying why.
fn missing(vault: &Vault, collection: &str, key: &str) -> anyhow::Error {
    match vault.has_collection(collection) {
        Ok(false) => unknown_collection(vault, collection),
        Ok(true) => {
            let filter = HistoryFilter { record: Some((collection.to_owned(), key.to_owned())), limit: Some(1) };
            let message = match vault.history(&filter).ok().and_then(|ops| ops.into_iter().next()) {
                Some(last) => format!(
                    "record `{key}` in collection `{collection}` was deleted at {} (op {})",
                    output::timestamp(last.hlc.wall_ms()),
                    last.id
                ),
                None => format!("no record `{key}` in collection `{collection}`"),
            };
            CliError::new(ErrorClass::NotFound, message).into()
        }
        Err(err) => err.into(),
    }
}

fn unknown_collection(vault: &Vault, collection: &str) -> anyhow::Error {
    let known: Vec<String> =
        vault.collections().map(|all| all.into_iter().map(|c| c.name).collect()).unwrap_or_default();
    let hint = if known.is_empty() {
        "the vault has no collections yet".to_owned()
    } else {
        format!("collections: {}", known.join(", "))
    };
    CliError::new(ErrorClass::NotFound, format!("no collection `{collection}` in this vault ({hint})")).into()
}

pub fn find(vault: &mut Vault, args: &crate::cli::FindArgs) -> Result<()> {
    let found = vault.find(&args.query, args.collection.as_deref(), args.limit)?;
    let mut out = std::io::stdout().lock();
    if args.json.json {
        return output::json(&mut out, &found);
    }
    if found.is_empty() {
        writeln!(out, "nothing found for {:?}", args.query)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> =
        found.iter().map(|f| vec![f.collection.clone(), f.key.clone(), output::shorten(&f.snippet, 100)]).collect();
    Ok(output::table(&mut out, &["COLLECTION", "KEY", "MATCH"], &rows)?)
}

pub fn index(vault: &mut Vault, args: &crate::cli::IndexArgs) -> Result<()> {
    let fields = (!args.all_fields).then_some(args.fields.as_slice());
    vault.set_search_fields(&args.collection, fields)?;
    let what = fields.map_or_else(|| "every string value".to_owned(), |f| f.join(", "));
    writeln!(std::io::stdout().lock(), "{}: searching {what} (syncs to every device)", args.collection)?;
    Ok(())
}

pub fn forget(vault: &mut Vault, args: &crate::cli::ForgetArgs) -> Result<()> {
    use ferry_engine::ForgetTarget;
    let target = match (&args.key, &args.prefix) {
        (Some(key), _) => ForgetTarget::Record(key.clone()),
        (None, Some(prefix)) => ForgetTarget::Prefix(prefix.clone()),
        (None, None) => ForgetTarget::All,
    };
    let bad_time = |e: String| crate::exit::CliError::new(ferry_engine::ErrorClass::BadInput, e);
    let window = match (&args.from, &args.to) {
        (Some(from), Some(to)) => {
            let from = ferry_engine::parse_time(from).map_err(bad_time)?;
            let to = ferry_engine::parse_time(to).map_err(bad_time)?;
            let hlc = |ms: u64, counter: u16| {
                ferry_format::Hlc::new(ms, counter).ok_or_else(|| bad_time("time out of range".into()))
            };
            Some((hlc(from, 0)?, hlc(to, u16::MAX)?))
        }
        _ => None,
    };
    let what = match &target {
        ForgetTarget::Record(key) => format!("{}/{key}", args.collection),
        ForgetTarget::Prefix(prefix) => format!("every record of {} whose key starts with {prefix:?}", args.collection),
        ForgetTarget::All => format!("every record of {}", args.collection),
    };
    let when = window.map_or_else(String::new, |(from, to)| {
        format!(", changes from {} to {}", output::timestamp(from.wall_ms()), output::timestamp(to.wall_ms()))
    });
    if !args.yes {
        eprintln!("This erases {what}{when} on every device of the vault, for good (not only here).");
        let typed = crate::prompt::line("Type forget to go on: ", false)?;
        if *typed != "forget" {
            return Err(crate::exit::CliError::new(
                ferry_engine::ErrorClass::BadInput,
                "not confirmed: nothing was forgotten",
            )
            .into());
        }
    }
    let report = vault.forget(&args.collection, &target, window)?;
    let mut out = std::io::stdout().lock();
    if args.json.json {
        return output::json(&mut out, &report);
    }
    writeln!(
        out,
        "forgot {what}{when}: {} ops erased here from {} records; every device erases them when it syncs (op {})",
        report.ops, report.records, report.op
    )?;
    Ok(())
}

//! `ferry prune` and `ferry policy retention`: printing what the engine's retention did.

use crate::cli::{GlobalArgs, PruneArgs};
use crate::exit::CliError;
use crate::output;
use anyhow::{Result, bail};
use ferry_engine::{ErrorClass, PruneOptions, Retention, Vault, parse_duration};
use std::io::Write;

/// Reads `forever` or a duration.
fn parse_retention(text: &str) -> Result<Retention> {
    if text.trim().eq_ignore_ascii_case("forever") {
        return Ok(Retention::Forever);
    }
    let ms = parse_duration(text).map_err(|e| bad_input(format!("{e}, or `forever`")))?;
    Ok(Retention::Keep { ms })
}

fn bad_input(message: String) -> anyhow::Error {
    CliError::new(ErrorClass::BadInput, message).into()
}

/// `ferry policy retention [KEEP]`.
pub fn retention(vault: &mut Vault, keep: Option<&str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let Some(keep) = keep else {
        let retention = vault.retention()?;
        writeln!(out, "retention: {retention} ({})", meaning(retention))?;
        return Ok(());
    };
    let retention = parse_retention(keep)?;
    vault.set_retention(retention)?;
    writeln!(out, "retention: {retention} (syncs to every device; {})", meaning(retention))?;
    Ok(())
}

fn meaning(retention: Retention) -> String {
    match retention {
        Retention::Forever => "every version is kept; `ferry prune` still drops stores' duplicate copies".into(),
        Retention::Keep { .. } => {
            format!("`ferry prune` drops versions replaced more than {retention} ago; current values always stay")
        }
    }
}

/// `ferry prune`.
pub fn prune(global: &GlobalArgs, vault: &mut Vault, args: &PruneArgs) -> Result<()> {
    let keep = args.keep.as_deref().map(parse_retention).transpose()?;
    let grace_ms = parse_duration(&args.grace).map_err(|e| bad_input(format!("--grace: {e}")))?;
    let options = PruneOptions { keep, grace_ms, dry_run: args.dry_run, scheduled: false };
    let report = super::replicator(global, vault)?.prune(vault, &options)?;
    let mut out = std::io::stdout().lock();
    if args.json.json {
        return output::json(&mut out, &report);
    }
    let (would, verb) = if args.dry_run { ("would ", "would remove") } else { ("", "removed") };
    if let Some(keep) = report.keep {
        writeln!(out, "retention: {keep}")?;
    }
    let local = &report.local;
    write!(out, "this device: {would}drop {} superseded ops and {} segment copies", local.ops, local.segment_copies)?;
    if args.dry_run {
        writeln!(out)?;
    } else {
        let (before, after) = local.database_bytes;
        writeln!(out, "; database {} → {}", output::bytes(before), output::bytes(after))?;
    }
    if let Some(snapshot) = &report.snapshot {
        writeln!(
            out,
            "snapshot: {} ({} ops, {} parts, {})",
            snapshot.path,
            snapshot.ops,
            snapshot.parts,
            output::bytes(snapshot.bytes)
        )?;
    }
    let mut failed = 0;
    for (location, result) in &report.stores {
        let pruned = match result {
            Ok(pruned) => pruned,
            Err(err) => {
                failed += 1;
                writeln!(out, "{location}: not pruned: {err}")?;
                continue;
            }
        };
        let left = pruned.objects.saturating_sub(if args.dry_run { 0 } else { pruned.deleted_objects });
        let left_bytes = pruned.bytes.saturating_sub(if args.dry_run { 0 } else { pruned.deleted_bytes });
        writeln!(
            out,
            "{location}: {verb} {} objects ({}); it holds {left} objects ({})",
            pruned.deleted_objects,
            output::bytes(pruned.deleted_bytes),
            output::bytes(left_bytes)
        )?;
        if let Some(until) = pruned.waiting_until_ms {
            writeln!(
                out,
                "  {} more objects ({}) go from {}, once the newest snapshot is past its grace period: prune again then",
                pruned.waiting_objects,
                output::bytes(pruned.waiting_bytes),
                output::timestamp(until)
            )?;
        }
        if let Some(reason) = &pruned.refused {
            writeln!(
                out,
                "  {} objects were not deleted: {reason} (each device prunes its own there)",
                pruned.refused_objects
            )?;
        }
    }
    if failed > 0 {
        bail!("{failed} store(s) could not be pruned; the others were (`ferry sync status` shows why)");
    }
    Ok(())
}

//! `ferry blob put | get`: large payloads beside the records.

use crate::cli::{BlobAction, GlobalArgs};
use crate::output;
use anyhow::{Context, Result};
use ferry_engine::{BlobId, StoreHandle, Vault};
use std::io::Write;
use std::path::Path;

pub fn blob(global: &GlobalArgs, vault: &mut Vault, action: &BlobAction) -> Result<()> {
    match action {
        BlobAction::Put { file, json } => {
            let info = if file == Path::new("-") {
                vault.put_blob(std::io::stdin().lock())?
            } else {
                let reader = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
                vault.put_blob(std::io::BufReader::new(reader))?
            };
            let mut out = std::io::stdout().lock();
            if json.json {
                return output::json(&mut out, &info);
            }
            writeln!(out, "{}", info.id)?;
            eprintln!(
                "stored {} bytes in {} chunks ({} new); `ferry sync` publishes it",
                info.size, info.chunks, info.new_chunks
            );
            Ok(())
        }
        BlobAction::Get { id, out } => {
            let id: BlobId = id.parse()?;
            let replicator = super::replicator(global, vault)?;
            let opened: Vec<(ferry_engine::StoreId, std::sync::Arc<dyn ferry_store::Store>)> =
                vault.stores()?.into_iter().map(|s| Ok((s.id, replicator.open(&s.url)?))).collect::<Result<_>>()?;
            let handles: Vec<StoreHandle<'_>> =
                opened.iter().map(|(id, store)| StoreHandle { id: *id, store: store.as_ref() }).collect();
            if out == Path::new("-") {
                vault.get_blob(&id, &handles, std::io::stdout().lock())?;
                return Ok(());
            }
            // Write beside the destination, and rename only once every chunk verified.
            let tmp = out.with_extension("ferry-partial");
            let file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            let result = vault.get_blob(&id, &handles, std::io::BufWriter::new(file));
            if let Err(err) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(err.into());
            }
            std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
            Ok(())
        }
    }
}

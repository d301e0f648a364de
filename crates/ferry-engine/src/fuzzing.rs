//! Entry points for the fuzz targets in `fuzz/` (hidden from the API docs): each feeds bytes
//! from outside to the decoder the engine runs on them, and must return, never panic.

/// Reads `bytes` as a decrypted export stream (`ferry import` after age decryption) into a
/// memory store; whether it was a complete export.
pub fn export_stream(bytes: &[u8]) -> bool {
    let store = ferry_store::MemoryStore::default();
    crate::backup::read_export(bytes, &store, std::path::Path::new("fuzz.ferry-export")).is_ok()
}

#[cfg(test)]
mod tests {
    use ferry_format::objects::{ExportHeader, ExportItem, encode};

    /// A complete export stream of one object.
    fn seed() -> Vec<u8> {
        let header = ExportHeader {
            format: "ferry-export".into(),
            version: ExportHeader::VERSION,
            vault_id: "01010101010101010101010101010101".into(),
            epoch: 0,
            epoch_tag: None,
            key: [4; 32],
            recovery_recipient: "age1x".into(),
            exported_ms: 1_800_000_000_000,
            device: "02020202020202020202020202020202".into(),
        };
        let mut bytes = encode(&header);
        bytes.extend(encode(&ExportItem::Object { path: "ferry-vault.json".into(), bytes: b"{}".to_vec() }));
        bytes.extend(encode(&ExportItem::End { objects: 1 }));
        bytes
    }

    /// `FERRY_WRITE_SEEDS=1` writes the seed; without it, checks it is there and reads whole.
    #[test]
    fn the_export_seed_is_current_and_reads_whole() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/export_stream/seed-0");
        if std::env::var_os("FERRY_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, seed()).unwrap();
        }
        assert_eq!(std::fs::read(&file).ok(), Some(seed()), "{} is stale: FERRY_WRITE_SEEDS=1", file.display());
        assert!(super::export_stream(&seed()));
        assert!(!super::export_stream(&seed()[..seed().len() - 3]), "a cut stream is refused");
    }

    /// The seed corpus of the fuzz target runs as a test, so a decoder change that panics on
    /// one of them fails here too.
    #[test]
    fn the_export_corpus_decodes_without_panicking() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/export_stream");
        let mut seen = 0;
        for entry in std::fs::read_dir(&corpus).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            super::export_stream(&bytes);
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", corpus.display());
    }
}

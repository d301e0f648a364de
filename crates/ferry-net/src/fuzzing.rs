//! Entry points for the fuzz targets in `fuzz/` (hidden from the API docs): what the hub reads
//! from a client and what a device reads from a peer or a daemon file. Each must return, never
//! panic, whatever the bytes.

/// A hub reads `bytes` as the body of a claim.
pub fn hub_claim(bytes: &[u8]) -> bool {
    crate::hub_server::read_claim(bytes).is_some()
}

/// A device reads `bytes` as a peer's answers (a listing, a wait) and as a daemon file.
pub fn peer_answers(bytes: &[u8]) {
    let _ = serde_json::from_slice::<Vec<String>>(bytes);
    let _ = serde_json::from_slice::<crate::peer_store::Waited>(bytes);
    let _ = serde_json::from_slice::<crate::api::DaemonFile>(bytes);
    if let Some((&asked, body)) = bytes.split_first() {
        let _ = ferry_format::batch::decode(body, usize::from(asked));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_well_formed_claim_reads_and_a_damaged_one_does_not() {
        let claim = format!(
            r#"{{"secret":"{}","vault":"01010101010101010101010101010101","devices":[["02020202020202020202020202020202","{}"]]}}"#,
            "ab".repeat(32),
            "cd".repeat(32)
        );
        assert!(super::hub_claim(claim.as_bytes()));
        assert!(!super::hub_claim(&claim.as_bytes()[..claim.len() - 2]));
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/net_bodies/seed-0");
        if std::env::var_os("FERRY_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(seed.parent().unwrap()).unwrap();
            std::fs::write(&seed, &claim).unwrap();
        }
        assert_eq!(std::fs::read(&seed).ok(), Some(claim.into_bytes()), "stale seed: FERRY_WRITE_SEEDS=1");
    }
}

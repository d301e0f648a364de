//! Entry points for the fuzz targets in `fuzz/` (hidden from the API docs). Each feeds bytes
//! from outside (a store, a peer, a person) to the decoder ferry runs on them; each must
//! return, never panic, whatever the bytes. The tests below write the starting corpus (real
//! objects sealed with the fixed keys here, so the fuzzer starts past the signature and AEAD
//! checks) and run every seed of it, so a decoder that panics on one fails `cargo test` too.

use crate::objects::{
    BlobManifest, DevicePayload, HeadPayload, KeyEpochPayload, RevocationPayload, SegmentPayload, SnapshotPartPayload,
    SnapshotPayload, paths,
};
use crate::pairing::Invite;
use crate::seal::{ObjectId, ObjectKind, SealKeys};
use crate::typed::{Keyring, Named, Payload, Sealed};
use crate::{DeviceId, JsonValue, MasterKey, OpId, RecoveryPhrase, SecretBytes, VaultId};
use ed25519_dalek::{SigningKey, VerifyingKey};

const VAULT: VaultId = VaultId::from_bytes([1; 16]);
const WRITER: DeviceId = DeviceId::from_bytes([2; 16]);

struct FixedKeys {
    writer: VerifyingKey,
    master: MasterKey,
}

impl Keyring for FixedKeys {
    fn writer_key(&self, device: DeviceId) -> Option<VerifyingKey> {
        (device == WRITER).then_some(self.writer)
    }
    fn master_key(&self, epoch: u32) -> Option<&MasterKey> {
        (epoch == 0).then_some(&self.master)
    }
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn keys() -> FixedKeys {
    FixedKeys { writer: signing_key().verifying_key(), master: MasterKey::new([4; 32]) }
}

fn invite() -> Invite {
    Invite {
        store: "folder:/fuzz".into(),
        vault_id: VAULT,
        inviter: WRITER,
        inviter_key: signing_key().verifying_key().to_bytes(),
        invite_id: [5; 16],
        secret: SecretBytes::new([6; 32]),
        expires_ms: 1_800_000_000_000,
    }
}

/// Opens `bytes` as every kind of sealed object a store holds, at a place that fits each.
pub fn sealed_object(bytes: &[u8]) {
    let keys = keys();
    let anywhere = Named { vault: VAULT, writer: Some(WRITER), id: None };
    if let Ok(segment) = Sealed::<SegmentPayload>::new(bytes).open(anywhere, &keys) {
        segment_ops(segment.payload);
    }
    let _ = Sealed::<HeadPayload>::new(bytes).open(Named { id: Some(ObjectId::HEAD), ..anywhere }, &keys);
    let _ = Sealed::<DevicePayload>::new(bytes).open(anywhere, &keys);
    let _ = Sealed::<KeyEpochPayload>::new(bytes).open(anywhere, &keys);
    let _ = Sealed::<RevocationPayload>::new(bytes).open(anywhere, &keys);
    let _ = Sealed::<BlobManifest>::new(bytes).open(anywhere, &keys);
    let _ = Sealed::<SnapshotPayload>::new(bytes).open(anywhere, &keys);
    if let Ok(part) = Sealed::<SnapshotPartPayload>::new(bytes).open(anywhere, &keys) {
        for op in part.payload.ops {
            let _ = op.into_op();
        }
    }
    let expected =
        crate::seal::Expected { kind: ObjectKind::BlobChunk, vault_id: VAULT, device_id: None, object_id: None };
    let _ = crate::seal::open(bytes, &expected, |_| Some(keys.writer), |_| Some(&keys.master));
}

/// Seals `payload` (any bytes) with the fixed keys as every payload kind and opens it again:
/// the decoders of every payload, reached through the real open path.
pub fn payload(payload: &[u8]) {
    for kind in [
        SegmentPayload::KIND,
        HeadPayload::KIND,
        DevicePayload::KIND,
        KeyEpochPayload::KIND,
        BlobManifest::KIND,
        SnapshotPayload::KIND,
        SnapshotPartPayload::KIND,
    ] {
        let signing = signing_key();
        let master = MasterKey::new([4; 32]);
        let seal_keys = SealKeys { epoch: 0, master_key: &master, signing_key: &signing };
        let Ok(sealed) = crate::seal::seal(kind, VAULT, WRITER, ObjectId::HEAD, [7; 24], &seal_keys, payload) else {
            continue;
        };
        sealed_object(&sealed);
    }
}

/// What an importer does with a segment's ops: turns each into an op.
fn segment_ops(segment: SegmentPayload) {
    for op in segment.ops {
        let _ = op.into_op(WRITER);
    }
}

/// Reads `bytes` as the sealed objects of a pairing (request, reveal, response) and as an
/// invite line.
pub fn pairing(bytes: &[u8]) {
    let invite = invite();
    let _ = invite.open_request(bytes);
    let _ = invite.open_reveal(bytes);
    let _ = invite.open_response(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = Invite::parse(text);
    }
}

/// Reads `text` as everything a person or a peer types or sends as text: store paths (every
/// hub and peer request names one), ids, record values, recovery phrases.
pub fn text(text: &str) {
    let _ = paths::parse(text);
    let _ = paths::parse_device_record(text);
    let _ = paths::parse_revocation(text);
    let _ = text.parse::<DeviceId>();
    let _ = text.parse::<VaultId>();
    let _ = text.parse::<OpId>();
    let _ = crate::EpochRef::parse(text);
    let _ = JsonValue::parse(text);
    let _ = crate::canonical::canonical_json_text(text);
    let _ = RecoveryPhrase::parse(text);
    let _ = crate::Collection::new(text);
    let _ = crate::RecordKey::new(text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::WireOp;
    use crate::pairing::PairRequest;
    use crate::typed::Sealer;
    use std::path::PathBuf;

    /// The starting corpus of each target, by target name: real objects and texts.
    fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        let signing = signing_key();
        let master = MasterKey::new([4; 32]);
        let keys = SealKeys { epoch: 0, master_key: &master, signing_key: &signing };
        let sealer = Sealer { vault: VAULT, writer: WRITER, keys };
        let op = crate::Op {
            id: OpId { device: WRITER, counter: 1 },
            hlc: crate::Hlc::new(1_800_000_000_000, 0).unwrap(),
            collection: crate::Collection::new("notes").unwrap(),
            key: crate::RecordKey::new("n1").unwrap(),
            kind: crate::OpKind::put_json(r#"{"title":"hi"}"#).unwrap(),
            parents: vec![OpId { device: WRITER, counter: 0 }],
        };
        let segment = SegmentPayload { seq: 1, prev: None, ops: vec![WireOp::from_op(&op)] };
        let head = HeadPayload { seq: 1, hash: [8; 32], generation: 0, rewritten_from: None };
        let request = PairRequest {
            device_id: vec![2; 16],
            name: "phone".into(),
            signing_public: vec![3; 32],
            recipient: "age1x".into(),
        };
        let mut seeds = vec![
            ("sealed_object", sealer.seal(ObjectId::segment(1), [9; 24], &segment).unwrap()),
            ("sealed_object", sealer.seal(ObjectId::HEAD, [9; 24], &head).unwrap()),
            ("payload", crate::objects::encode(&segment)),
            ("payload", crate::objects::encode(&head)),
            ("pairing", invite().seal_request(&request, [1; 24])),
            ("pairing", invite().to_token().into_bytes()),
        ];
        for text in [
            "log/02020202020202020202020202020202/1.seg",
            "devices/02020202020202020202020202020202.dev",
            "keys/1.0a0b0c0d0e0f10111213141516171819/recovery.age",
            r#"{"b":[1,2.50,"\u00e9"],"a":null}"#,
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        ] {
            seeds.push(("text", text.as_bytes().to_vec()));
        }
        let part =
            crate::objects::SnapshotPartPayload { n: 1, part: 0, ops: vec![crate::objects::SnapshotOp::from_op(&op)] };
        let manifest = crate::objects::SnapshotPayload {
            n: 1,
            created_ms: 1_800_000_000_000,
            cut: vec![crate::objects::CutEntry { d: *WRITER.as_bytes(), seq: 1, hash: [8; 32], g: 0, c: 1 }],
            parts: vec![crate::objects::ByteArray32([5; 32])],
            ops: 1,
        };
        seeds.push(("sealed_object", sealer.seal(ObjectId::snapshot(1), [9; 24], &manifest).unwrap()));
        seeds.push(("sealed_object", sealer.seal(ObjectId::snapshot_part(1, 0), [9; 24], &part).unwrap()));
        seeds.push(("payload", crate::objects::encode(&part)));
        seeds.push(("text", b"snapshots/02020202020202020202020202020202/0000000000000001.000000.part".to_vec()));
        seeds
    }

    fn corpus(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
    }

    /// `FERRY_WRITE_SEEDS=1 cargo test -p ferry-format fuzzing` writes the seeds into
    /// `fuzz/corpus/<target>/seed-<n>`; without it, checks they are there as written.
    #[test]
    fn the_seed_corpus_is_current() {
        let write = std::env::var_os("FERRY_WRITE_SEEDS").is_some();
        for (n, (target, bytes)) in seeds().into_iter().enumerate() {
            let file = corpus(target).join(format!("seed-{n}"));
            if write {
                std::fs::create_dir_all(corpus(target)).unwrap();
                std::fs::write(&file, &bytes).unwrap();
            } else {
                assert_eq!(std::fs::read(&file).ok(), Some(bytes), "{} is stale: FERRY_WRITE_SEEDS=1", file.display());
            }
        }
    }

    type Target = fn(&[u8]);

    #[test]
    fn every_corpus_entry_runs_through_its_target() {
        let targets: [(&str, Target); 4] = [
            ("sealed_object", sealed_object),
            ("payload", payload),
            ("pairing", pairing),
            ("text", |bytes| text(&String::from_utf8_lossy(bytes))),
        ];
        for (target, run) in targets {
            let entries: Vec<_> = std::fs::read_dir(corpus(target)).unwrap().map(|e| e.unwrap().path()).collect();
            assert!(!entries.is_empty(), "{target} has no corpus");
            for entry in entries {
                run(&std::fs::read(entry).unwrap());
            }
        }
    }

    #[test]
    fn a_seed_object_opens_so_the_fuzzer_starts_past_the_checks() {
        let (_, bytes) = seeds().into_iter().next().unwrap();
        let named = Named { vault: VAULT, writer: Some(WRITER), id: None };
        let segment = Sealed::<SegmentPayload>::new(&bytes).open(named, &keys()).unwrap();
        assert_eq!(segment.payload.ops.len(), 1);
    }
}

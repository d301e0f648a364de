//! What a hub may accept, decided without decrypting anything (the hub holds no vault key).
//!
//! A sealed object carries its writer in a plaintext header and an Ed25519 signature over
//! everything. A hub that knows the public keys of the vault's active devices (pinned when the
//! hub was added; see ARCHITECTURE.md, "the hub plan") accepts a sealed object only if its
//! writer is pinned, its signature verifies, it belongs to the vault, and its path is the one its
//! header names: a segment or HEAD under `log/<writer>/`, a revocation naming its subject, and
//! so on. A genuine device record pins its subject and a genuine revocation unpins it, so the
//! hub's pins follow the registry the way every device's do. The check is on the object, not the connection, so a device may relay another's
//! objects (as it does between stores) and nobody can place a forged one.
//!
//! Objects that are not sealed (the vault file, age key slots, pairing exchanges) carry no
//! signature; a hub takes them only from a connection authenticated as a pinned device, and
//! only create-if-absent.

use ed25519_dalek::VerifyingKey;
use ferry_format::objects::paths::{self, StorePath};
use ferry_format::seal::{Expected, Header, ObjectId, ObjectKind, check_identity, verify_signature};
use ferry_format::{DeviceId, EpochRef, VaultId};

/// Why a hub refuses a write.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Not a path any ferry object lives at.
    #[error("`{0}` is not a ferry store path")]
    NotAStorePath(String),
    /// The bytes are not a sealed object of the kind the path names.
    #[error("`{path}` does not hold what its name says: {why}")]
    WrongObject {
        /// The path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The writer is not an active device of the vault (as the hub knows it).
    #[error("`{path}` is written by {writer}, which is not an active device of this vault")]
    UnknownWriter {
        /// The path.
        path: String,
        /// The writer its header names.
        writer: DeviceId,
    },
    /// The signature does not verify with the writer's key.
    #[error("`{path}` is not signed by the device it names")]
    BadSignature {
        /// The path.
        path: String,
    },
}

/// What an accepted write means to the hub.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Not a sealed object (vault file, key slot, pairing exchange): accept only from a pinned
    /// device's connection (pairing: from anyone), create-if-absent.
    Unsealed,
    /// A genuine sealed object of the vault, in the log of `owner` (segments and HEADs) or
    /// nobody's (blobs, key epoch objects).
    Sealed {
        /// The device whose log holds it, if any: only it may replace the object.
        owner: Option<DeviceId>,
    },
    /// A genuine device record: its subject joins the vault with this key (the hub pins it, if
    /// devices would: see `HubState::follow`).
    Enrolls {
        /// The new device.
        subject: DeviceId,
        /// Its Ed25519 key.
        key: [u8; 32],
        /// The key epoch it is sealed under.
        epoch: u32,
    },
    /// A genuine revocation: the hub unpins the subject for good, if devices would accept it.
    Revokes {
        /// The revoked device.
        subject: DeviceId,
        /// Who signed it.
        by: DeviceId,
        /// The key epoch it starts.
        starts: EpochRef,
    },
}

/// Whether a hub of vault `vault` may store `bytes` at `path`, given the pinned device keys.
///
/// # Errors
/// [`Refusal`].
pub fn check_write(
    path: &str,
    bytes: &[u8],
    vault: VaultId,
    key_of: &dyn Fn(DeviceId) -> Option<VerifyingKey>,
) -> Result<Accepted, Refusal> {
    let parsed = paths::parse(path).ok_or_else(|| Refusal::NotAStorePath(path.to_owned()))?;
    let expected = |kind, device_id, object_id| Expected { kind, vault_id: vault, device_id, object_id };
    let header = match parsed {
        StorePath::VaultFile | StorePath::KeySlot(..) | StorePath::Pair(..) => return Ok(Accepted::Unsealed),
        _ => parse_header(path, bytes)?,
    };
    let (expected, accepted) = match parsed {
        StorePath::Segment(device, seq) => (
            expected(ObjectKind::Segment, Some(device), Some(ObjectId::segment(seq))),
            Accepted::Sealed { owner: Some(device) },
        ),
        StorePath::Head(device) => {
            (expected(ObjectKind::Head, Some(device), Some(ObjectId::HEAD)), Accepted::Sealed { owner: Some(device) })
        }
        // A record's object id is its subject's signing key: a pinned device vouches for it.
        StorePath::DeviceRecord(subject) => (
            expected(ObjectKind::Device, None, Some(header.object_id)),
            Accepted::Enrolls { subject, key: header.object_id.0, epoch: header.epoch },
        ),
        StorePath::Revocation(subject, tag) => (
            expected(ObjectKind::Revocation, None, Some(ObjectId::revocation(subject, &tag))),
            Accepted::Revokes {
                subject,
                by: header.device_id,
                starts: EpochRef::tagged(header.epoch.saturating_add(1), tag),
            },
        ),
        StorePath::KeyEpoch(epoch) => {
            (expected(ObjectKind::KeyEpoch, None, Some(ObjectId::epoch(&epoch))), Accepted::Sealed { owner: None })
        }
        StorePath::Blob(id) => {
            let kind =
                if header.kind == ObjectKind::BlobManifest { ObjectKind::BlobManifest } else { ObjectKind::BlobChunk };
            (expected(kind, None, Some(ObjectId(id))), Accepted::Sealed { owner: None })
        }
        StorePath::Snapshot(writer, n) => (
            expected(ObjectKind::Snapshot, Some(writer), Some(ObjectId::snapshot(n))),
            Accepted::Sealed { owner: Some(writer) },
        ),
        StorePath::SnapshotPart(writer, n, part) => (
            expected(ObjectKind::SnapshotPart, Some(writer), Some(ObjectId::snapshot_part(n, part))),
            Accepted::Sealed { owner: Some(writer) },
        ),
        StorePath::VaultFile | StorePath::KeySlot(..) | StorePath::Pair(..) => return Ok(Accepted::Unsealed),
    };
    check_identity(&header, &expected)
        .map_err(|e| Refusal::WrongObject { path: path.to_owned(), why: e.to_string() })?;
    let key =
        key_of(header.device_id).ok_or(Refusal::UnknownWriter { path: path.to_owned(), writer: header.device_id })?;
    verify_signature(bytes, &key).map_err(|_| Refusal::BadSignature { path: path.to_owned() })?;
    Ok(accepted)
}

fn parse_header(path: &str, bytes: &[u8]) -> Result<Header, Refusal> {
    Header::parse(bytes).map_err(|e| Refusal::WrongObject { path: path.to_owned(), why: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ferry_format::MasterKey;
    use ferry_format::seal::{SealKeys, seal};

    struct Device {
        id: DeviceId,
        key: SigningKey,
    }

    fn device(n: u8) -> Device {
        Device { id: DeviceId::from_bytes([n; 16]), key: SigningKey::from_bytes(&[n; 32]) }
    }

    fn sealed(writer: &Device, vault: VaultId, kind: ObjectKind, id: ObjectId) -> Vec<u8> {
        let master = MasterKey::new([1; 32]);
        let keys = SealKeys { epoch: 0, master_key: &master, signing_key: &writer.key };
        seal(kind, vault, writer.id, id, [2; 24], &keys, b"payload the hub cannot read").unwrap_or_default()
    }

    #[test]
    fn a_hub_takes_only_objects_signed_by_pinned_devices_at_their_own_paths() {
        let vault = VaultId::from_bytes([5; 16]);
        let (a, b, stranger) = (device(1), device(2), device(3));
        let pinned = [(a.id, a.key.verifying_key()), (b.id, b.key.verifying_key())];
        let key_of = move |d: DeviceId| pinned.iter().find(|(id, _)| *id == d).map(|(_, k)| *k);
        let check = |path: &str, bytes: &[u8]| check_write(path, bytes, vault, &key_of);

        // Own segment and HEAD; a's segment relayed by anyone (the check is on the object).
        let segment = sealed(&a, vault, ObjectKind::Segment, ObjectId::segment(7));
        assert_eq!(check(&paths::segment(a.id, 7), &segment), Ok(Accepted::Sealed { owner: Some(a.id) }));
        let head = sealed(&a, vault, ObjectKind::Head, ObjectId::HEAD);
        assert_eq!(check(&paths::head(a.id), &head), Ok(Accepted::Sealed { owner: Some(a.id) }));
        // b cannot write into a's log, nor under another number.
        let forged = sealed(&b, vault, ObjectKind::Segment, ObjectId::segment(8));
        assert!(matches!(check(&paths::segment(a.id, 8), &forged), Err(Refusal::WrongObject { .. })));
        assert!(matches!(check(&paths::segment(a.id, 9), &segment), Err(Refusal::WrongObject { .. })));
        // A stranger's object, one of another vault, a flipped bit.
        let theirs = sealed(&stranger, vault, ObjectKind::Segment, ObjectId::segment(1));
        assert!(matches!(check(&paths::segment(stranger.id, 1), &theirs), Err(Refusal::UnknownWriter { .. })));
        let other_vault = sealed(&a, VaultId::from_bytes([6; 16]), ObjectKind::Segment, ObjectId::segment(7));
        assert!(matches!(check(&paths::segment(a.id, 7), &other_vault), Err(Refusal::WrongObject { .. })));
        let mut flipped = segment.clone();
        let last = flipped.len() - 70;
        flipped[last] ^= 1;
        assert_eq!(
            check(&paths::segment(a.id, 7), &flipped),
            Err(Refusal::BadSignature { path: paths::segment(a.id, 7) })
        );

        // Registry objects: signed by a pinned device, naming the right subject.
        let new_key = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
        let record = sealed(&a, vault, ObjectKind::Device, ObjectId(new_key));
        let subject = DeviceId::from_bytes([9; 16]);
        assert_eq!(
            check(&paths::device_record(subject), &record),
            Ok(Accepted::Enrolls { subject, key: new_key, epoch: 0 })
        );
        let vouched_by_stranger = sealed(&stranger, vault, ObjectKind::Device, ObjectId(new_key));
        assert!(matches!(
            check(&paths::device_record(subject), &vouched_by_stranger),
            Err(Refusal::UnknownWriter { .. })
        ));
        let revocation = sealed(&a, vault, ObjectKind::Revocation, ObjectId::revocation(b.id, &[8; 16]));
        assert_eq!(
            check(&paths::revocation(b.id, &[8; 16]), &revocation),
            Ok(Accepted::Revokes { subject: b.id, by: a.id, starts: ferry_format::EpochRef::tagged(1, [8; 16]) })
        );
        assert!(check(&paths::revocation(a.id, &[8; 16]), &revocation).is_err(), "a revocation must name its subject");
        assert!(check(&paths::revocation(b.id, &[9; 16]), &revocation).is_err(), "and its epoch's tag");
        let first = ferry_format::EpochRef::tagged(1, [8; 16]);
        let epoch = sealed(&b, vault, ObjectKind::KeyEpoch, ObjectId::epoch(&first));
        assert_eq!(check(&paths::key_epoch(&first), &epoch), Ok(Accepted::Sealed { owner: None }));
        assert!(check(&paths::key_epoch(&ferry_format::EpochRef::tagged(2, [8; 16])), &epoch).is_err());
        let chunk = sealed(&b, vault, ObjectKind::BlobChunk, ObjectId([4; 32]));
        assert_eq!(check(&paths::blob(&[4; 32]), &chunk), Ok(Accepted::Sealed { owner: None }));

        // Unsealed objects are left to the connection check; garbage paths are refused.
        assert_eq!(check(paths::VAULT_FILE, b"{}"), Ok(Accepted::Unsealed));
        assert_eq!(check(&paths::key_slot(&ferry_format::EpochRef::FIRST, "recovery"), b"age"), Ok(Accepted::Unsealed));
        assert!(matches!(check("../etc/passwd", b""), Err(Refusal::NotAStorePath(_))));
        assert!(matches!(check(&paths::head(a.id), b"short"), Err(Refusal::WrongObject { .. })));
    }
}

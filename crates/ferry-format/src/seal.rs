//! Sealed objects: how every object but `ferry-vault.json` and key slots is written to a store.
//!
//! ```text
//! offset  size  field
//!      0     5  magic "ferry"
//!      5     1  format version (2)
//!      6     1  kind (ObjectKind)
//!      7    16  vault id
//!     23    16  writer device id (the signer)
//!     39     4  key epoch, big-endian
//!     43    32  object id (kind-specific, see ObjectId)
//!     75    24  XChaCha20-Poly1305 nonce
//!     99     n  ciphertext of zstd(payload), with the 99 header bytes as associated data, + 16-byte tag
//!  99+n     64  Ed25519 signature by the writer of the 32-byte BLAKE3 digest of bytes 0 .. 99+n
//!               (derive-key mode, context "ferry 2026-12 sealed object signature v2")
//! ```
//! Signing the digest, not the bytes, takes SHA-512 over the whole object (Ed25519's own hash)
//! off the seal and open path: BLAKE3 runs several times faster, and the Ed25519 work is then the
//! same for a HEAD and a 10 MiB segment. Version 1 signed the bytes; readers refuse it.
//! The per-object key is HKDF-SHA256 of the epoch's master key with the info
//! `"ferry object key v1" || header[0..75]`: a key is bound to the object's identity, so an object
//! moved to another name, device, vault or epoch fails to open even before its signature is checked.

use crate::{DeviceId, EpochRef, MasterKey, VaultId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use std::io::Read;

const MAGIC: &[u8; 5] = b"ferry";
const VERSION: u8 = 2;
/// The domain of the digest a sealed object's signature covers.
const SIGNATURE_CONTEXT: &str = "ferry 2026-12 sealed object signature v2";
const IDENTITY_LEN: usize = 75;
/// Bytes of a sealed object's plaintext header.
pub const HEADER_LEN: usize = IDENTITY_LEN + 24;
const TAG_LEN: usize = 16;
const SIGNATURE_LEN: usize = 64;
/// The fixed overhead of sealing: header, AEAD tag and signature.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN + SIGNATURE_LEN;
/// Largest payload ferry will decompress from one object.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Fast compression: level 1 seals at about the speed of the AEAD alone (see the sync benchmark).
const ZSTD_LEVEL: i32 = 1;

/// What a sealed object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A batch of one device's ops (`log/<device>/<seq>.seg`).
    Segment = 1,
    /// A device's pointer to its last segment (`log/<device>/HEAD`).
    Head = 2,
    /// A piece of a blob (`blobs/<xx>/<chunk id>`).
    BlobChunk = 3,
    /// The list of a blob's chunks (`blobs/<xx>/<blob id>`).
    BlobManifest = 4,
    /// A device's enrollment record (`devices/<device>.dev`).
    Device = 5,
    /// The start of a key epoch (`keys/<epoch>/epoch`): who holds its key, and the key before.
    KeyEpoch = 6,
    /// A device's revocation (`devices/<device>.revoked`).
    Revocation = 7,
    /// A snapshot's manifest (`snapshots/<writer>/<n>.snap`): the cut it covers and its parts.
    Snapshot = 8,
    /// A part of a snapshot (`snapshots/<writer>/<n>.<part>.part`): merged state as ops.
    SnapshotPart = 9,
}

impl ObjectKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Segment,
            2 => Self::Head,
            3 => Self::BlobChunk,
            4 => Self::BlobManifest,
            5 => Self::Device,
            6 => Self::KeyEpoch,
            7 => Self::Revocation,
            8 => Self::Snapshot,
            9 => Self::SnapshotPart,
            _ => return None,
        })
    }
}

/// The 32-byte, kind-specific identity of an object: a segment's sequence number, a blob's
/// id, a device record's subject signing key, a key epoch's or revocation's subject (see
/// [`ObjectId::epoch`], [`ObjectId::revocation`]), or zeros for a HEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    /// The id of segment `seq`: the number big-endian, then zeros.
    pub fn segment(seq: u64) -> Self {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&seq.to_be_bytes());
        Self(id)
    }

    /// The id of a writer's snapshot `n` (its manifest): the number big-endian, then zeros.
    pub fn snapshot(n: u64) -> Self {
        Self::segment(n)
    }

    /// The id of part `part` of a writer's snapshot `n`: `n` big-endian, `part` big-endian
    /// (4 bytes), then zeros.
    pub fn snapshot_part(n: u64, part: u32) -> Self {
        let mut id = Self::segment(n).0;
        id[8..12].copy_from_slice(&part.to_be_bytes());
        Self(id)
    }

    /// The id of a HEAD (there is one per device).
    pub const HEAD: Self = Self([0; 32]);

    /// The id of key epoch `epoch`'s object: the number big-endian, its tag (zeros for epoch
    /// 0, which has no object), then zeros.
    pub fn epoch(epoch: &EpochRef) -> Self {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&epoch.number.to_be_bytes());
        id[4..20].copy_from_slice(&epoch.tag.unwrap_or_default());
        Self(id)
    }

    /// The id of a revocation: the revoked device's id, then the tag of the key epoch it
    /// starts (so the revocation is bound to its own rotation, not to whatever holds a name).
    pub fn revocation(device: DeviceId, tag: &[u8; 16]) -> Self {
        let mut id = [0u8; 32];
        id[..16].copy_from_slice(device.as_bytes());
        id[16..].copy_from_slice(tag);
        Self(id)
    }
}

/// The plaintext header of a sealed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the object holds.
    pub kind: ObjectKind,
    /// The vault it belongs to.
    pub vault_id: VaultId,
    /// The device that wrote and signed it.
    pub device_id: DeviceId,
    /// The key epoch it is encrypted under.
    pub epoch: u32,
    /// Its kind-specific identity.
    pub object_id: ObjectId,
    /// The AEAD nonce (random, 24 bytes).
    pub nonce: [u8; 24],
}

impl Header {
    fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..5].copy_from_slice(MAGIC);
        out[5] = VERSION;
        out[6] = self.kind as u8;
        out[7..23].copy_from_slice(self.vault_id.as_bytes());
        out[23..39].copy_from_slice(self.device_id.as_bytes());
        out[39..43].copy_from_slice(&self.epoch.to_be_bytes());
        out[43..75].copy_from_slice(&self.object_id.0);
        out[75..].copy_from_slice(&self.nonce);
        out
    }

    /// Reads the header of a sealed object without checking anything but its shape.
    ///
    /// # Errors
    /// [`OpenError`] for a short object, a foreign file, or an unknown version or kind.
    pub fn parse(sealed: &[u8]) -> Result<Self, OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError::Truncated { len: sealed.len() });
        }
        if &sealed[..5] != MAGIC {
            return Err(OpenError::NotFerry);
        }
        if sealed[5] > VERSION {
            return Err(OpenError::UnsupportedVersion(sealed[5]));
        }
        if sealed[5] < VERSION {
            return Err(OpenError::OldVersion(sealed[5]));
        }
        let kind = ObjectKind::from_byte(sealed[6]).ok_or(OpenError::UnknownKind(sealed[6]))?;
        let array = |range: std::ops::Range<usize>| sealed.get(range).ok_or(OpenError::Truncated { len: sealed.len() });
        Ok(Self {
            kind,
            vault_id: VaultId::from_slice(array(7..23)?).ok_or(OpenError::Truncated { len: sealed.len() })?,
            device_id: DeviceId::from_slice(array(23..39)?).ok_or(OpenError::Truncated { len: sealed.len() })?,
            epoch: u32::from_be_bytes(
                array(39..43)?.try_into().map_err(|_| OpenError::Truncated { len: sealed.len() })?,
            ),
            object_id: ObjectId(array(43..75)?.try_into().map_err(|_| OpenError::Truncated { len: sealed.len() })?),
            nonce: array(75..HEADER_LEN)?.try_into().map_err(|_| OpenError::Truncated { len: sealed.len() })?,
        })
    }
}

/// Why a sealed object was refused. Every reason is reported; none is fatal to other objects.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the smallest sealed object.
    #[error("truncated object ({len} bytes)")]
    Truncated {
        /// The length found.
        len: usize,
    },
    /// Not a ferry object at all.
    #[error("not a ferry object (bad magic)")]
    NotFerry,
    /// Written by a newer ferry.
    #[error("object format version {0} is newer than this ferry understands: upgrade ferry")]
    UnsupportedVersion(u8),
    /// Written by a ferry before this format version (its signature covers other bytes).
    #[error(
        "object format version {0} is older than this ferry reads (version 2): export the vault with the ferry that wrote it and import it here"
    )]
    OldVersion(u8),
    /// An object kind this ferry does not know.
    #[error("unknown object kind {0}")]
    UnknownKind(u8),
    /// Another kind than the name says.
    #[error("object is a {found:?}, expected a {expected:?}")]
    WrongKind {
        /// The kind in the header.
        found: ObjectKind,
        /// The kind its name implies.
        expected: ObjectKind,
    },
    /// Belongs to another vault (replayed from elsewhere).
    #[error("object belongs to another vault ({found})")]
    WrongVault {
        /// The vault in the header.
        found: VaultId,
    },
    /// Written by another device than its name says (re-labelled).
    #[error("object claims device {found} but is stored under device {expected}")]
    WrongDevice {
        /// The device in the header.
        found: DeviceId,
        /// The device its name implies.
        expected: DeviceId,
    },
    /// Another object id than its name says (moved or replayed).
    #[error("object id does not match its name")]
    WrongObjectId,
    /// The writer is not a device this vault knows.
    #[error("written by unknown device {0}")]
    UnknownDevice(DeviceId),
    /// Encrypted under a key epoch this device does not hold.
    #[error("encrypted under key epoch {0}, which this device does not hold")]
    UnknownEpoch(u32),
    /// The signature does not verify: forged, unsigned or damaged.
    #[error("bad signature")]
    BadSignature,
    /// Authenticated decryption failed: damaged, or sealed with another key.
    #[error("decryption failed (damaged, or sealed with another vault key)")]
    Decryption,
    /// The payload does not decompress or is too large.
    #[error("payload does not decompress: {0}")]
    Decompression(String),
    /// The payload decodes to nonsense.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// What a reader expects of an object, from its name.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// The kind its name implies.
    pub kind: ObjectKind,
    /// The reader's vault.
    pub vault_id: VaultId,
    /// The writer its name implies, if the name says (segments and HEADs do).
    pub device_id: Option<DeviceId>,
    /// The object id its name implies, if any.
    pub object_id: Option<ObjectId>,
}

/// The keys sealing needs: the epoch's master key and the writer's signing key.
pub struct SealKeys<'a> {
    /// The key epoch.
    pub epoch: u32,
    /// That epoch's master key.
    pub master_key: &'a MasterKey,
    /// The writer's Ed25519 key.
    pub signing_key: &'a SigningKey,
}

/// Seals `payload` into an object. The nonce must be fresh random bytes (tests fix it).
///
/// # Errors
/// Only if compression or encryption fail, which they do not for in-memory buffers.
pub fn seal(
    kind: ObjectKind,
    vault_id: VaultId,
    device_id: DeviceId,
    object_id: ObjectId,
    nonce: [u8; 24],
    keys: &SealKeys<'_>,
    payload: &[u8],
) -> Result<Vec<u8>, SealError> {
    let header = Header { kind, vault_id, device_id, epoch: keys.epoch, object_id, nonce }.to_bytes();
    let compressed = zstd::bulk::compress(payload, ZSTD_LEVEL).map_err(|e| SealError(e.to_string()))?;
    let cipher = XChaCha20Poly1305::new(&object_key(keys.master_key, &header).into());
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: &compressed, aad: &header })
        .map_err(|_| SealError("encryption failed".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len() + SIGNATURE_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&ciphertext);
    let signature = keys.signing_key.sign(&signed_digest(&out));
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// Sealing failed (never for valid in-memory input).
#[derive(Debug, thiserror::Error)]
#[error("cannot seal object: {0}")]
pub struct SealError(String);

/// Checks a sealed object against its name, its writer's key and the vault key, and returns
/// its header and payload. Checks run cheapest first; the first failure is the reason.
///
/// `writer_key` maps the header's device to its verifying key (`None`: unknown device);
/// `master_key` maps an epoch to its key (`None`: not held).
///
/// # Errors
/// [`OpenError`] naming what is wrong.
pub fn open<'k>(
    sealed: &[u8],
    expected: &Expected,
    writer_key: impl FnOnce(DeviceId) -> Option<VerifyingKey>,
    master_key: impl FnOnce(u32) -> Option<&'k MasterKey>,
) -> Result<(Header, Vec<u8>), OpenError> {
    let header = Header::parse(sealed)?;
    check_identity(&header, expected)?;
    let verifying_key = writer_key(header.device_id).ok_or(OpenError::UnknownDevice(header.device_id))?;
    let payload = open_with_key(sealed, &header, &verifying_key, master_key)?;
    Ok((header, payload))
}

/// Checks a header against what the object's name implies.
///
/// # Errors
/// The first mismatch.
pub fn check_identity(header: &Header, expected: &Expected) -> Result<(), OpenError> {
    if header.kind != expected.kind {
        return Err(OpenError::WrongKind { found: header.kind, expected: expected.kind });
    }
    if header.vault_id != expected.vault_id {
        return Err(OpenError::WrongVault { found: header.vault_id });
    }
    if let Some(device) = expected.device_id
        && header.device_id != device
    {
        return Err(OpenError::WrongDevice { found: header.device_id, expected: device });
    }
    if let Some(object_id) = expected.object_id
        && header.object_id != object_id
    {
        return Err(OpenError::WrongObjectId);
    }
    Ok(())
}

/// Verifies only the writer's signature (anyone with the writer's public key can; no vault key
/// is needed).
///
/// # Errors
/// [`OpenError::Truncated`] or [`OpenError::BadSignature`].
pub fn verify_signature(sealed: &[u8], verifying_key: &VerifyingKey) -> Result<(), OpenError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(OpenError::Truncated { len: sealed.len() });
    }
    let (signed, signature) = sealed.split_at(sealed.len() - SIGNATURE_LEN);
    let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| OpenError::BadSignature)?;
    verifying_key.verify(&signed_digest(signed), &signature).map_err(|_| OpenError::BadSignature)
}

/// What the writer signs: the domain-separated BLAKE3 digest of the header and ciphertext.
fn signed_digest(signed: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key(SIGNATURE_CONTEXT).update(signed).finalize().as_bytes()
}

/// Verifies the signature, decrypts and decompresses, given the writer's key.
///
/// # Errors
/// [`OpenError`] naming what is wrong.
pub fn open_with_key<'k>(
    sealed: &[u8],
    header: &Header,
    verifying_key: &VerifyingKey,
    master_key: impl FnOnce(u32) -> Option<&'k MasterKey>,
) -> Result<Vec<u8>, OpenError> {
    verify_signature(sealed, verifying_key)?;
    let signed = &sealed[..sealed.len() - SIGNATURE_LEN];
    let master_key = master_key(header.epoch).ok_or(OpenError::UnknownEpoch(header.epoch))?;
    let header_bytes = &signed[..HEADER_LEN];
    let cipher = XChaCha20Poly1305::new(&object_key(master_key, header_bytes).into());
    let compressed = cipher
        .decrypt(XNonce::from_slice(&header.nonce), Payload { msg: &signed[HEADER_LEN..], aad: header_bytes })
        .map_err(|_| OpenError::Decryption)?;
    decompress(&compressed)
}

fn decompress(compressed: &[u8]) -> Result<Vec<u8>, OpenError> {
    // Frames state their size (ferry writes them with `bulk::compress`): decompress in one call
    // into a buffer of that size, refused above the limit. Only a frame without one is streamed.
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(compressed) {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_PAYLOAD {
            return Err(OpenError::Decompression(format!("payload exceeds {MAX_PAYLOAD} bytes")));
        }
        return zstd::bulk::decompress(compressed, size).map_err(|e| OpenError::Decompression(e.to_string()));
    }
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(|e| OpenError::Decompression(e.to_string()))?;
    let mut out = Vec::new();
    decoder.take(MAX_PAYLOAD as u64 + 1).read_to_end(&mut out).map_err(|e| OpenError::Decompression(e.to_string()))?;
    if out.len() > MAX_PAYLOAD {
        return Err(OpenError::Decompression(format!("payload exceeds {MAX_PAYLOAD} bytes")));
    }
    Ok(out)
}

/// HKDF-SHA256 of the master key, bound to the object's identity (header bytes 0..75).
fn object_key(master_key: &MasterKey, header: &[u8]) -> [u8; 32] {
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(None, master_key.expose());
    let mut key = [0u8; 32];
    let info = [b"ferry object key v1".as_slice(), &header[..IDENTITY_LEN]];
    // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
    hkdf.expand_multi_info(&info, &mut key).unwrap_or_default();
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_over_the_limit_is_refused_whether_its_frame_states_its_size_or_not() {
        let too_big = vec![0u8; MAX_PAYLOAD + 1];
        let sized = zstd::bulk::compress(&too_big, 1).unwrap();
        assert!(matches!(decompress(&sized), Err(OpenError::Decompression(_))));
        let mut streamed = Vec::new();
        let mut encoder = zstd::stream::write::Encoder::new(&mut streamed, 1).unwrap();
        std::io::Write::write_all(&mut encoder, &too_big).unwrap();
        encoder.finish().unwrap();
        assert!(
            matches!(zstd::zstd_safe::get_frame_content_size(&streamed), Ok(None)),
            "a streamed frame states no size"
        );
        assert!(matches!(decompress(&streamed), Err(OpenError::Decompression(_))));
        assert_eq!(decompress(&zstd::bulk::compress(b"small", 1).unwrap()).unwrap(), b"small");
    }

    fn keys() -> (MasterKey, SigningKey) {
        (MasterKey::new([1; 32]), SigningKey::from_bytes(&[2; 32]))
    }

    fn sealed(payload: &[u8]) -> Vec<u8> {
        let (master, signing) = keys();
        let keys = SealKeys { epoch: 0, master_key: &master, signing_key: &signing };
        seal(
            ObjectKind::Segment,
            VaultId::from_bytes([3; 16]),
            DeviceId::from_bytes([4; 16]),
            ObjectId::segment(7),
            [5; 24],
            &keys,
            payload,
        )
        .unwrap()
    }

    fn expected() -> Expected {
        Expected {
            kind: ObjectKind::Segment,
            vault_id: VaultId::from_bytes([3; 16]),
            device_id: Some(DeviceId::from_bytes([4; 16])),
            object_id: Some(ObjectId::segment(7)),
        }
    }

    fn check(sealed: &[u8], expected: &Expected) -> Result<Vec<u8>, OpenError> {
        let (master, signing) = keys();
        let verifying = signing.verifying_key();
        open(
            sealed,
            expected,
            |d| (d == DeviceId::from_bytes([4; 16])).then_some(verifying),
            |e| (e == 0).then_some(&master),
        )
        .map(|(_, payload)| payload)
    }

    #[test]
    fn roundtrip() {
        let object = sealed(b"hello ops");
        assert_eq!(object.len(), SEAL_OVERHEAD + zstd::bulk::compress(b"hello ops", 3).unwrap().len());
        assert_eq!(check(&object, &expected()).unwrap(), b"hello ops");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let object = sealed(b"payload worth protecting");
        for byte in 0..object.len() {
            let mut damaged = object.clone();
            damaged[byte] ^= 0x10;
            assert!(check(&damaged, &expected()).is_err(), "flip in byte {byte} went unnoticed");
        }
    }

    #[test]
    fn truncation_relabelling_replay_and_forgery_are_refused() {
        let object = sealed(b"x");
        for len in [0, 10, HEADER_LEN, object.len() - 1] {
            assert!(check(&object[..len], &expected()).is_err(), "truncated to {len}");
        }
        let other_device = Expected { device_id: Some(DeviceId::from_bytes([9; 16])), ..expected() };
        assert!(matches!(check(&object, &other_device), Err(OpenError::WrongDevice { .. })));
        let other_vault = Expected { vault_id: VaultId::from_bytes([8; 16]), ..expected() };
        assert!(matches!(check(&object, &other_vault), Err(OpenError::WrongVault { .. })));
        let other_seq = Expected { object_id: Some(ObjectId::segment(8)), ..expected() };
        assert_eq!(check(&object, &other_seq), Err(OpenError::WrongObjectId));
        let head = Expected { kind: ObjectKind::Head, ..expected() };
        assert!(matches!(check(&object, &head), Err(OpenError::WrongKind { .. })));

        let mut unsigned = object.clone();
        let len = unsigned.len();
        unsigned[len - 64..].fill(0);
        assert_eq!(check(&unsigned, &expected()), Err(OpenError::BadSignature));

        // A forger with another signing key cannot pass as the device.
        let (master, _) = keys();
        let forged = seal(
            ObjectKind::Segment,
            VaultId::from_bytes([3; 16]),
            DeviceId::from_bytes([4; 16]),
            ObjectId::segment(7),
            [5; 24],
            &SealKeys { epoch: 0, master_key: &master, signing_key: &SigningKey::from_bytes(&[66; 32]) },
            b"x",
        )
        .unwrap();
        assert_eq!(check(&forged, &expected()), Err(OpenError::BadSignature));
        // A signer without the vault key cannot produce readable objects.
        let (_, signing) = keys();
        let outsider = seal(
            ObjectKind::Segment,
            VaultId::from_bytes([3; 16]),
            DeviceId::from_bytes([4; 16]),
            ObjectId::segment(7),
            [5; 24],
            &SealKeys { epoch: 0, master_key: &MasterKey::new([77; 32]), signing_key: &signing },
            b"x",
        )
        .unwrap();
        assert_eq!(check(&outsider, &expected()), Err(OpenError::Decryption));
        assert_eq!(check(&[b'x'; 300], &expected()), Err(OpenError::NotFerry));
    }
}
/// The sealed-object vectors of docs/FORMAT.md, recomputed: the document must state exactly these.
#[cfg(test)]
mod format_vectors {
    use super::*;
    use crate::objects::{SegmentPayload, WireOp, encode};

    #[test]
    fn format_document_states_the_sealed_segment_vector() {
        use crate::format_document::check;
        let master = MasterKey::new([0x42; 32]);
        let signing = SigningKey::from_bytes(&[0x07; 32]);
        let vault = VaultId::from_bytes([0x11; 16]);
        let device = DeviceId::from_bytes([0x22; 16]);
        let op = crate::Op {
            id: crate::OpId { device, counter: 1 },
            hlc: crate::Hlc::new(1_763_776_800_123, 0).unwrap(),
            collection: crate::Collection::new("notes").unwrap(),
            key: crate::RecordKey::new("n1").unwrap(),
            kind: crate::OpKind::put_json(r#"{"title":"hi"}"#).unwrap(),
            parents: vec![],
        };
        let payload = encode(&SegmentPayload { seq: 1, prev: None, ops: vec![WireOp::from_op(&op)] });
        check("segment payload", hex::encode(&payload));
        let header = Header {
            kind: ObjectKind::Segment,
            vault_id: vault,
            device_id: device,
            epoch: 0,
            object_id: ObjectId::segment(1),
            nonce: [0x33; 24],
        };
        check("object key", hex::encode(object_key(&master, &header.to_bytes())));
        check("signing public key", hex::encode(signing.verifying_key().to_bytes()));
        let keys = SealKeys { epoch: 0, master_key: &master, signing_key: &signing };
        let sealed =
            seal(ObjectKind::Segment, vault, device, ObjectId::segment(1), [0x33; 24], &keys, &payload).unwrap();
        check("sealed segment", hex::encode(&sealed));
        check("segment hash", blake3::hash(&sealed).to_hex().to_string());
        let expected = Expected {
            kind: ObjectKind::Segment,
            vault_id: vault,
            device_id: Some(device),
            object_id: Some(ObjectId::segment(1)),
        };
        let verifying = signing.verifying_key();
        let (_, opened) = open(&sealed, &expected, |_| Some(verifying), |_| Some(&master)).unwrap();
        assert_eq!(opened, payload);
    }
}

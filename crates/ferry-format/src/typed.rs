//! Sealed objects with the type of what they hold: [`Sealer::seal`] takes a payload and seals
//! it as the kind that payload is ([`Payload::KIND`]); [`Sealed::open`] checks an object
//! against where it was found ([`Named`]) and who may have written it ([`Keyring`]), and
//! returns the decoded payload ([`Opened`]). The untyped functions of [`crate::seal`] stay for
//! the few readers that must look at a header before they know which key to use.

use crate::objects::{
    BlobManifest, DevicePayload, HeadPayload, KeyEpochPayload, RevocationPayload, SegmentPayload, SnapshotPartPayload,
    SnapshotPayload, decode, encode,
};
use crate::seal::{self, Expected, Header, ObjectId, ObjectKind, OpenError, SealError, SealKeys};
use crate::{DeviceId, MasterKey, VaultId};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A payload that goes in a sealed object of one kind.
pub trait Payload: Serialize + DeserializeOwned {
    /// The kind of object that holds it.
    const KIND: ObjectKind;
}

impl Payload for SegmentPayload {
    const KIND: ObjectKind = ObjectKind::Segment;
}
impl Payload for HeadPayload {
    const KIND: ObjectKind = ObjectKind::Head;
}
impl Payload for DevicePayload {
    const KIND: ObjectKind = ObjectKind::Device;
}
impl Payload for KeyEpochPayload {
    const KIND: ObjectKind = ObjectKind::KeyEpoch;
}
impl Payload for RevocationPayload {
    const KIND: ObjectKind = ObjectKind::Revocation;
}
impl Payload for BlobManifest {
    const KIND: ObjectKind = ObjectKind::BlobManifest;
}
impl Payload for SnapshotPayload {
    const KIND: ObjectKind = ObjectKind::Snapshot;
}
impl Payload for SnapshotPartPayload {
    const KIND: ObjectKind = ObjectKind::SnapshotPart;
}

/// The keys a reader trusts: writers' verifying keys, and the vault keys it holds.
pub trait Keyring {
    /// The verifying key of `device`, if it may write this object.
    fn writer_key(&self, device: DeviceId) -> Option<VerifyingKey>;
    /// The vault's key of `epoch`, if held.
    fn master_key(&self, epoch: u32) -> Option<&MasterKey>;
}

/// What an object's place (its store path, the reader's vault) says it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named {
    /// The reader's vault.
    pub vault: VaultId,
    /// The writer its path names, if it names one (logs do).
    pub writer: Option<DeviceId>,
    /// The object id its path implies, if any.
    pub id: Option<ObjectId>,
}

/// The bytes of an object expected to hold a `P`.
#[derive(Clone, Copy, Debug)]
pub struct Sealed<'b, P> {
    bytes: &'b [u8],
    payload: PhantomData<fn() -> P>,
}

/// An object that passed every check, and what it holds.
#[derive(Clone, Debug)]
pub struct Opened<P> {
    /// Its header (writer, epoch, object id).
    pub header: Header,
    /// What it holds.
    pub payload: P,
}

impl<'b, P: Payload> Sealed<'b, P> {
    /// Bytes read from a store, not checked yet.
    pub fn new(bytes: &'b [u8]) -> Self {
        Self { bytes, payload: PhantomData }
    }

    /// Checks the object against its place and the keys (kind, vault, writer, object id,
    /// signature, AEAD, size), then decodes what it holds. Checks run cheapest first.
    ///
    /// # Errors
    /// The first check that fails; [`OpenError::Malformed`] when the payload is not a `P`.
    pub fn open(&self, named: Named, keys: &impl Keyring) -> Result<Opened<P>, OpenError> {
        let expected = Expected { kind: P::KIND, vault_id: named.vault, device_id: named.writer, object_id: named.id };
        let (header, plain) =
            seal::open(self.bytes, &expected, |device| keys.writer_key(device), |epoch| keys.master_key(epoch))?;
        let payload = decode::<P>(&plain).map_err(OpenError::Malformed)?;
        Ok(Opened { header, payload })
    }
}

/// Seals payloads as one writer of one vault, under one epoch's key.
pub struct Sealer<'k> {
    /// The vault.
    pub vault: VaultId,
    /// The writer.
    pub writer: DeviceId,
    /// The epoch key and the writer's signing key.
    pub keys: SealKeys<'k>,
}

impl Sealer<'_> {
    /// Seals `payload` as object `id`, with a fresh random `nonce` (tests fix it).
    ///
    /// # Errors
    /// Only if compression or encryption fail, which they do not for in-memory buffers.
    pub fn seal<P: Payload>(&self, id: ObjectId, nonce: [u8; 24], payload: &P) -> Result<Vec<u8>, SealError> {
        seal::seal(P::KIND, self.vault, self.writer, id, nonce, &self.keys, &encode(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    struct Keys {
        writer: (DeviceId, VerifyingKey),
        master: MasterKey,
    }

    impl Keyring for Keys {
        fn writer_key(&self, device: DeviceId) -> Option<VerifyingKey> {
            (device == self.writer.0).then_some(self.writer.1)
        }
        fn master_key(&self, epoch: u32) -> Option<&MasterKey> {
            (epoch == 0).then_some(&self.master)
        }
    }

    #[test]
    fn a_payload_opens_as_its_own_kind_at_its_own_place_only() {
        let signing = SigningKey::from_bytes(&[9; 32]);
        let (vault, device) = (VaultId::from_bytes([1; 16]), DeviceId::from_bytes([2; 16]));
        let master = MasterKey::new([3; 32]);
        let sealer =
            Sealer { vault, writer: device, keys: SealKeys { epoch: 0, master_key: &master, signing_key: &signing } };
        let head = HeadPayload { seq: 4, hash: [5; 32], generation: 0, rewritten_from: None };
        let bytes = sealer.seal(ObjectId::HEAD, [6; 24], &head).unwrap();
        let keys = Keys { writer: (device, signing.verifying_key()), master: MasterKey::new([3; 32]) };
        let here = Named { vault, writer: Some(device), id: Some(ObjectId::HEAD) };

        let opened = Sealed::<HeadPayload>::new(&bytes).open(here, &keys).unwrap();
        assert_eq!((opened.payload.seq, opened.header.device_id), (4, device));
        let as_segment = Sealed::<SegmentPayload>::new(&bytes).open(here, &keys);
        assert!(matches!(as_segment, Err(OpenError::WrongKind { .. })), "{as_segment:?}");
        let elsewhere = Named { id: Some(ObjectId::segment(4)), ..here };
        assert!(matches!(Sealed::<HeadPayload>::new(&bytes).open(elsewhere, &keys), Err(OpenError::WrongObjectId)));
        let other_vault = Named { vault: VaultId::from_bytes([7; 16]), ..here };
        assert!(matches!(
            Sealed::<HeadPayload>::new(&bytes).open(other_vault, &keys),
            Err(OpenError::WrongVault { .. })
        ));
    }
}

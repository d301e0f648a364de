//! The device registry: which devices belong to the vault, and their keys.
//!
//! A device record (`devices/<id>.dev`) is sealed with the vault key, so only a holder of the
//! vault key can enroll a device, and signed by the enrolling device: by the device itself when
//! it enrolled with the passphrase or recovery slot, otherwise by an active device (pairing).
//! A revocation (`devices/<id>.revoked`) is signed by an active device and starts a key epoch
//! the revoked device does not hold; its segments after the revoker's last one are rejected.
//! Records and revocations that fail these rules are skipped and reported, never trusted.

use crate::database::{from_sql_u64, to_sql_u64};
use crate::identity::VaultKeys;
use crate::{Error, Result, Vault};
use ed25519_dalek::VerifyingKey;
use ferry_format::objects::{DevicePayload, RevocationPayload, decode};
use ferry_format::seal::{self, Expected, ObjectId, ObjectKind, OpenError};
use ferry_format::{DeviceId, EpochRef};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};

/// A device this device knows, with what it may do.
#[derive(Clone, Copy)]
struct Entry {
    key: VerifyingKey,
    /// For a revoked device: its last segment that is accepted.
    revoked_after: Option<u64>,
    /// A revocation of it has been verified (a left-out device may still receive one).
    revocation_known: bool,
}

/// The devices this device knows: their verifying keys, revocations, and the members of the
/// latest key epoch.
#[derive(Default)]
pub(crate) struct Registry {
    devices: HashMap<DeviceId, Entry>,
    /// The members named by the latest key epoch object (`None` while the vault is at epoch 0).
    members: Option<HashSet<DeviceId>>,
}

impl Registry {
    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let mut stmt = conn.prepare_cached(
            "SELECT device_id, signing_public, revoked_last_seq, revoked_ms IS NOT NULL FROM devices",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })?;
        let mut devices = HashMap::new();
        for row in rows {
            let (id, key, revoked_after, revocation_known) = row?;
            let id = DeviceId::from_slice(&id).ok_or_else(|| Error::Corrupt("device registry: malformed id".into()))?;
            let key: [u8; 32] =
                key.as_slice().try_into().map_err(|_| Error::Corrupt(format!("device registry: key of {id}")))?;
            let key =
                VerifyingKey::from_bytes(&key).map_err(|_| Error::Corrupt(format!("device registry: key of {id}")))?;
            let revoked_after = revoked_after.map(from_sql_u64).transpose()?;
            devices.insert(id, Entry { key, revoked_after, revocation_known });
        }
        let members: Option<Vec<u8>> = conn
            .query_row(
                "SELECT members FROM key_epochs WHERE members IS NOT NULL ORDER BY epoch DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let members = members.map(|bytes| bytes.chunks_exact(16).filter_map(DeviceId::from_slice).collect());
        Ok(Self { devices, members })
    }

    /// A registry of one trusted device (a new device checks its inviter's signature with it).
    pub(crate) fn trusting(device: DeviceId, key: VerifyingKey) -> Self {
        Self {
            devices: HashMap::from([(device, Entry { key, revoked_after: None, revocation_known: false })]),
            members: None,
        }
    }

    /// Trusts one more device (a joining device learning records signed by others).
    pub(crate) fn trust(&mut self, device: DeviceId, key: [u8; 32]) {
        if let Ok(key) = VerifyingKey::from_bytes(&key) {
            self.devices.insert(device, Entry { key, revoked_after: None, revocation_known: false });
        }
    }

    /// The verifying key of a known device, revoked or not (its earlier objects stay valid).
    pub(crate) fn key(&self, device: DeviceId) -> Option<VerifyingKey> {
        self.devices.get(&device).map(|entry| entry.key)
    }

    /// Whether `bytes` is an object of vault `vault_id` whose signature verifies with the key
    /// of the device its header names (any device known here, revoked ones included).
    pub(crate) fn signed_in_vault(&self, bytes: &[u8], vault_id: ferry_format::VaultId) -> bool {
        ferry_format::seal::Header::parse(bytes).is_ok_and(|header| {
            header.vault_id == vault_id
                && self
                    .key(header.device_id)
                    .is_some_and(|key| ferry_format::seal::verify_signature(bytes, &key).is_ok())
        })
    }

    pub(crate) fn contains(&self, device: DeviceId) -> bool {
        self.devices.contains_key(&device)
    }

    /// Whether a device may enroll, revoke and write: known and not revoked.
    pub(crate) fn is_active(&self, device: DeviceId) -> bool {
        self.devices.get(&device).is_some_and(|entry| entry.revoked_after.is_none())
    }

    /// Whether a revocation of the device has been verified here.
    pub(crate) fn has_revocation(&self, device: DeviceId) -> bool {
        self.devices.get(&device).is_some_and(|entry| entry.revocation_known)
    }

    /// For a revoked device, its last accepted segment.
    pub(crate) fn revoked_after(&self, device: DeviceId) -> Option<u64> {
        self.devices.get(&device).and_then(|entry| entry.revoked_after)
    }

    /// Whether a device enrolled under `epoch` is still a member: records sealed under the
    /// current epoch are; earlier ones only if the latest key epoch names the device (a device
    /// left out of a rotation has no key to it and must pair again).
    fn member_since(&self, device: DeviceId, epoch: u32, current: u32) -> bool {
        epoch == current || self.members.as_ref().is_none_or(|members| members.contains(&device))
    }

    pub(crate) fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices.keys().copied()
    }
}

/// A verified device record.
pub(crate) struct DeviceRecord {
    pub(crate) device_id: DeviceId,
    /// The sealed bytes, as published (kept for relaying).
    pub(crate) sealed: Vec<u8>,
    pub(crate) signing_public: [u8; 32],
    pub(crate) enrolled_by: DeviceId,
    /// The key epoch it was sealed under.
    pub(crate) epoch: u32,
    /// Whether it is a member of the current key epoch. A device left out of a rotation (a
    /// revoked one, or one enrolled with an old key) is known, so its earlier data can be
    /// checked, but nothing it wrote is accepted unless a revocation says up to where.
    pub(crate) member: bool,
    pub(crate) payload: DevicePayload,
}

/// Verifies a device record read from `devices/<subject>.dev`: sealed under a key this device
/// holds, signed by the subject itself (it enrolled with the passphrase or recovery phrase) or
/// by an active device (pairing). Whether it is still a member is in the result.
pub(crate) fn open_device_record(
    bytes: &[u8],
    subject: DeviceId,
    keys: &VaultKeys,
    registry: &Registry,
) -> Result<DeviceRecord, OpenError> {
    let header = seal::Header::parse(bytes)?;
    let expected = Expected { kind: ObjectKind::Device, vault_id: keys.vault_id, device_id: None, object_id: None };
    seal::check_identity(&header, &expected)?;
    let subject_key = VerifyingKey::from_bytes(&header.object_id.0).map_err(|_| OpenError::BadSignature)?;
    let signer_key = if header.device_id == subject {
        subject_key
    } else if registry.is_active(header.device_id) {
        registry.key(header.device_id).ok_or(OpenError::UnknownDevice(header.device_id))?
    } else if registry.contains(header.device_id) {
        return Err(OpenError::Malformed(format!("signed by {}, which is revoked", header.device_id)));
    } else {
        return Err(OpenError::UnknownDevice(header.device_id));
    };
    let plain = seal::open_with_key(bytes, &header, &signer_key, |epoch| keys.key(epoch))?;
    let payload: DevicePayload = decode(&plain).map_err(OpenError::Malformed)?;
    if DeviceId::from_bytes(payload.device_id) != subject {
        return Err(OpenError::WrongDevice { found: DeviceId::from_bytes(payload.device_id), expected: subject });
    }
    let member = registry.member_since(subject, header.epoch, keys.epoch);
    Ok(DeviceRecord {
        member,
        device_id: subject,
        sealed: bytes.to_vec(),
        signing_public: header.object_id.0,
        enrolled_by: header.device_id,
        epoch: header.epoch,
        payload,
    })
}

/// A verified revocation.
pub(crate) struct Revocation {
    pub(crate) sealed: Vec<u8>,
    pub(crate) revoked_by: DeviceId,
    /// The tag of the key epoch it starts (from its name, bound by its header).
    pub(crate) tag: [u8; 16],
    pub(crate) payload: RevocationPayload,
}

/// Verifies a revocation read from `devices/<subject>.<tag>.revoked`: signed by an active
/// device (the subject itself included), about the subject, sealed under a key this device
/// holds, starting the epoch after the one it is sealed under.
pub(crate) fn open_revocation(
    bytes: &[u8],
    subject: DeviceId,
    tag: [u8; 16],
    keys: &VaultKeys,
    registry: &Registry,
) -> Result<Revocation, OpenError> {
    let expected = Expected {
        kind: ObjectKind::Revocation,
        vault_id: keys.vault_id,
        device_id: None,
        object_id: Some(ObjectId::revocation(subject, &tag)),
    };
    let header = seal::Header::parse(bytes)?;
    seal::check_identity(&header, &expected)?;
    if !registry.is_active(header.device_id) && header.device_id != subject {
        return Err(if registry.contains(header.device_id) {
            OpenError::Malformed(format!("signed by {}, which is revoked", header.device_id))
        } else {
            OpenError::UnknownDevice(header.device_id)
        });
    }
    let signer = registry.key(header.device_id).ok_or(OpenError::UnknownDevice(header.device_id))?;
    let plain = seal::open_with_key(bytes, &header, &signer, |epoch| keys.key(epoch))?;
    let payload: RevocationPayload = decode(&plain).map_err(OpenError::Malformed)?;
    if DeviceId::from_bytes(payload.device_id) != subject {
        return Err(OpenError::WrongDevice { found: DeviceId::from_bytes(payload.device_id), expected: subject });
    }
    if payload.new_epoch != header.epoch + 1 {
        return Err(OpenError::Malformed(format!(
            "sealed under key epoch {} but starts epoch {}",
            header.epoch, payload.new_epoch
        )));
    }
    Ok(Revocation { sealed: bytes.to_vec(), revoked_by: header.device_id, tag, payload })
}

impl Revocation {
    /// The key epoch it starts.
    pub(crate) fn epoch(&self) -> EpochRef {
        EpochRef::tagged(self.payload.new_epoch, self.tag)
    }
}

/// Checks that the key epoch a revocation starts was begun by the revoker: the store's
/// `keys/<new_epoch>.<tag>/epoch` names the revoker as its writer and carries its signature.
/// The tag binds the two (it is in both names and both headers), so a device cannot revoke
/// with an epoch it did not start, and junk under other names changes nothing.
pub(crate) fn check_revocation_epoch(
    revocation: &Revocation,
    epoch_object: Option<&[u8]>,
    keys: &VaultKeys,
    registry: &Registry,
) -> Result<(), OpenError> {
    let epoch = revocation.epoch();
    let bytes = epoch_object
        .ok_or_else(|| OpenError::Malformed(format!("key epoch {epoch} it starts is missing (not yet visible?)")))?;
    let expected = Expected {
        kind: ObjectKind::KeyEpoch,
        vault_id: keys.vault_id,
        device_id: Some(revocation.revoked_by),
        object_id: Some(ObjectId::epoch(&epoch)),
    };
    seal::check_identity(&seal::Header::parse(bytes)?, &expected)
        .map_err(|_| OpenError::Malformed(format!("key epoch {epoch} was started by another device")))?;
    let key = registry.key(revocation.revoked_by).ok_or(OpenError::UnknownDevice(revocation.revoked_by))?;
    seal::verify_signature(bytes, &key)
}

impl Vault {
    /// Adds a verified device to the local registry (idempotent).
    pub(crate) fn register_device(&self, record: &DeviceRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO devices (device_id, name, signing_public, enrolled_ms, recipient, enrolled_by, record, record_epoch,
                                  revoked_last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (device_id) DO UPDATE SET record = coalesce(record, excluded.record)",
            params![
                &record.device_id.as_bytes()[..],
                record.payload.name,
                &record.signing_public[..],
                to_sql_u64(record.payload.enrolled_ms)?,
                record.payload.recipient,
                &record.enrolled_by.as_bytes()[..],
                record.sealed,
                record.epoch,
                (!record.member).then_some(0),
            ],
        )?;
        Ok(())
    }

    /// Marks a device revoked (idempotent: the first revocation stays).
    pub(crate) fn register_revocation(&self, subject: DeviceId, revocation: &Revocation) -> Result<()> {
        self.conn.execute(
            "UPDATE devices SET revoked_ms = ?2, revoked_by = ?3, revoked_last_seq = ?4, revocation = ?5,
                 revoked_new_epoch = ?6, revoked_epoch_tag = ?7
             WHERE device_id = ?1 AND revoked_ms IS NULL",
            params![
                &subject.as_bytes()[..],
                to_sql_u64(revocation.payload.revoked_ms)?,
                &revocation.revoked_by.as_bytes()[..],
                to_sql_u64(revocation.payload.last_seq)?,
                revocation.sealed,
                revocation.payload.new_epoch,
                &revocation.tag[..],
            ],
        )?;
        Ok(())
    }
}

/// The keys a device reads other devices' objects with: the registry's writers and the vault
/// keys it holds.
pub(crate) struct Trusted<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) keys: &'a VaultKeys,
}

impl ferry_format::typed::Keyring for Trusted<'_> {
    fn writer_key(&self, device: DeviceId) -> Option<VerifyingKey> {
        self.registry.key(device)
    }
    fn master_key(&self, epoch: u32) -> Option<&ferry_format::MasterKey> {
        self.keys.key(epoch)
    }
}

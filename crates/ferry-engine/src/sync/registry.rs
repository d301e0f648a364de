//! The device registry: which devices belong to the vault, and their keys.
//!
//! A device record (`devices/<id>.dev`) is sealed with the vault key, so only a holder of the
//! vault key can enroll a device, and signed by the enrolling device: by the device itself when
//! it enrolled with the passphrase or recovery slot, otherwise by a device already enrolled.

use crate::database::to_sql_u64;
use crate::identity::VaultKeys;
use crate::{Error, Result, Vault};
use ed25519_dalek::VerifyingKey;
use ferry_format::objects::{DevicePayload, decode};
use ferry_format::seal::{self, Expected, ObjectKind, OpenError};
use ferry_format::{DeviceId, MasterKey};
use rusqlite::{Connection, params};
use std::collections::HashMap;

/// The verifying keys of the devices this device knows.
#[derive(Default)]
pub(crate) struct Registry {
    keys: HashMap<DeviceId, VerifyingKey>,
}

impl Registry {
    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let mut stmt = conn.prepare_cached("SELECT device_id, signing_public FROM devices")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
        let mut keys = HashMap::new();
        for row in rows {
            let (id, key) = row?;
            let id = DeviceId::from_slice(&id).ok_or_else(|| Error::Corrupt("device registry: malformed id".into()))?;
            let key: [u8; 32] =
                key.as_slice().try_into().map_err(|_| Error::Corrupt(format!("device registry: key of {id}")))?;
            let key =
                VerifyingKey::from_bytes(&key).map_err(|_| Error::Corrupt(format!("device registry: key of {id}")))?;
            keys.insert(id, key);
        }
        Ok(Self { keys })
    }

    pub(crate) fn key(&self, device: DeviceId) -> Option<VerifyingKey> {
        self.keys.get(&device).copied()
    }

    pub(crate) fn contains(&self, device: DeviceId) -> bool {
        self.keys.contains_key(&device)
    }

    pub(crate) fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.keys.keys().copied()
    }
}

/// A verified device record.
pub(crate) struct DeviceRecord {
    pub(crate) device_id: DeviceId,
    /// The sealed bytes, as published (kept for relaying).
    pub(crate) sealed: Vec<u8>,
    pub(crate) signing_public: [u8; 32],
    pub(crate) enrolled_by: DeviceId,
    pub(crate) payload: DevicePayload,
}

/// Verifies a device record read from `devices/<subject>.dev`.
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
    } else {
        registry.key(header.device_id).ok_or(OpenError::UnknownDevice(header.device_id))?
    };
    let master: &MasterKey = &keys.master_key;
    let plain = seal::open_with_key(bytes, &header, &signer_key, |epoch| (epoch == keys.epoch).then_some(master))?;
    let payload: DevicePayload = decode(&plain).map_err(OpenError::Malformed)?;
    if DeviceId::from_bytes(payload.device_id) != subject {
        return Err(OpenError::WrongDevice { found: DeviceId::from_bytes(payload.device_id), expected: subject });
    }
    Ok(DeviceRecord {
        device_id: subject,
        sealed: bytes.to_vec(),
        signing_public: header.object_id.0,
        enrolled_by: header.device_id,
        payload,
    })
}

impl Vault {
    /// Adds a verified device to the local registry (idempotent).
    pub(crate) fn register_device(&self, record: &DeviceRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO devices (device_id, name, signing_public, enrolled_ms, recipient, enrolled_by, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (device_id) DO UPDATE SET record = coalesce(record, excluded.record)",
            params![
                &record.device_id.as_bytes()[..],
                record.payload.name,
                &record.signing_public[..],
                to_sql_u64(record.payload.enrolled_ms)?,
                record.payload.recipient,
                &record.enrolled_by.as_bytes()[..],
                record.sealed,
            ],
        )?;
        Ok(())
    }
}

//! Key epochs: revoking a device rotates the vault key, and every remaining device adopts the
//! new one.
//!
//! Revoking device R at epoch N picks a random tag T for epoch N+1 and publishes, in this order
//! (keys first, so a device that sees the revocation finds its key):
//! - `keys/N+1.T/<member>.age` for every remaining device, and `keys/N+1.T/recovery.age`;
//! - `keys/N+1.T/epoch`, sealed under the new key: the members, epoch N's key and tag (so
//!   holding the newest key gives every older one), the recovery recipient;
//! - `devices/R.T.revoked`, sealed under epoch N (R can read that it was revoked): R's last
//!   segment that stays accepted.
//!
//! Nobody knows T before the revocation is published, so nobody who can write to a store can
//! take these names first; the revoker reads its objects back and fails loudly if a name was
//! taken anyway (a race after publication began).
//!
//! The passphrase slot is not carried over: R may know the passphrase. `ferry key passphrase`
//! writes a new one.

use super::StoreHandle;
use super::registry::{Registry, Revocation};
use crate::database::{meta_get, meta_set};
use crate::identity::{DeviceKeys, VaultKeys};
use crate::write::now_ms;
use crate::{Error, Result, Vault, random};
use ed25519_dalek::VerifyingKey;
use ferry_format::objects::{ByteArray16, KeyEpochPayload, RevocationPayload, decode, paths};
use ferry_format::seal::{self, Expected, ObjectId, ObjectKind, OpenError, SealKeys};
use ferry_format::typed::Sealer;
use ferry_format::{DeviceId, EpochRef, MasterKey};
use ferry_store::Store;
use rusqlite::{OptionalExtension, params};

/// A verified `keys/<epoch>.<tag>/epoch` object.
pub(crate) struct EpochObject {
    pub(crate) epoch: EpochRef,
    /// The epoch before it (its key is `previous_key`).
    pub(crate) previous: EpochRef,
    pub(crate) sealed: Vec<u8>,
    pub(crate) members: Vec<DeviceId>,
    pub(crate) previous_key: MasterKey,
    /// The vault's recovery recipient, as the rotating device signed it.
    pub(crate) recovery_recipient: String,
}

/// What a revocation did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Revoked {
    /// The revoked device.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// The key epoch that began (the revoked device does not hold its key).
    pub new_epoch: u32,
    /// The devices the new key was wrapped to (this one included).
    pub members: u64,
    /// The revoked device's last segment that stays accepted.
    pub last_accepted_seq: u64,
}

/// Opens a key epoch object with that epoch's key, checking the signer with `signer_key`.
pub(crate) fn open_epoch_object(
    bytes: &[u8],
    epoch: EpochRef,
    vault_id: ferry_format::VaultId,
    key: &MasterKey,
    signer_key: impl FnOnce(DeviceId) -> Option<VerifyingKey>,
) -> Result<EpochObject, OpenError> {
    let expected =
        Expected { kind: ObjectKind::KeyEpoch, vault_id, device_id: None, object_id: Some(ObjectId::epoch(&epoch)) };
    let (_, plain) = seal::open(bytes, &expected, signer_key, |e| (e == epoch.number).then_some(key))?;
    let payload: KeyEpochPayload = decode(&plain).map_err(OpenError::Malformed)?;
    if payload.epoch != epoch.number {
        return Err(OpenError::Malformed(format!("says it starts epoch {}, stored as {epoch}", payload.epoch)));
    }
    let previous = EpochRef { number: epoch.number.saturating_sub(1), tag: payload.previous_tag.map(|tag| tag.0) };
    if epoch.number == 0 || (previous.number == 0) != previous.tag.is_none() {
        return Err(OpenError::Malformed(format!("names epoch {previous} before it: not a valid epoch")));
    }
    Ok(EpochObject {
        epoch,
        previous,
        sealed: bytes.to_vec(),
        members: payload.members.iter().map(|m| DeviceId::from_bytes(m.0)).collect(),
        previous_key: MasterKey::new(payload.previous_key),
        recovery_recipient: payload.recovery_recipient,
    })
}

/// Given the newest key (`keys` holds one epoch), reads the chain of key epoch objects from the
/// store down to epoch 0, adding every earlier key. Used when joining: the key came from a
/// secret only vault members have (passphrase, recovery phrase, pairing), and each object must
/// open under the key it names, so the store cannot forge one. Signatures are checked against
/// the signer's published key.
pub(crate) fn read_key_chain(store: &dyn Store, keys: &mut VaultKeys) -> Result<Vec<EpochObject>> {
    let mut objects = Vec::new();
    let location = store.location();
    let mut epoch = keys.current();
    while epoch.number > 0 {
        let path = paths::key_epoch(&epoch);
        let bad = |reason: String| Error::BadStoreObject { location: location.clone(), path: path.clone(), reason };
        let bytes = store.get(&path)?.ok_or_else(|| bad("missing: the store lacks part of the key history".into()))?;
        let header = seal::Header::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        let signer = published_signing_key(store, header.device_id)?;
        let key = keys.key(epoch.number).cloned().ok_or_else(|| bad("no key".into()))?;
        let object =
            open_epoch_object(&bytes, epoch, keys.vault_id, &key, |_| signer).map_err(|e| bad(e.to_string()))?;
        keys.add_earlier(object.previous, object.previous_key.clone());
        epoch = object.previous;
        objects.push(object);
    }
    Ok(objects)
}

/// Refuses to join at key epoch `keys.epoch` when the store holds a revocation sealed under it:
/// that revocation started a newer epoch, which the store does not show (it hides or lost it).
/// Joining at the older epoch would seal this device's writes with a key the revoked device
/// holds. (A store that hides the revocation too cannot be caught here; see SECURITY.md.)
pub(crate) fn refuse_hidden_newer_epoch(store: &dyn Store, keys: &VaultKeys) -> Result<()> {
    let Some(key) = keys.key(keys.epoch) else { return Ok(()) };
    for path in store.list(paths::DEVICES)? {
        if paths::parse_revocation(&path).is_none() {
            continue;
        }
        let Some(bytes) = store.get(&path)? else { continue };
        let Ok(header) = seal::Header::parse(&bytes) else { continue };
        if header.epoch != keys.epoch || header.vault_id != keys.vault_id {
            continue;
        }
        let Some(signer) = published_signing_key(store, header.device_id)? else { continue };
        if seal::open_with_key(&bytes, &header, &signer, |_| Some(key)).is_ok() {
            return Err(Error::BadStoreObject {
                location: store.location(),
                path,
                reason: format!(
                    "starts key epoch {}, which this store does not show (hidden, or not yet copied): \
                     join from a store that holds the whole key history, or pair from an active device",
                    keys.epoch + 1
                ),
            });
        }
    }
    Ok(())
}

/// The signing key a device's record in the store names (checked later, with the registry).
fn published_signing_key(store: &dyn Store, device: DeviceId) -> Result<Option<VerifyingKey>> {
    let Some(record) = store.get(&paths::device_record(device))? else { return Ok(None) };
    Ok(seal::Header::parse(&record).ok().and_then(|header| VerifyingKey::from_bytes(&header.object_id.0).ok()))
}

/// Saves verified key epoch objects (and their members) next to their keys.
pub(crate) fn save_epoch_objects(conn: &rusqlite::Connection, objects: &[EpochObject]) -> Result<()> {
    for object in objects {
        let members: Vec<u8> = object.members.iter().flat_map(|m| *m.as_bytes()).collect();
        conn.execute(
            "UPDATE key_epochs SET object = ?2, members = ?3, tag = ?4 WHERE epoch = ?1",
            params![object.epoch.number, object.sealed, members, object.epoch.tag.map(|tag| tag.to_vec())],
        )?;
    }
    Ok(())
}

/// A rotation that revokes a device, sealed and not yet adopted.
struct Rotation {
    new_key: MasterKey,
    epoch: EpochObject,
    revocation: Revocation,
    /// Every object to publish: key slots, the epoch object, the revocation.
    objects: Vec<(String, Vec<u8>)>,
}

impl Vault {
    /// Revokes a device (by id or unique id prefix): wraps a new key epoch to every other
    /// device and the recovery key, and queues the objects for every store. From now on this
    /// device seals with the new key; the revoked device cannot read what is written with it,
    /// and its segments after the last one this device imported are rejected by every device.
    ///
    /// Pull first: the new key goes to the devices this device knows, and a device it has not
    /// heard of yet would be left out (it would have to pair again).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], [`Error::CannotRevoke`] (this device, or revoked already),
    /// [`Error::Revoked`] (this device is revoked itself), local failures.
    pub fn revoke_device(&mut self, device: &str) -> Result<Revoked> {
        self.ensure_not_revoked()?;
        let target = self.resolve_device(device)?;
        if target == self.device_id() {
            return Err(Error::CannotRevoke("a device cannot revoke itself".into()));
        }
        let registry = Registry::load(&self.conn)?;
        if registry.has_revocation(target) {
            return Err(Error::CannotRevoke(format!("device {target} is revoked already")));
        }
        // A device left out of a rotation (or planted with an old key) is inactive but not yet
        // revoked: revoking it records that for good, so no later rule can take it back in.
        let members = self.members_after(target, &registry)?;
        let last_seq: u64 = self.cursor(target)?.0;
        let rotation = self.seal_rotation(target, &members, last_seq)?;
        let new_epoch = rotation.epoch.epoch.number;
        let name: String =
            self.conn.query_row("SELECT name FROM devices WHERE device_id = ?1", [&target.as_bytes()[..]], |row| {
                row.get(0)
            })?;
        self.commit_rotation(target, rotation)?;
        Ok(Revoked {
            device_id: target.to_string(),
            name,
            new_epoch,
            members: members.len() as u64,
            last_accepted_seq: last_seq,
        })
    }

    /// The devices that receive the key of a rotation revoking `target`: the active ones
    /// (`Registry::is_active`, the one definition), but `target`, with their age recipients. A
    /// device known but inactive (left out of a rotation, or a record planted under an old key)
    /// never receives a new key.
    fn members_after(&self, target: DeviceId, registry: &Registry) -> Result<Vec<(DeviceId, age::x25519::Recipient)>> {
        let mut stmt = self.conn.prepare("SELECT device_id, recipient FROM devices WHERE revoked_last_seq IS NULL")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?)))?;
        let mut members = Vec::new();
        for row in rows {
            let (id, recipient) = row?;
            let id = DeviceId::from_slice(&id).ok_or_else(|| Error::Corrupt("device registry: malformed id".into()))?;
            if id != target && registry.is_active(id) {
                let recipient: age::x25519::Recipient =
                    recipient.parse().map_err(|e: &str| Error::Corrupt(format!("recipient of device {id}: {e}")))?;
                members.push((id, recipient));
            }
        }
        Ok(members)
    }

    /// Makes the objects of a rotation revoking `target`: a new key under a fresh tag, wrapped
    /// to each member and the recovery key; the epoch object (sealed under the new key, carrying
    /// the previous one); the revocation (sealed under the current key). Nothing is stored yet.
    fn seal_rotation(
        &self,
        target: DeviceId,
        members: &[(DeviceId, age::x25519::Recipient)],
        last_seq: u64,
    ) -> Result<Rotation> {
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let new_epoch = keys.epoch + 1;
        let tag: [u8; 16] = random::bytes()?;
        let new_ref = EpochRef::tagged(new_epoch, tag);
        let new_key = MasterKey::new(random::bytes()?);
        let now = now_ms();

        let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
        for (member, recipient) in members {
            objects
                .push((paths::key_slot(&new_ref, &member.to_string()), super::enroll::wrap_key(recipient, &new_key)?));
        }
        let recovery: String = meta_get(&self.conn, "recovery_recipient")?;
        let recovery: age::x25519::Recipient =
            recovery.parse().map_err(|e: &str| Error::Corrupt(format!("recovery recipient: {e}")))?;
        objects.push((paths::key_slot(&new_ref, "recovery"), super::enroll::wrap_key(&recovery, &new_key)?));

        let mut member_ids: Vec<ByteArray16> = members.iter().map(|(id, _)| ByteArray16(*id.as_bytes())).collect();
        member_ids.sort();
        let epoch_payload = KeyEpochPayload {
            epoch: new_epoch,
            previous_key: *keys.master_key.expose(),
            previous_tag: keys.current().tag.map(ByteArray16),
            members: member_ids,
            created_ms: now,
            recovery_recipient: recovery.to_string(),
        };
        // The epoch object is sealed under the new key; the revocation under the current one.
        let under_new_key = Sealer {
            vault: keys.vault_id,
            writer: self.device_id(),
            keys: SealKeys { epoch: new_epoch, master_key: &new_key, signing_key: device_keys.signing_key() },
        };
        let epoch_object = under_new_key
            .seal(ObjectId::epoch(&new_ref), random::bytes()?, &epoch_payload)
            .map_err(|e| Error::Encode(e.to_string()))?;
        objects.push((paths::key_epoch(&new_ref), epoch_object.clone()));

        let revocation_payload =
            RevocationPayload { device_id: *target.as_bytes(), revoked_ms: now, new_epoch, last_seq };
        let revocation = keys
            .sealer(self.device_id(), &device_keys)
            .seal(ObjectId::revocation(target, &tag), random::bytes()?, &revocation_payload)
            .map_err(|e| Error::Encode(e.to_string()))?;
        objects.push((paths::revocation(target, &tag), revocation.clone()));
        let epoch = EpochObject {
            epoch: new_ref,
            previous: keys.current(),
            sealed: epoch_object,
            members: members.iter().map(|(id, _)| *id).collect(),
            previous_key: keys.master_key.clone(),
            recovery_recipient: recovery.to_string(),
        };
        let revocation =
            Revocation { sealed: revocation, revoked_by: self.device_id(), tag, payload: revocation_payload };
        Ok(Rotation { new_key, epoch, revocation, objects })
    }

    /// Adopts a rotation here (new key, epoch object, revocation) and queues its objects for
    /// every store, in one transaction.
    fn commit_rotation(&mut self, target: DeviceId, rotation: Rotation) -> Result<()> {
        let Rotation { new_key, epoch, revocation, objects } = rotation;
        let (number, tag) = (epoch.epoch.number, epoch.epoch.tag);
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO key_epochs (epoch, master_key, tag) VALUES (?1, ?2, ?3)",
            params![number, &new_key.expose()[..], tag.as_ref().map(|t| &t[..])],
        )?;
        save_epoch_objects(&tx, &[epoch])?;
        meta_set(&tx, "key_epoch", number)?;
        self.register_revocation(target, &revocation)?;
        self.queue_for_stores(&objects, None)?;
        tx.commit()?;
        Ok(())
    }

    /// Queues objects for every store but `except` (objects already there are kept as they are).
    pub(crate) fn queue_for_stores(&self, objects: &[(String, Vec<u8>)], except: Option<crate::StoreId>) -> Result<()> {
        for store in self.stores()? {
            if Some(store.id) == except {
                continue;
            }
            for (path, bytes) in objects {
                self.conn.execute(
                    "INSERT INTO store_outbox (store, path, bytes) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![store.id, path, bytes],
                )?;
            }
        }
        Ok(())
    }

    /// Adopts key epochs newer than this device's that a revocation announced: reads this
    /// device's slot, checks the epoch object (signed by an active device, naming this device,
    /// chained to the key before), and seals with the new key from then on. Also queues the
    /// epoch's objects for this device's other stores, so the rotation crosses stores.
    pub(crate) fn adopt_epochs(&mut self, handle: StoreHandle<'_>, report: &mut super::PullReport) -> Result<()> {
        let announced = self.announced_epochs()?;
        let Some(&newest) = announced.keys().next_back() else { return Ok(()) };
        let me = self.device_id();
        if self.revoked_by()?.is_some() {
            return Ok(()); // not a member of any later epoch
        }
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let recovery_recipient: String = meta_get(&self.conn, "recovery_recipient")?;
        let mut current = keys.master_key.clone();
        let mut previous = keys.current();
        for number in keys.epoch + 1..=newest {
            let Some(&tag) = announced.get(&number) else {
                let path = format!("keys/{number}.…/");
                let reason = format!("no revocation this device accepted starts key epoch {number} (not yet visible?)");
                return self.record_skip(handle.id, &path, &reason, report);
            };
            let epoch = EpochRef::tagged(number, tag);
            let slot_path = paths::key_slot(&epoch, &me.to_string());
            let Some(slot) = handle.store.get(&slot_path)? else {
                let reason = format!(
                    "no key slot for this device in key epoch {number}: it was not a member when the key rotated; pair it again"
                );
                return self.record_skip(handle.id, &slot_path, &reason, report);
            };
            let key = match age::decrypt(device_keys.agreement(), &slot) {
                Ok(key) => match <[u8; 32]>::try_from(key.as_slice()) {
                    Ok(key) => MasterKey::new(key),
                    Err(_) => return self.record_skip(handle.id, &slot_path, "does not hold a 32-byte key", report),
                },
                Err(_) => {
                    return self.record_skip(handle.id, &slot_path, "does not open with this device's key", report);
                }
            };
            let epoch_path = paths::key_epoch(&epoch);
            let Some(bytes) = handle.store.get(&epoch_path)? else {
                return self.record_skip(handle.id, &epoch_path, "missing (not yet visible in the store?)", report);
            };
            let registry = Registry::load(&self.conn)?;
            let opened = open_epoch_object(&bytes, epoch, keys.vault_id, &key, |d| {
                registry.is_active(d).then(|| registry.key(d)).flatten()
            })
            .and_then(|object| {
                if object.previous_key != current || object.previous != previous {
                    Err(OpenError::Malformed(format!("does not chain to key epoch {previous}")))
                } else if !object.members.contains(&me) {
                    Err(OpenError::Malformed("does not name this device as a member".into()))
                } else if object.recovery_recipient != recovery_recipient {
                    Err(OpenError::Malformed("names another recovery key than this vault's".into()))
                } else {
                    Ok(object)
                }
            });
            let object = match opened {
                Ok(object) => object,
                Err(reason) => return self.record_skip(handle.id, &epoch_path, &reason.to_string(), report),
            };
            let mut carried = vec![(epoch_path.clone(), bytes)];
            for path in handle.store.list(&format!("keys/{epoch}/"))? {
                if path != epoch_path
                    && let Some(bytes) = handle.store.get(&path)?
                {
                    carried.push((path, bytes));
                }
            }
            let tx = self.conn.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO key_epochs (epoch, master_key, tag) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![number, &key.expose()[..], &tag[..]],
            )?;
            save_epoch_objects(&tx, std::slice::from_ref(&object))?;
            meta_set(&tx, "key_epoch", number)?;
            self.queue_for_stores(&carried, Some(handle.id))?;
            tx.commit()?;
            report.adopted_epoch = Some(number);
            current = key;
            previous = epoch;
        }
        Ok(())
    }

    /// The key epochs that accepted revocations started: number → tag.
    pub(crate) fn announced_epochs(&self) -> Result<std::collections::BTreeMap<u32, [u8; 16]>> {
        let mut stmt = self.conn.prepare(
            "SELECT revoked_new_epoch, revoked_epoch_tag FROM devices
             WHERE revoked_new_epoch IS NOT NULL AND revoked_epoch_tag IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
        let mut announced = std::collections::BTreeMap::new();
        for row in rows {
            let (number, tag) = row?;
            let tag: [u8; 16] =
                tag.as_slice().try_into().map_err(|_| Error::Corrupt(format!("tag of key epoch {number}")))?;
            announced.entry(number).or_insert(tag);
        }
        Ok(announced)
    }

    /// Resolves a device id or unique prefix of one.
    pub(crate) fn resolve_device(&self, text: &str) -> Result<DeviceId> {
        let text = text.trim().to_ascii_lowercase();
        if text.len() < 4 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::UnknownDevice(text));
        }
        let mut stmt = self.conn.prepare("SELECT device_id FROM devices")?;
        let ids: Vec<Vec<u8>> = stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
        let mut matches =
            ids.iter().filter_map(|id| DeviceId::from_slice(id)).filter(|id| id.to_string().starts_with(&text));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => {
                Err(Error::CannotRevoke(format!("`{text}` names several devices: give more of the id")))
            }
            _ => Err(Error::UnknownDevice(text)),
        }
    }

    /// Who revoked this device, and when, if it was.
    pub(crate) fn revoked_by(&self) -> Result<Option<(DeviceId, u64)>> {
        let row: Option<(Option<Vec<u8>>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT revoked_by, revoked_ms FROM devices WHERE device_id = ?1",
                [&self.device_id().as_bytes()[..]],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((Some(by), Some(at))) => DeviceId::from_slice(&by).map(|by| (by, u64::try_from(at).unwrap_or(0))),
            _ => None,
        })
    }

    /// Refuses to act for a revoked device.
    pub(crate) fn ensure_not_revoked(&self) -> Result<()> {
        match self.revoked_by()? {
            None => Ok(()),
            Some((by, at)) => Err(Error::Revoked { by: by.to_string(), at: crate::time::rfc3339(at) }),
        }
    }
}

//! This device's keys and the vault's keys, as kept in the encrypted local database.

use crate::database::{meta_get, meta_set};
use crate::{Error, Result, random};
use age::secrecy::{ExposeSecret, SecretString};
use ed25519_dalek::SigningKey;
use ferry_format::{DeviceId, EpochRef, Fingerprint, MasterKey, RecoveryPhrase, VaultId};
use rusqlite::Connection;
use std::collections::BTreeMap;

/// The secret keys of this device: Ed25519 for signing, X25519 (an age identity) for receiving
/// wrapped vault keys.
pub(crate) struct DeviceKeys {
    signing: SigningKey,
    agreement: age::x25519::Identity,
}

impl DeviceKeys {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self { signing: SigningKey::from_bytes(&random::bytes()?), agreement: age::x25519::Identity::generate() })
    }

    pub(crate) fn signing_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub(crate) fn recipient(&self) -> String {
        self.agreement.to_public().to_string()
    }

    pub(crate) fn agreement(&self) -> &age::x25519::Identity {
        &self.agreement
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_device_key(&self.signing_public())
    }

    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        meta_set(conn, "device_signing_key", &self.signing.to_bytes()[..])?;
        meta_set(conn, "device_agreement_key", self.agreement.to_string().expose_secret())?;
        meta_set(conn, "device_recipient", self.agreement.to_public().to_string())
    }

    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let signing: Vec<u8> = meta_get(conn, "device_signing_key")?;
        let signing: [u8; 32] = signing
            .as_slice()
            .try_into()
            .map_err(|_| Error::Corrupt("device signing key has the wrong length".into()))?;
        let agreement: String = meta_get(conn, "device_agreement_key")?;
        let agreement = agreement
            .parse::<age::x25519::Identity>()
            .map_err(|e| Error::Corrupt(format!("device agreement key: {e}")))?;
        Ok(Self { signing: SigningKey::from_bytes(&signing), agreement })
    }
}

/// The age identity that the recovery phrase stands for. Only its public recipient is kept on
/// devices, so new key epochs can be wrapped to it without the phrase.
pub(crate) fn recovery_identity(phrase: &RecoveryPhrase) -> Result<age::x25519::Identity> {
    let hrp = bech32::Hrp::parse("AGE-SECRET-KEY-").map_err(|e| Error::Encode(e.to_string()))?;
    let encoded = bech32::encode_upper::<bech32::Bech32>(hrp, phrase.recovery_secret().expose())
        .map_err(|e| Error::Encode(e.to_string()))?;
    SecretString::from(encoded)
        .expose_secret()
        .parse()
        .map_err(|e: &str| Error::Corrupt(format!("recovery identity: {e}")))
}

/// The vault's identity and keys, as this device holds them: the current epoch's key seals,
/// every epoch's key opens.
pub(crate) struct VaultKeys {
    pub(crate) vault_id: VaultId,
    /// The current epoch: what this device seals with.
    pub(crate) epoch: u32,
    pub(crate) master_key: MasterKey,
    /// Every epoch's key, the current one included.
    all: BTreeMap<u32, MasterKey>,
    /// The tag of every epoch after the first (see [`EpochRef`]).
    tags: BTreeMap<u32, [u8; 16]>,
}

impl VaultKeys {
    /// Keys of one epoch only (a new vault, or before the earlier epochs are read).
    pub(crate) fn single(vault_id: VaultId, epoch: EpochRef, master_key: MasterKey) -> Self {
        let mut keys = Self {
            vault_id,
            epoch: epoch.number,
            all: BTreeMap::from([(epoch.number, master_key.clone())]),
            master_key,
            tags: BTreeMap::new(),
        };
        if let Some(tag) = epoch.tag {
            keys.tags.insert(epoch.number, tag);
        }
        keys
    }

    /// Adds an earlier epoch's key (read from the chain of key epochs).
    pub(crate) fn add_earlier(&mut self, epoch: EpochRef, key: MasterKey) {
        self.all.entry(epoch.number).or_insert(key);
        if let Some(tag) = epoch.tag {
            self.tags.entry(epoch.number).or_insert(tag);
        }
    }

    /// The epoch this device seals with, as stores name it.
    pub(crate) fn current(&self) -> EpochRef {
        EpochRef { number: self.epoch, tag: self.tags.get(&self.epoch).copied() }
    }

    /// Epoch `number` as stores name it, if this device holds it.
    pub(crate) fn epoch_ref(&self, number: u32) -> Option<EpochRef> {
        self.all.contains_key(&number).then(|| EpochRef { number, tag: self.tags.get(&number).copied() })
    }

    /// The key of `epoch`, if this device holds it.
    pub(crate) fn key(&self, epoch: u32) -> Option<&MasterKey> {
        self.all.get(&epoch)
    }

    /// The epochs held, oldest first, with their keys.
    pub(crate) fn epochs(&self) -> impl Iterator<Item = (u32, &MasterKey)> {
        self.all.iter().map(|(epoch, key)| (*epoch, key))
    }

    /// The first epoch's key: it names the vault (its fingerprint is the vault fingerprint) and
    /// keys blob ids, which must not change when the key rotates.
    pub(crate) fn first(&self) -> &MasterKey {
        self.all.values().next().unwrap_or(&self.master_key)
    }

    /// The vault fingerprint people compare: of the first epoch's key.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.first().fingerprint()
    }

    /// Saves every epoch (the current one last) and makes the current one current.
    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        meta_set(conn, "vault_id", &self.vault_id.as_bytes()[..])?;
        for (epoch, key) in self.epochs() {
            conn.execute(
                "INSERT INTO key_epochs (epoch, master_key, tag) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                rusqlite::params![epoch, &key.expose()[..], self.tags.get(&epoch).map(|tag| &tag[..])],
            )?;
        }
        meta_set(conn, "key_epoch", self.epoch)
    }

    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let vault_id: Vec<u8> = meta_get(conn, "vault_id")?;
        let vault_id =
            VaultId::from_slice(&vault_id).ok_or_else(|| Error::Corrupt("vault id has the wrong length".into()))?;
        let epoch: u32 = meta_get(conn, "key_epoch")?;
        let mut stmt = conn.prepare_cached("SELECT epoch, master_key, tag FROM key_epochs")?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, Option<Vec<u8>>>(2)?))
        })?;
        let mut all = BTreeMap::new();
        let mut tags = BTreeMap::new();
        for row in rows {
            let (epoch, key, tag) = row?;
            if let Some(tag) = tag {
                let tag: [u8; 16] = tag
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Corrupt(format!("tag of key epoch {epoch} has the wrong length")))?;
                tags.insert(epoch, tag);
            }
            let key: [u8; 32] = key
                .as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt(format!("master key of epoch {epoch} has the wrong length")))?;
            all.insert(epoch, MasterKey::new(key));
        }
        let master_key =
            all.get(&epoch).cloned().ok_or_else(|| Error::Corrupt(format!("the key of epoch {epoch} is missing")))?;
        Ok(Self { vault_id, epoch, master_key, all, tags })
    }

    /// The keys to seal with, for this device.
    /// Seals as `writer` (this device, whose keys are `device`) under the current epoch.
    pub(crate) fn sealer<'a>(&'a self, writer: DeviceId, device: &'a DeviceKeys) -> ferry_format::typed::Sealer<'a> {
        ferry_format::typed::Sealer { vault: self.vault_id, writer, keys: self.sealing(device) }
    }

    /// Where an object of this vault written by `writer` (if the path names one) as `id` is.
    pub(crate) fn named(
        &self,
        writer: Option<DeviceId>,
        id: Option<ferry_format::seal::ObjectId>,
    ) -> ferry_format::typed::Named {
        ferry_format::typed::Named { vault: self.vault_id, writer, id }
    }

    pub(crate) fn sealing<'a>(&'a self, device: &'a DeviceKeys) -> ferry_format::seal::SealKeys<'a> {
        ferry_format::seal::SealKeys {
            epoch: self.epoch,
            master_key: &self.master_key,
            signing_key: device.signing_key(),
        }
    }
}

/// Reads this device's id.
pub(crate) fn load_device_id(conn: &Connection) -> Result<DeviceId> {
    let bytes: Vec<u8> = meta_get(conn, "device_id")?;
    DeviceId::from_slice(&bytes).ok_or_else(|| Error::Corrupt("device id has the wrong length".into()))
}

/// The keys for reading this device's own objects back: its own verifying key only.
pub(crate) struct OwnKeys<'a> {
    pub(crate) key: ed25519_dalek::VerifyingKey,
    pub(crate) vault: &'a VaultKeys,
}

impl ferry_format::typed::Keyring for OwnKeys<'_> {
    fn writer_key(&self, _device: DeviceId) -> Option<ed25519_dalek::VerifyingKey> {
        Some(self.key)
    }
    fn master_key(&self, epoch: u32) -> Option<&ferry_format::MasterKey> {
        self.vault.key(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_identity_is_a_pure_function_of_the_phrase() {
        let phrase = RecoveryPhrase::from_entropy([4; 32]);
        let a = recovery_identity(&phrase).unwrap().to_public().to_string();
        let b = recovery_identity(&RecoveryPhrase::parse(&phrase.to_words()).unwrap()).unwrap().to_public().to_string();
        assert_eq!(a, b);
        assert!(a.starts_with("age1"));
        let other = recovery_identity(&RecoveryPhrase::from_entropy([5; 32])).unwrap().to_public().to_string();
        assert_ne!(a, other);
    }

    #[test]
    fn recovery_recipient_can_be_decrypted_with_the_phrase() {
        let phrase = RecoveryPhrase::from_entropy([6; 32]);
        let recipient = recovery_identity(&phrase).unwrap().to_public();
        let wrapped = age::encrypt(&recipient, b"master key").unwrap();
        let identity = recovery_identity(&RecoveryPhrase::parse(&phrase.to_words()).unwrap()).unwrap();
        assert_eq!(age::decrypt(&identity, &wrapped).unwrap(), b"master key");
    }
}

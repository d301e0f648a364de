//! This device's keys and the vault's keys, as kept in the encrypted local database.

use crate::database::{meta_get, meta_set};
use crate::{Error, Result, random};
use age::secrecy::{ExposeSecret, SecretString};
use ed25519_dalek::SigningKey;
use ferry_format::{DeviceId, Fingerprint, MasterKey, RecoveryPhrase, VaultId};
use rusqlite::Connection;

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
    let hrp = bech32::Hrp::parse("AGE-SECRET-KEY-").map_err(|e| Error::Corrupt(e.to_string()))?;
    let encoded = bech32::encode_upper::<bech32::Bech32>(hrp, phrase.recovery_secret().expose())
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    SecretString::from(encoded)
        .expose_secret()
        .parse()
        .map_err(|e: &str| Error::Corrupt(format!("recovery identity: {e}")))
}

/// The vault's identity and current key, as this device holds them.
pub(crate) struct VaultKeys {
    pub(crate) vault_id: VaultId,
    pub(crate) epoch: u32,
    pub(crate) master_key: MasterKey,
}

impl VaultKeys {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self {
            vault_id: VaultId::from_bytes(random::bytes()?),
            epoch: 0,
            master_key: MasterKey::new(random::bytes()?),
        })
    }

    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        meta_set(conn, "vault_id", &self.vault_id.as_bytes()[..])?;
        meta_set(conn, "key_epoch", self.epoch)?;
        conn.execute(
            "INSERT INTO key_epochs (epoch, master_key) VALUES (?1, ?2)",
            rusqlite::params![self.epoch, &self.master_key.expose()[..]],
        )?;
        Ok(())
    }

    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let vault_id: Vec<u8> = meta_get(conn, "vault_id")?;
        let vault_id =
            VaultId::from_slice(&vault_id).ok_or_else(|| Error::Corrupt("vault id has the wrong length".into()))?;
        let epoch: u32 = meta_get(conn, "key_epoch")?;
        let key: Vec<u8> =
            conn.query_row("SELECT master_key FROM key_epochs WHERE epoch = ?1", [epoch], |row| row.get(0))?;
        let key: [u8; 32] =
            key.as_slice().try_into().map_err(|_| Error::Corrupt("master key has the wrong length".into()))?;
        Ok(Self { vault_id, epoch, master_key: MasterKey::new(key) })
    }
}

/// Reads this device's id.
pub(crate) fn load_device_id(conn: &Connection) -> Result<DeviceId> {
    let bytes: Vec<u8> = meta_get(conn, "device_id")?;
    DeviceId::from_slice(&bytes).ok_or_else(|| Error::Corrupt("device id has the wrong length".into()))
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

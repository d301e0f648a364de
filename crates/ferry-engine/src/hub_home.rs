//! A hub's home: the key a hub (`ferry serve --hub`) is known by, kept like a device's
//! database key.
//!
//! ```text
//! <hub home>/hub-key.age   the hub's Ed25519 TLS key, age-encrypted to the passphrase (scrypt)
//! <hub home>/hub-key.pub   its public half (hex), to recognise a stale keychain entry
//! ```
//! A hub holds no vault key, only this TLS identity; the objects it stores and its list of
//! pinned devices live next to it (see `ferry-net`). **The key is never written in plaintext**:
//! the OS keychain may keep it (as for a device) so an unattended hub starts without a prompt.

use crate::unlock::LocalKey;
use crate::{Error, Home, Result, Unlock};
use ed25519_dalek::SigningKey;
use ferry_format::SecretBytes;
use std::path::PathBuf;

/// The files of a hub home (a directory of its own, never a device's home).
#[derive(Clone, Debug)]
pub struct HubHome {
    home: Home,
}

impl HubHome {
    /// The hub home at `home`.
    pub fn new(home: Home) -> Self {
        Self { home }
    }

    /// The directory.
    pub fn root(&self) -> &std::path::Path {
        self.home.root()
    }

    fn key_file(&self) -> PathBuf {
        self.home.root().join("hub-key.age")
    }

    fn public_file(&self) -> PathBuf {
        self.home.root().join("hub-key.pub")
    }

    /// Whether a hub key was made here.
    pub fn exists(&self) -> bool {
        self.key_file().exists()
    }

    /// Makes the hub's key, wrapped to the passphrase in `unlock`. Refuses a home that holds a
    /// hub key or a device's vault already.
    ///
    /// # Errors
    /// The home is taken, or a file cannot be written.
    pub fn create(&self, unlock: &Unlock) -> Result<SecretBytes> {
        if self.exists() || self.home.has_vault() {
            return Err(Error::AlreadyInitialized { home: self.root().to_owned() });
        }
        self.home.create_dir()?;
        let key = LocalKey::generate()?;
        key.write_wrapped(&self.key_file(), unlock)?;
        crate::home::write_atomically(&self.public_file(), public_hex(&key).as_bytes())?;
        Ok(SecretBytes::new(*key.bytes()))
    }

    /// Unwraps the hub's key with the passphrase.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`], or a damaged key file.
    pub fn open(&self, unlock: &Unlock) -> Result<SecretBytes> {
        let key = LocalKey::read_wrapped(&self.key_file(), self.root(), unlock)?;
        Ok(SecretBytes::new(*key.bytes()))
    }

    /// The hub's key from the OS keychain, if it is there and is this hub's (a stale entry
    /// left by an earlier hub in the same directory is ignored).
    pub fn open_from_keychain(&self) -> Option<SecretBytes> {
        let crate::keychain::Lookup::Found(key) = crate::keychain::lookup(&self.home) else { return None };
        let expected = std::fs::read_to_string(self.public_file()).ok()?;
        (expected.trim() == public_hex(&key)).then(|| SecretBytes::new(*key.bytes()))
    }

    /// Keeps the hub's key in the OS keychain, so the hub starts without a passphrase.
    ///
    /// # Errors
    /// [`Error::KeychainUnavailable`].
    pub fn remember_in_keychain(&self, key: &SecretBytes) -> Result<()> {
        let key = LocalKey::from_slice(key.expose()).ok_or_else(|| Error::Corrupt("a hub key is 32 bytes".into()))?;
        crate::keychain::store(&self.home, &key)
    }
}

fn public_hex(key: &LocalKey) -> String {
    hex::encode(SigningKey::from_bytes(key.bytes()).verifying_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KdfCost, Passphrase};

    fn unlock(passphrase: &str) -> Unlock {
        Unlock { passphrase: Passphrase::new(passphrase), kdf_cost: KdfCost::WorkFactor(4) }
    }

    #[test]
    fn a_hub_key_is_kept_only_wrapped_and_opens_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let hub = HubHome::new(Home::new(dir.path().join("hub")));
        assert!(!hub.exists());
        let key = hub.create(&unlock("hub pass")).unwrap();
        assert!(hub.exists());
        assert_eq!(hub.open(&unlock("hub pass")).unwrap().expose(), key.expose());
        assert!(matches!(hub.open(&unlock("wrong")), Err(Error::WrongPassphrase { .. })));
        assert!(matches!(hub.create(&unlock("again")), Err(Error::AlreadyInitialized { .. })));
        for entry in std::fs::read_dir(hub.root()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(32).any(|w| w == key.expose()), "the key must not be on disk in plaintext");
            assert!(!String::from_utf8_lossy(&bytes).contains(&hex::encode(key.expose())));
        }
    }
}

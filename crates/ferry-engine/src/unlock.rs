//! Unlocking the local database: the random database key and the passphrase that wraps it.
//!
//! The SQLCipher database is keyed with 32 random bytes (the *local key*), never with the
//! passphrase itself: changing the passphrase rewraps 32 bytes instead of re-encrypting the
//! database, and the key has full entropy whatever the passphrase. The local key is stored
//! only age-encrypted to the passphrase (scrypt) in `local-key.age`; **no key is ever
//! written in plaintext**.

use crate::home::write_atomically;
use crate::{Error, Result};
use age::secrecy::SecretString;
use ferry_format::SecretBytes;
use std::fmt;
use std::path::Path;

/// A passphrase typed by the user or produced by their passphrase command. Redacted in `Debug`.
#[derive(Clone)]
pub struct Passphrase(SecretString);

impl Passphrase {
    /// Wraps a passphrase.
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self(SecretString::from(passphrase.into()))
    }

    /// Wraps a passphrase held in a buffer that is zeroed when dropped, without copying it.
    pub fn from_zeroizing(mut passphrase: zeroize::Zeroizing<String>) -> Self {
        Self(SecretString::from(std::mem::take(&mut *passphrase)))
    }

    pub(crate) fn secret(&self) -> SecretString {
        self.0.clone()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// How expensive the passphrase key derivation (scrypt, r = 8) is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KdfCost {
    /// `N = 2^17`: 128 MiB and a few hundred milliseconds per unlock. Every CLI command
    /// unlocks, so age's own calibration (about 2^20 and over a second here, 1 GiB of memory)
    /// would make each command slow; 2^17 is still eight times scrypt's interactive-login cost.
    #[default]
    Standard,
    /// scrypt with `N = 2^log_n`; values below 17 are only for tests.
    WorkFactor(u8),
}

impl KdfCost {
    /// The scrypt work factor `log2(N)`.
    pub fn log_n(self) -> u8 {
        match self {
            Self::Standard => 17,
            Self::WorkFactor(log_n) => log_n.clamp(1, 63),
        }
    }
}

/// How to unlock the local database.
#[derive(Clone, Debug)]
pub struct Unlock {
    /// The passphrase that wraps the local key.
    pub passphrase: Passphrase,
    /// The cost of deriving a key from it, when a new wrapping is written.
    pub kdf_cost: KdfCost,
}

impl Unlock {
    /// Unlock with a passphrase at the standard cost.
    pub fn with_passphrase(passphrase: Passphrase) -> Self {
        Self { passphrase, kdf_cost: KdfCost::Standard }
    }
}

/// The random key of the local database (redacted in `Debug`).
#[derive(Debug, Clone)]
pub(crate) struct LocalKey(SecretBytes);

impl LocalKey {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self(SecretBytes::new(crate::random::bytes()?)))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(SecretBytes::new(bytes.try_into().ok()?)))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// The SQLCipher raw-key literal `x'…'` (raw keys skip SQLCipher's own passphrase KDF).
    pub(crate) fn sqlcipher_literal(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!("\"x'{}'\"", hex::encode(self.0.expose())))
    }

    /// Wraps the key to the passphrase and writes it to `path`.
    pub(crate) fn write_wrapped(&self, path: &Path, unlock: &Unlock) -> Result<()> {
        let mut recipient = age::scrypt::Recipient::new(unlock.passphrase.secret());
        recipient.set_work_factor(unlock.kdf_cost.log_n());
        let wrapped = age::encrypt(&recipient, self.0.expose())
            .map_err(|e| Error::KeyFile { path: path.to_owned(), reason: format!("cannot encrypt: {e}") })?;
        write_atomically(path, &wrapped)
    }

    /// Reads and unwraps the key at `path`.
    pub(crate) fn read_wrapped(path: &Path, home: &Path, unlock: &Unlock) -> Result<Self> {
        let wrapped = std::fs::read(path).map_err(Error::io("cannot read", path))?;
        let identity = age::scrypt::Identity::new(unlock.passphrase.secret());
        let plain = age::decrypt(&identity, &wrapped).map_err(|e| match e {
            age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::NoMatchingKeys => Error::WrongPassphrase { home: home.to_owned() },
            other => Error::KeyFile { path: path.to_owned(), reason: other.to_string() },
        })?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| Error::KeyFile {
            path: path.to_owned(),
            reason: format!("holds {} bytes, expected a 32-byte key", plain.len()),
        })?;
        Ok(Self(SecretBytes::new(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlock(passphrase: &str) -> Unlock {
        Unlock { passphrase: Passphrase::new(passphrase), kdf_cost: KdfCost::WorkFactor(4) }
    }

    #[test]
    fn wrapped_key_opens_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local-key.age");
        let key = LocalKey::generate().unwrap();
        key.write_wrapped(&path, &unlock("correct horse")).unwrap();

        let read = LocalKey::read_wrapped(&path, dir.path(), &unlock("correct horse")).unwrap();
        assert_eq!(read.0, key.0);
        let wrong = LocalKey::read_wrapped(&path, dir.path(), &unlock("battery staple"));
        assert!(matches!(wrong, Err(Error::WrongPassphrase { .. })), "{wrong:?}");

        let bytes = std::fs::read(&path).unwrap();
        let hex_key = hex::encode(key.0.expose());
        assert!(!String::from_utf8_lossy(&bytes).contains(&hex_key));
        assert!(!bytes.windows(32).any(|w| w == key.0.expose()), "key must not be stored in plaintext");
    }

    #[test]
    fn damaged_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local-key.age");
        std::fs::write(&path, b"not an age file").unwrap();
        let err = LocalKey::read_wrapped(&path, dir.path(), &unlock("x")).err().unwrap();
        assert!(matches!(err, Error::KeyFile { .. }), "{err:?}");
        assert!(err.to_string().contains("local-key.age"));
    }

    #[test]
    fn passphrase_debug_is_redacted() {
        assert_eq!(format!("{:?}", Passphrase::new("hunter2")), "Passphrase(<redacted>)");
    }
}

//! Key material: the vault master key, the recovery phrase, and fingerprints people compare.
//!
//! Secrets are zeroed on drop and never printed: their `Debug` is redacted.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 secret bytes, zeroed on drop, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretBytes([u8; 32]);

impl SecretBytes {
    /// Wraps secret bytes (callers make them random or derive them).
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret itself: use it, do not keep or print it.
    pub const fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// The 256-bit master key of one key epoch of a vault. Every object key derives from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterKey(SecretBytes);

impl MasterKey {
    /// Wraps 32 random bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(SecretBytes::new(bytes))
    }

    /// The key bytes.
    pub const fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// The fingerprint people compare to check that two devices hold the same vault key.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::derive("ferry 2026-11 vault key fingerprint v1", self.expose())
    }
}

/// A short public digest of a key, shown as `xxxx-xxxx-xxxx-xxxx-xxxx`. Safe to print: it
/// reveals nothing usable about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 10]);

impl Fingerprint {
    fn derive(context: &str, material: &[u8]) -> Self {
        let digest = blake3::derive_key(context, material);
        let mut out = [0u8; 10];
        out.copy_from_slice(&digest[..10]);
        Self(out)
    }

    /// The fingerprint of a device's Ed25519 public key.
    pub fn of_device_key(signing_public_key: &[u8; 32]) -> Self {
        Self::derive("ferry 2026-11 device key fingerprint v1", signing_public_key)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex::encode(self.0);
        for (i, group) in hex.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The 24-word recovery phrase (BIP39 English word list, 256 bits of entropy) that opens the
/// vault when every device is lost.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryPhrase(SecretBytes);

/// A recovery phrase that is not one ferry issued.
#[derive(Debug, thiserror::Error)]
#[error("not a valid recovery phrase ({0}): type the 24 words exactly as printed at `ferry init`, separated by spaces")]
pub struct RecoveryPhraseError(String);

impl RecoveryPhrase {
    /// A phrase for 32 random bytes.
    pub const fn from_entropy(entropy: [u8; 32]) -> Self {
        Self(SecretBytes::new(entropy))
    }

    /// Reads a phrase typed by a person; whitespace and case are forgiven, the checksum is not.
    ///
    /// # Errors
    /// [`RecoveryPhraseError`] for unknown words, a wrong word count or a wrong checksum.
    pub fn parse(words: &str) -> Result<Self, RecoveryPhraseError> {
        let normalised = words.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ");
        let mnemonic =
            bip39::Mnemonic::parse_normalized(&normalised).map_err(|e| RecoveryPhraseError(e.to_string()))?;
        let (entropy, len) = mnemonic.to_entropy_array();
        let bytes: [u8; 32] = entropy
            .get(..len)
            .and_then(|e| e.try_into().ok())
            .ok_or_else(|| RecoveryPhraseError(format!("{} words; ferry phrases have 24", mnemonic.word_count())))?;
        Ok(Self::from_entropy(bytes))
    }

    /// The 24 words, space-separated. Show them once; never log them.
    pub fn to_words(&self) -> String {
        // 32 bytes is always a valid BIP39 entropy length.
        bip39::Mnemonic::from_entropy(self.0.expose()).map(|m| m.to_string()).unwrap_or_default()
    }

    /// The vault's first master key (key epoch 0), which `ferry init` derives from the phrase:
    /// whoever holds the phrase can tell the real vault from one made up around its public
    /// recovery recipient (a forged export or store), whose first key cannot match.
    pub fn first_vault_key(&self) -> MasterKey {
        MasterKey::new(blake3::derive_key("ferry 2026-12 vault key v1", self.0.expose()))
    }

    /// Whether `key` is the first vault key of this phrase (compared in constant time).
    pub fn made(&self, key: &MasterKey) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.first_vault_key().expose()[..], &key.expose()[..]))
    }

    /// The secret that the recovery key slot derives from (see `docs/FORMAT.md`).
    pub fn recovery_secret(&self) -> SecretBytes {
        SecretBytes::new(blake3::derive_key("ferry 2026-11 recovery key v1", self.0.expose()))
    }
}

impl fmt::Debug for RecoveryPhrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryPhrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_phrase_roundtrips_through_words() {
        let phrase = RecoveryPhrase::from_entropy([0x5a; 32]);
        let words = phrase.to_words();
        assert_eq!(words.split(' ').count(), 24);
        let typed = format!("  {}\n", words.to_uppercase().replace(' ', "   "));
        assert_eq!(RecoveryPhrase::parse(&typed).unwrap(), phrase);
    }

    #[test]
    fn wrong_recovery_phrases_are_refused() {
        let words = RecoveryPhrase::from_entropy([1; 32]).to_words();
        let mut list: Vec<&str> = words.split(' ').collect();
        list.swap(0, 1);
        assert!(RecoveryPhrase::parse(&list.join(" ")).is_err(), "checksum must catch swapped words");
        assert!(RecoveryPhrase::parse("abandon ability").is_err());
        assert!(RecoveryPhrase::parse("notaword ".repeat(24).as_str()).is_err());
        let twelve = bip39::Mnemonic::from_entropy(&[3; 16]).unwrap().to_string();
        assert!(RecoveryPhrase::parse(&twelve).unwrap_err().to_string().contains("12 words"));
    }

    #[test]
    fn secrets_are_redacted_and_fingerprints_are_stable() {
        let key = MasterKey::new([9; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(SecretBytes(<redacted>))");
        assert_eq!(format!("{:?}", RecoveryPhrase::from_entropy([1; 32])), "RecoveryPhrase(<redacted>)");
        let fingerprint = key.fingerprint().to_string();
        assert_eq!(fingerprint.len(), 24);
        assert_eq!(fingerprint, MasterKey::new([9; 32]).fingerprint().to_string());
        assert_ne!(fingerprint, MasterKey::new([8; 32]).fingerprint().to_string());
    }
}

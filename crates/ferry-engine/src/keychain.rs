//! The OS keychain (macOS Keychain, the Secret Service on Linux, Windows Credential Manager),
//! where a device may keep its local database key so commands need no passphrase.
//!
//! The key is stored under service `ferry`, account `local-key:<canonical home path>`. The
//! passphrase-wrapped copy in `local-key.age` stays: a wiped keychain costs a prompt, not data.

use crate::unlock::LocalKey;
use crate::{Error, Home, Result};

const SERVICE: &str = "ferry";

/// Whether a keychain lookup found the key, and why not if not.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The key.
    Found(LocalKey),
    /// The keychain works but holds no key for this home.
    Missing,
    /// There is no usable keychain here (no Secret Service, locked, refused).
    Unavailable(String),
}

fn entry(home: &Home) -> Result<keyring::Entry, String> {
    let root = home.root().canonicalize().unwrap_or_else(|_| home.root().to_owned());
    keyring::Entry::new(SERVICE, &format!("local-key:{}", root.display())).map_err(|e| e.to_string())
}

/// Looks the home's key up in the keychain.
pub(crate) fn lookup(home: &Home) -> Lookup {
    let entry = match entry(home) {
        Ok(entry) => entry,
        Err(reason) => return Lookup::Unavailable(reason),
    };
    match entry.get_secret() {
        Ok(secret) => match LocalKey::from_slice(&secret) {
            Some(key) => Lookup::Found(key),
            None => Lookup::Unavailable("the keychain entry is not a 32-byte key".into()),
        },
        Err(keyring::Error::NoEntry) => Lookup::Missing,
        Err(err) => Lookup::Unavailable(err.to_string()),
    }
}

/// Stores the home's key in the keychain.
pub(crate) fn store(home: &Home, key: &LocalKey) -> Result<()> {
    let unavailable = |reason: String| Error::KeychainUnavailable(reason);
    entry(home).map_err(unavailable)?.set_secret(key.bytes()).map_err(|e| unavailable(e.to_string()))
}

/// Removes the home's key from the keychain (a missing entry is fine).
pub(crate) fn forget(home: &Home) -> Result<()> {
    match entry(home).map_err(Error::KeychainUnavailable)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(err) => Err(Error::KeychainUnavailable(err.to_string())),
    }
}

//! What a hub remembers besides objects: the vault it serves and the device keys it pins.
//!
//! ```text
//! <hub home>/hub.json   {"vault": <id>, "devices": {<id>: <key hex>}, "revoked": [<id>], "claim": <hash>}
//! ```
//! Unclaimed, a hub keeps only the BLAKE3 hash of its one-time claim secret. The first device
//! that presents the secret names the vault and its active devices (proving its own key over
//! TLS); from then on the pins follow the registry objects pinned devices write, by the rules
//! devices apply as far as a hub can see them without the vault key: a genuine device record
//! sealed under the vault's current key epoch pins its subject; a genuine revocation whose key
//! epoch object its own signer wrote (and whose epoch number no other followed rotation took)
//! unpins its subject for good. Nothing here is
//! secret (keys are public), and nothing here can make a device accept a forged object: every
//! reader checks signatures against its own registry. The pins keep strangers from reading the
//! vault's ciphertext or filling the hub.

use crate::hub_check::Accepted;
use ed25519_dalek::VerifyingKey;
use ferry_format::{DeviceId, EpochRef, VaultId};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The hub's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HubStateError {
    /// I/O on `hub.json`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `hub.json` is not what a hub writes.
    #[error("{path} is damaged ({why}): restore it from a backup, or start a new hub home")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Why a claim is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Claimed already, by another vault or without this device.
    #[error("this hub already serves vault {0}; a hub serves one vault (start another hub home for another vault)")]
    Taken(VaultId),
    /// The secret does not match.
    #[error("the claim secret is wrong: copy the whole line `ferry serve --hub` printed")]
    WrongSecret,
    /// The claiming device is not in the list it sent.
    #[error("the claiming device's key is not among the devices it lists")]
    NotListed,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Saved {
    vault: Option<String>,
    #[serde(default)]
    devices: BTreeMap<String, String>,
    #[serde(default)]
    revoked: BTreeSet<String>,
    claim: Option<String>,
    /// Followed rotations: key epoch number → `<tag hex>` (the hub's view of the current epoch).
    #[serde(default)]
    epochs: BTreeMap<u32, String>,
}

/// Why a hub does not take a registry object: devices would not accept it either.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryRefusal {
    /// The revocation's key epoch object is missing or written by another device.
    #[error("the key epoch {0} this revocation starts was not written by its signer here: devices would refuse it")]
    EpochNotTheRevokers(EpochRef),
    /// Another rotation took the epoch number first.
    #[error("key epoch {number} was started here by another rotation ({taken}): revoke again from an active device")]
    EpochTaken {
        /// The number.
        number: u32,
        /// The rotation followed.
        taken: EpochRef,
    },
}

/// The hub's vault, pins and claim secret, saved on every change.
#[derive(Debug)]
pub struct HubState {
    path: PathBuf,
    vault: Option<VaultId>,
    devices: BTreeMap<DeviceId, [u8; 32]>,
    revoked: BTreeSet<DeviceId>,
    claim_hash: Option<[u8; 32]>,
    epochs: BTreeMap<u32, [u8; 16]>,
}

impl HubState {
    /// Reads `<root>/hub.json` (a missing file is a new, unclaimed hub).
    ///
    /// # Errors
    /// [`HubStateError`].
    pub fn load(root: &Path) -> Result<Self, HubStateError> {
        let path = root.join("hub.json");
        let saved: Saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| HubStateError::Damaged { path: path.clone(), why: e.to_string() })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(source) => return Err(HubStateError::Io { path, source }),
        };
        let damaged = |why: String| HubStateError::Damaged { path: path.clone(), why };
        let vault =
            saved.vault.map(|v| v.parse()).transpose().map_err(|e: ferry_format::IdError| damaged(e.to_string()))?;
        let mut devices = BTreeMap::new();
        for (device, key) in &saved.devices {
            let device: DeviceId = device.parse().map_err(|e: ferry_format::IdError| damaged(e.to_string()))?;
            devices.insert(device, decode_32(key).ok_or_else(|| damaged(format!("bad key for {device}")))?);
        }
        let revoked = saved
            .revoked
            .iter()
            .map(|d| d.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: ferry_format::IdError| damaged(e.to_string()))?;
        let claim_hash =
            saved.claim.map(|c| decode_32(&c).ok_or_else(|| damaged("bad claim hash".into()))).transpose()?;
        let mut epochs = BTreeMap::new();
        for (number, tag) in &saved.epochs {
            let tag: [u8; 16] = hex::decode(tag)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| damaged(format!("bad tag of key epoch {number}")))?;
            epochs.insert(*number, tag);
        }
        Ok(Self { path, vault, devices, revoked, claim_hash, epochs })
    }

    /// The vault it serves, once claimed.
    pub fn vault(&self) -> Option<VaultId> {
        self.vault
    }

    /// How many devices are pinned.
    pub fn pinned(&self) -> usize {
        self.devices.len()
    }

    /// Makes a new one-time claim secret (replacing any earlier one) and keeps only its hash.
    /// `None` once the hub is claimed.
    ///
    /// # Errors
    /// [`HubStateError`], or no randomness.
    pub fn new_claim_secret(&mut self) -> Result<Option<[u8; 32]>, HubStateError> {
        if self.vault.is_some() {
            return Ok(None);
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| HubStateError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(format!("no randomness for the claim secret: {e}")),
        })?;
        self.claim_hash = Some(*blake3::hash(&secret).as_bytes());
        self.save()?;
        Ok(Some(secret))
    }

    /// The first device claims the hub for `vault` with `devices` (its own key, proven over TLS,
    /// must be among them). Claiming again from a pinned device of the same vault is a no-op.
    ///
    /// # Errors
    /// [`ClaimRefusal`] (the state is unchanged), or [`HubStateError`] saving.
    pub fn claim(
        &mut self,
        secret: &[u8; 32],
        vault: VaultId,
        devices: &[(DeviceId, [u8; 32])],
        client_key: &[u8; 32],
    ) -> Result<Result<(), ClaimRefusal>, HubStateError> {
        if let Some(taken) = self.vault {
            let pinned_here = self.device_with_key(client_key).is_some();
            return Ok(if taken == vault && pinned_here { Ok(()) } else { Err(ClaimRefusal::Taken(taken)) });
        }
        let matches = self.claim_hash.is_some_and(|hash| bool::from(blake3::hash(secret).as_bytes().ct_eq(&hash)));
        if !matches {
            return Ok(Err(ClaimRefusal::WrongSecret));
        }
        if !devices.iter().any(|(_, key)| key == client_key) {
            return Ok(Err(ClaimRefusal::NotListed));
        }
        self.vault = Some(vault);
        self.devices = devices.iter().copied().collect();
        self.claim_hash = None;
        self.save()?;
        Ok(Ok(()))
    }

    /// The pinned device a TLS key belongs to.
    pub fn device_with_key(&self, key: &[u8; 32]) -> Option<DeviceId> {
        self.devices.iter().find(|(_, pinned)| *pinned == key).map(|(device, _)| *device)
    }

    /// A pinned device's key.
    pub fn key_of(&self, device: DeviceId) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(self.devices.get(&device)?).ok()
    }

    /// The vault's current key epoch number, as the rotations this hub followed say.
    pub fn current_epoch(&self) -> u32 {
        self.epochs.keys().next_back().copied().unwrap_or(0)
    }

    /// Whether devices would accept this registry object, as far as the hub can tell:
    /// `epoch_writer` says who wrote a key epoch object the hub holds. Records always pass
    /// (they are stored; `follow` decides whether they pin).
    pub fn judge(
        &self,
        accepted: &Accepted,
        epoch_writer: impl FnOnce(&EpochRef) -> Option<DeviceId>,
    ) -> Result<(), RegistryRefusal> {
        let Accepted::Revokes { by, starts, .. } = accepted else { return Ok(()) };
        if let Some(&tag) = self.epochs.get(&starts.number)
            && Some(tag) != starts.tag
        {
            return Err(RegistryRefusal::EpochTaken {
                number: starts.number,
                taken: EpochRef::tagged(starts.number, tag),
            });
        }
        if epoch_writer(starts) != Some(*by) {
            return Err(RegistryRefusal::EpochNotTheRevokers(*starts));
        }
        Ok(())
    }

    /// Follows an accepted registry object (judged first): a record sealed under the current
    /// key epoch pins its subject (unless revoked, or pinned with another key; a record of an
    /// older epoch is stored but pins nobody, as devices enrol nobody from it); a revocation
    /// records its rotation and unpins its subject for good.
    ///
    /// # Errors
    /// [`HubStateError`] saving.
    pub fn follow(&mut self, accepted: &Accepted) -> Result<(), HubStateError> {
        let changed = match accepted {
            Accepted::Enrolls { subject, key, epoch } => {
                let new = *epoch >= self.current_epoch()
                    && !self.revoked.contains(subject)
                    && !self.devices.contains_key(subject);
                if new {
                    self.devices.insert(*subject, *key);
                }
                new
            }
            Accepted::Revokes { subject, starts, .. } => {
                let rotated = match starts.tag {
                    Some(tag) => self.epochs.insert(starts.number, tag) != Some(tag),
                    None => false,
                };
                let unpinned = self.devices.remove(subject).is_some();
                self.revoked.insert(*subject) || unpinned || rotated
            }
            Accepted::Sealed { .. } | Accepted::Unsealed => false,
        };
        if changed { self.save() } else { Ok(()) }
    }

    fn save(&self) -> Result<(), HubStateError> {
        let saved = Saved {
            vault: self.vault.map(|v| v.to_string()),
            devices: self.devices.iter().map(|(d, k)| (d.to_string(), hex::encode(k))).collect(),
            revoked: self.revoked.iter().map(ToString::to_string).collect(),
            claim: self.claim_hash.map(hex::encode),
            epochs: self.epochs.iter().map(|(number, tag)| (*number, hex::encode(tag))).collect(),
        };
        let io = |source| HubStateError::Io { path: self.path.clone(), source };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| io(std::io::Error::other(e)))?;
        // Written aside, flushed and renamed: a crash leaves the old state or the new one.
        let temporary = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)
    }
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_needs_the_secret_once_and_pins_follow_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = HubState::load(dir.path()).unwrap();
        let secret = state.new_claim_secret().unwrap().unwrap();
        let vault = VaultId::from_bytes([1; 16]);
        let (a, b, c) = (DeviceId::from_bytes([1; 16]), DeviceId::from_bytes([2; 16]), DeviceId::from_bytes([3; 16]));
        let devices = [(a, [0xa; 32]), (b, [0xb; 32])];

        assert_eq!(state.claim(&[0; 32], vault, &devices, &[0xa; 32]).unwrap(), Err(ClaimRefusal::WrongSecret));
        assert_eq!(state.claim(&secret, vault, &devices, &[0xc; 32]).unwrap(), Err(ClaimRefusal::NotListed));
        assert_eq!(state.claim(&secret, vault, &devices, &[0xa; 32]).unwrap(), Ok(()));
        assert_eq!(state.claim(&secret, vault, &devices, &[0xb; 32]).unwrap(), Ok(()), "again from a pinned device");
        let other = VaultId::from_bytes([2; 16]);
        assert_eq!(state.claim(&secret, other, &devices, &[0xa; 32]).unwrap(), Err(ClaimRefusal::Taken(vault)));
        assert_eq!(state.new_claim_secret().unwrap(), None, "a claimed hub makes no secrets");

        state.follow(&Accepted::Enrolls { subject: c, key: [0xc; 32], epoch: 0 }).unwrap();
        state.follow(&Accepted::Enrolls { subject: a, key: [0xd; 32], epoch: 0 }).unwrap();
        assert_eq!(state.device_with_key(&[0xc; 32]), Some(c));
        assert_eq!(state.device_with_key(&[0xd; 32]), None, "a pinned device keeps its key");
        let first = EpochRef::tagged(1, [1; 16]);
        let revokes_b = Accepted::Revokes { subject: b, by: a, starts: first };
        assert_eq!(state.judge(&revokes_b, |_| Some(c)), Err(RegistryRefusal::EpochNotTheRevokers(first)));
        assert_eq!(state.judge(&revokes_b, |_| Some(a)), Ok(()));
        state.follow(&revokes_b).unwrap();
        state.follow(&Accepted::Enrolls { subject: b, key: [0xb; 32], epoch: 1 }).unwrap();
        assert_eq!(state.device_with_key(&[0xb; 32]), None, "a revoked device stays out");
        assert_eq!(state.current_epoch(), 1);
        let competing = Accepted::Revokes { subject: a, by: c, starts: EpochRef::tagged(1, [2; 16]) };
        assert!(matches!(state.judge(&competing, |_| Some(c)), Err(RegistryRefusal::EpochTaken { number: 1, .. })));
        let e = DeviceId::from_bytes([5; 16]);
        state.follow(&Accepted::Enrolls { subject: e, key: [0xe; 32], epoch: 0 }).unwrap();
        assert_eq!(state.device_with_key(&[0xe; 32]), None, "a record of an older epoch pins nobody");

        let reloaded = HubState::load(dir.path()).unwrap();
        assert_eq!((reloaded.vault(), reloaded.pinned(), reloaded.current_epoch()), (Some(vault), 2, 1));
        assert_eq!(reloaded.device_with_key(&[0xb; 32]), None);
        let text = std::fs::read_to_string(dir.path().join("hub.json")).unwrap();
        assert!(!text.contains(&hex::encode(secret)), "only the claim secret's hash is kept");

        std::fs::write(dir.path().join("hub.json"), b"{not json").unwrap();
        let err = HubState::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}

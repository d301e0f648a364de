//! Pairing a new device through a store (see `ferry_format::pairing` for the exchange).
//!
//! The inviter ([`Vault::invite`], [`Vault::pair_request`], [`Vault::approve_pairing`]) and the
//! new device ([`Pairing::start`], [`Pairing::confirmation`], [`Pairing::poll`],
//! [`Pairing::finish`]) never talk directly: they write secret-encrypted objects under
//! `pair/<invite id>/` (request; reveal and response, signed by the inviter), and the new
//! device's record and key slot are ordinary store objects the inviter signs and wraps.

use super::enroll::{check_fingerprint, read_vault_file, wrap_key};
use super::epochs::read_key_chain;
use super::registry::{DeviceRecord, Registry, open_device_record};
use crate::database::meta_get;
use crate::identity::{DeviceKeys, VaultKeys};
use crate::vault::{CreateOptions, Membership, PairedIdentity};
use crate::write::now_ms;
use crate::{Error, Home, Result, Vault, random};
use ed25519_dalek::VerifyingKey;
use ferry_format::objects::{DevicePayload, paths};
use ferry_format::pairing::{Invite, PairRequest, PairResponse, PairReveal, PairingError};
use ferry_format::seal::ObjectId;
use ferry_format::{DeviceId, EpochRef, Fingerprint, MasterKey, SecretBytes};
use ferry_store::{Created, Store};

/// A new device's answer to an invite, as the inviter sees it.
#[derive(Clone, Debug)]
pub struct PairingRequest {
    /// The device's name.
    pub name: String,
    /// Its id.
    pub device_id: String,
    /// Its signing key's fingerprint.
    pub fingerprint: String,
    /// The code its screen shows: the person checks it matches.
    pub code: String,
    request: PairRequest,
}

/// What the new device shows once the inviter revealed its value: the person at the inviting
/// device types the code and compares the fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PairingConfirmation {
    /// The 6-digit code, `123 456`.
    pub code: String,
    /// This device's key fingerprint (the inviting device shows the one it received).
    pub fingerprint: String,
}

fn expired(invite: &Invite) -> Error {
    Error::InviteExpired { expired: crate::time::rfc3339(invite.expires_ms) }
}

fn request_path(invite: &Invite) -> String {
    paths::pair(&invite.invite_id, "request")
}

fn response_path(invite: &Invite) -> String {
    paths::pair(&invite.invite_id, "response")
}

fn reveal_path(invite: &Invite) -> String {
    paths::pair(&invite.invite_id, "reveal")
}

/// Removes an exchange's objects (best effort: a store that is down keeps them until the next
/// invite's clean-up; they are useless without the secret).
pub fn end_invite(invite: &Invite, store: &dyn Store) {
    for path in [request_path(invite), reveal_path(invite), response_path(invite)] {
        let _ = store.delete(&path);
    }
}

impl Vault {
    /// Makes a one-time invite to pair a device through the store at `url` (as configured on
    /// this device), valid for `valid_ms`.
    ///
    /// # Errors
    /// [`Error::Revoked`]; local failures.
    pub fn invite(&self, url: &str, valid_ms: u64) -> Result<Invite> {
        self.ensure_not_revoked()?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        Ok(Invite {
            store: url.to_owned(),
            vault_id: self.vault_id(),
            inviter: self.device_id(),
            inviter_key: device_keys.signing_public(),
            invite_id: random::bytes()?,
            secret: SecretBytes::new(random::bytes()?),
            expires_ms: now_ms().saturating_add(valid_ms),
        })
    }

    /// Reads the new device's request, if it has answered yet, and reveals this device's
    /// random value for the code (signed, naming the request read): only from then on can
    /// either side compute the code, so nobody can prepare a request whose code matches.
    ///
    /// # Errors
    /// [`Error::InviteExpired`]; a request that does not open with the invite's secret
    /// ([`Error::Pairing`]); a reveal already in the store (another inviter process, or
    /// someone interfering: [`Error::InviteUsed`]); the store is unreachable.
    pub fn pair_request(&self, invite: &Invite, store: &dyn Store) -> Result<Option<PairingRequest>> {
        if now_ms() > invite.expires_ms {
            return Err(expired(invite));
        }
        let Some(sealed) = store.get(&request_path(invite))? else { return Ok(None) };
        let request = invite.open_request(&sealed)?;
        let value: [u8; 32] = random::bytes()?;
        let reveal = PairReveal { value: value.to_vec(), request_hash: blake3::hash(&sealed).as_bytes().to_vec() };
        let device_keys = DeviceKeys::load(&self.conn)?;
        let revealed = invite.seal_reveal(&reveal, random::bytes()?, device_keys.signing_key());
        if store.put_if_absent(&reveal_path(invite), &revealed)? == Created::Exists {
            return Err(Error::InviteUsed);
        }
        let signing: [u8; 32] = request
            .signing_public
            .as_slice()
            .try_into()
            .map_err(|_| PairingError::Malformed("signing key has a wrong length".into()))?;
        let device_id = DeviceId::from_slice(&request.device_id)
            .ok_or_else(|| PairingError::Malformed("device id has a wrong length".into()))?;
        Ok(Some(PairingRequest {
            name: request.name.clone(),
            device_id: device_id.to_string(),
            fingerprint: Fingerprint::of_device_key(&signing).to_string(),
            code: invite.confirmation_code(&request, &value),
            request,
        }))
    }

    /// Enrolls the device that answered: signs its record, wraps the current vault key to it,
    /// publishes both to the store, then the response. Call only after the person confirmed the
    /// code. The record and slot are queued for this device's other stores too.
    ///
    /// # Errors
    /// [`Error::InviteExpired`]; a malformed request; the store is unreachable; local failures.
    pub fn approve_pairing(&mut self, invite: &Invite, store: &dyn Store, request: &PairingRequest) -> Result<()> {
        if now_ms() > invite.expires_ms {
            return Err(expired(invite));
        }
        let request = &request.request;
        let malformed = |what: &str| Error::Pairing(PairingError::Malformed(what.to_owned()));
        let device_id = DeviceId::from_slice(&request.device_id).ok_or_else(|| malformed("device id"))?;
        let signing: [u8; 32] = request.signing_public.as_slice().try_into().map_err(|_| malformed("signing key"))?;
        VerifyingKey::from_bytes(&signing).map_err(|_| malformed("signing key"))?;
        let recipient: age::x25519::Recipient = request.recipient.parse().map_err(|_| malformed("recipient"))?;
        let name = crate::vault::validate_device_name(&request.name)?.to_owned();
        if Registry::load(&self.conn)?.contains(device_id) {
            return Err(malformed("the device is enrolled already"));
        }
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let payload = DevicePayload {
            device_id: *device_id.as_bytes(),
            name,
            recipient: request.recipient.clone(),
            enrolled_ms: now_ms(),
            recovery_recipient: meta_get(&self.conn, "recovery_recipient")?,
        };
        let sealed = keys
            .sealer(self.device_id(), &device_keys)
            .seal(ObjectId(signing), random::bytes()?, &payload)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let record = DeviceRecord {
            device_id,
            sealed: sealed.clone(),
            signing_public: signing,
            enrolled_by: self.device_id(),
            epoch: keys.epoch,
            member: true,
            payload,
        };
        let objects = [
            (paths::key_slot(&keys.current(), &device_id.to_string()), wrap_key(&recipient, &keys.master_key)?),
            (paths::device_record(device_id), sealed),
        ];
        for (path, bytes) in &objects {
            store.put_if_absent(path, bytes)?;
        }
        self.register_device(&record)?;
        self.queue_for_stores(&objects, None)?;
        let epoch = keys.current();
        let response = invite.seal_response(
            &PairResponse { epoch: epoch.number, tag: epoch.tag.map(ferry_format::objects::ByteArray16) },
            random::bytes()?,
            device_keys.signing_key(),
        );
        store.put_if_absent(&response_path(invite), &response)?;
        Ok(())
    }
}

/// The new device's side of a pairing, between its request and the inviter's response. Holds
/// the device's fresh keys in memory only: nothing is written locally until [`Pairing::finish`].
pub struct Pairing {
    invite: Invite,
    device_id: DeviceId,
    keys: DeviceKeys,
    request: PairRequest,
    /// The request exactly as written (the inviter's reveal names its hash).
    sealed_request: Vec<u8>,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairing").field("invite", &self.invite).field("device_id", &self.device_id).finish()
    }
}

impl Pairing {
    /// Answers an invite: checks it, makes this device's keys, writes the request.
    ///
    /// # Errors
    /// [`Error::InviteExpired`], [`Error::InviteUsed`], [`Error::KeyMismatch`] (the store
    /// holds another vault than the invite's), [`Error::InvalidDeviceName`], the store is
    /// unreachable.
    pub fn start(invite: Invite, device_name: &str, store: &dyn Store) -> Result<Self> {
        if now_ms() > invite.expires_ms {
            return Err(expired(&invite));
        }
        let name = crate::vault::validate_device_name(device_name)?.to_owned();
        let found = read_vault_file(store)?.ok_or_else(|| Error::NoVaultInStore { location: store.location() })?;
        if found.vault_id != invite.vault_id {
            return Err(Error::KeyMismatch {
                location: store.location(),
                found: found.vault_id.to_string(),
                found_fingerprint: found.fingerprint,
                ours: invite.vault_id.to_string(),
                our_fingerprint: "(the invite's)".into(),
            });
        }
        let keys = DeviceKeys::generate()?;
        let device_id = DeviceId::from_bytes(random::bytes()?);
        let request = PairRequest {
            device_id: device_id.as_bytes().to_vec(),
            name,
            signing_public: keys.signing_public().to_vec(),
            recipient: keys.recipient(),
        };
        let sealed = invite.seal_request(&request, random::bytes()?);
        if store.put_if_absent(&request_path(&invite), &sealed)? == Created::Exists {
            return Err(Error::InviteUsed);
        }
        Ok(Self { invite, device_id, keys, request, sealed_request: sealed })
    }

    /// Gives up: removes the request (best effort).
    pub fn cancel(&self, store: &dyn Store) {
        end_invite(&self.invite, store);
    }

    /// The new device's Ed25519 secret key (in memory only): the TLS identity it finishes with
    /// on a hub, which learns of it from the record its inviter writes.
    pub fn device_signing_secret(&self) -> SecretBytes {
        SecretBytes::new(self.keys.signing_key().to_bytes())
    }

    /// What to show once the inviter has read this device's request and revealed its value:
    /// `Ok(None)` until then.
    ///
    /// # Errors
    /// [`Error::PairingInterfered`] when the inviter read another request than this device's
    /// (someone who holds the invite replaced it): nothing may be confirmed, start again;
    /// a reveal not signed by the inviter ([`Error::Pairing`]); the store.
    pub fn confirmation(&self, store: &dyn Store) -> Result<Option<PairingConfirmation>> {
        let Some(sealed) = store.get(&reveal_path(&self.invite))? else { return Ok(None) };
        let reveal = self.invite.open_reveal(&sealed)?;
        let value =
            reveal.value().ok_or_else(|| PairingError::Malformed("revealed value has a wrong length".into()))?;
        if reveal.request_hash != blake3::hash(&self.sealed_request).as_bytes() {
            return Err(Error::PairingInterfered);
        }
        Ok(Some(PairingConfirmation {
            code: self.invite.confirmation_code(&self.request, &value),
            fingerprint: Fingerprint::of_device_key(&self.keys.signing_public()).to_string(),
        }))
    }

    /// This device's id-to-be.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// When the invite expires (ms since the Unix epoch).
    pub fn expires_ms(&self) -> u64 {
        self.invite.expires_ms
    }

    /// Whether the inviter has approved: `Ok(Some(epoch))` once its response is there.
    ///
    /// # Errors
    /// A response not signed by the inviter or altered ([`Error::Pairing`]); the store.
    pub fn poll(&self, store: &dyn Store) -> Result<Option<EpochRef>> {
        let Some(sealed) = store.get(&response_path(&self.invite))? else { return Ok(None) };
        Ok(Some(self.invite.open_response(&sealed)?.epoch_ref()))
    }

    /// Creates this device's vault from the key slot and record the inviter published, and
    /// adds the store. The pairing objects are removed.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] or [`Error::BadStoreObject`] when the slot, record or key chain
    /// do not check out (nothing is created); local failures.
    pub fn finish(self, home: &Home, options: &CreateOptions, epoch: EpochRef, store: &dyn Store) -> Result<Vault> {
        if home.has_vault() {
            return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
        }
        let location = store.location();
        let bad = |path: &str, reason: &str| Error::BadStoreObject {
            location: location.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let slot_path = paths::key_slot(&epoch, &self.device_id.to_string());
        let slot = store.get(&slot_path)?.ok_or_else(|| bad(&slot_path, "missing"))?;
        let key = age::decrypt(self.keys.agreement(), &slot).map_err(|_| bad(&slot_path, "does not open"))?;
        let key: [u8; 32] = key.as_slice().try_into().map_err(|_| bad(&slot_path, "not a 32-byte key"))?;
        let mut keys = VaultKeys::single(self.invite.vault_id, epoch, MasterKey::new(key));
        let chain = read_key_chain(store, &mut keys)?;
        let found = read_vault_file(store)?.ok_or_else(|| Error::NoVaultInStore { location: location.clone() })?;
        check_fingerprint(store, &found, &keys)?;

        let record_path = paths::device_record(self.device_id);
        let record = store.get(&record_path)?.ok_or_else(|| bad(&record_path, "missing"))?;
        let inviter_key =
            VerifyingKey::from_bytes(&self.invite.inviter_key).map_err(|_| bad(&record_path, "bad key"))?;
        let registry = Registry::trusting(self.invite.inviter, inviter_key);
        let record = open_device_record(&record, self.device_id, &keys, &registry)
            .map_err(|e| bad(&record_path, &e.to_string()))?;
        if record.enrolled_by != self.invite.inviter || record.signing_public != self.keys.signing_public() {
            return Err(bad(&record_path, "not the record the inviter made for this device"));
        }
        let recovery_recipient = record.payload.recovery_recipient.clone();
        let membership = Membership {
            keys: &keys,
            epoch_objects: &chain,
            recovery_recipient: &recovery_recipient,
            paired: Some(PairedIdentity { keys: self.keys, record }),
        };
        let vault = Vault::create_device(home, options, membership)?;
        vault.add_store(&self.invite.store)?;
        end_invite(&self.invite, store);
        Ok(vault)
    }
}

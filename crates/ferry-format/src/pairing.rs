//! Pairing a new device: the invite a person copies from one device to the other, and the two
//! secret-encrypted objects the devices exchange through a store (or, later, a peer).
//!
//! ```text
//! inviter                               store                          new device
//! ferry pair invite  ── prints token ──────────────────────────────▶ ferry pair accept TOKEN
//!                                      pair/<id>/request  ◀── keys, name (sealed with the secret)
//! reads the request, then picks a   ──▶ pair/<id>/reveal  ──▶ checks it names its own request
//! random value (signed, naming the request it read)
//! both show the 6-digit code of secret + request + value, and the new device's key fingerprint
//! record + key slot + response ──────▶ pair/<id>/response ──▶ reads key slot, verifies, enrolled
//! ```
//! The token carries the inviter's signing key, so the new device checks every object the
//! inviter wrote; the one-time secret keeps the exchange unreadable to the store. The code
//! depends on a value the inviter picks only after the request is fixed, so whoever holds the
//! token cannot grind a replacement request whose code matches (one guess in 10^6 per invite),
//! and a replaced request is seen at once by the new device (the reveal names another request).
//! Requests are created create-if-absent, so an invite answers one device only.

use crate::keys::SecretBytes;
use crate::objects::{decode, encode};
use crate::{DeviceId, VaultId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The prefix of an invite token.
pub const TOKEN_PREFIX: &str = "ferry1:";
const NONCE_LEN: usize = 24;
const CHECKSUM_LEN: usize = 4;

/// What is wrong with an invite or an exchanged object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    /// The token is damaged or not a ferry invite.
    #[error("not a valid ferry invite ({0}): copy the whole `ferry1:…` line printed by `ferry pair invite`")]
    BadToken(String),
    /// The exchanged object does not open with the invite's secret, or was altered.
    #[error("the pairing object was altered or belongs to another invite")]
    Tampered,
    /// The exchanged object decodes to nonsense.
    #[error("malformed pairing object: {0}")]
    Malformed(String),
}

/// An invitation to join a vault, valid once and until it expires. It holds a secret: it is
/// shown to the person pairing, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// Where the devices meet: a store location, never with credentials.
    pub store: String,
    /// The vault.
    pub vault_id: VaultId,
    /// The inviting device.
    pub inviter: DeviceId,
    /// Its Ed25519 public key: the new device checks the inviter's objects with it.
    pub inviter_key: [u8; 32],
    /// Names this exchange in the store.
    pub invite_id: [u8; 16],
    /// Encrypts the exchange and derives the confirmation code.
    pub secret: SecretBytes,
    /// When the invite stops being valid (ms since the Unix epoch).
    pub expires_ms: u64,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("store", &self.store)
            .field("vault_id", &self.vault_id)
            .field("inviter", &self.inviter)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct TokenBody {
    v: u8,
    store: String,
    #[serde(with = "crate::objects::serde_byte_vec")]
    vault: Vec<u8>,
    #[serde(with = "crate::objects::serde_byte_vec")]
    inviter: Vec<u8>,
    #[serde(with = "crate::objects::serde_byte_vec")]
    key: Vec<u8>,
    #[serde(with = "crate::objects::serde_byte_vec")]
    id: Vec<u8>,
    #[serde(with = "crate::objects::serde_byte_vec")]
    secret: Vec<u8>,
    expires: u64,
}

impl Invite {
    /// The one line a person copies to the new device: `ferry1:` then base64url of the CBOR
    /// body and a 4-byte BLAKE3 checksum (a damaged copy is told apart from a wrong invite).
    pub fn to_token(&self) -> String {
        let body = TokenBody {
            v: 1,
            store: self.store.clone(),
            vault: self.vault_id.as_bytes().to_vec(),
            inviter: self.inviter.as_bytes().to_vec(),
            key: self.inviter_key.to_vec(),
            id: self.invite_id.to_vec(),
            secret: self.secret.expose().to_vec(),
            expires: self.expires_ms,
        };
        let mut bytes = encode(&body);
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_LEN]);
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a token as copied by a person (surrounding quotes and whitespace are forgiven).
    ///
    /// # Errors
    /// [`PairingError::BadToken`] saying what is wrong.
    pub fn parse(token: &str) -> Result<Self, PairingError> {
        let bad = |why: &str| PairingError::BadToken(why.to_owned());
        let token = token.trim().trim_matches(|c| c == '\'' || c == '"');
        let encoded = token.strip_prefix(TOKEN_PREFIX).ok_or_else(|| bad("it does not start with `ferry1:`"))?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| bad("it is not base64url"))?;
        if bytes.len() <= CHECKSUM_LEN {
            return Err(bad("it is too short"));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if blake3::hash(body).as_bytes()[..CHECKSUM_LEN] != *checksum {
            return Err(bad("its checksum does not match: it was cut or altered"));
        }
        let body: TokenBody = decode(body).map_err(|e| bad(&e))?;
        if body.v != 1 {
            return Err(bad(&format!("version {} is not understood by this ferry: upgrade it", body.v)));
        }
        Ok(Self {
            store: body.store,
            vault_id: VaultId::from_bytes(fixed(body.vault, "vault id")?),
            inviter: DeviceId::from_bytes(fixed(body.inviter, "inviter")?),
            inviter_key: fixed(body.key, "inviter key")?,
            invite_id: fixed(body.id, "invite id")?,
            secret: SecretBytes::new(fixed(body.secret, "secret")?),
            expires_ms: body.expires,
        })
    }

    fn cipher(&self, part: &str) -> XChaCha20Poly1305 {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&self.invite_id), self.secret.expose());
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit.
        let _ = hkdf.expand(format!("ferry 2026-11 pairing {part} v1").as_bytes(), &mut key);
        XChaCha20Poly1305::new(&key.into())
    }

    /// Encrypts the new device's request.
    pub fn seal_request(&self, request: &PairRequest, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        self.seal_part("request", &encode(request), nonce)
    }

    /// Decrypts a request.
    ///
    /// # Errors
    /// [`PairingError::Tampered`] or [`PairingError::Malformed`].
    pub fn open_request(&self, sealed: &[u8]) -> Result<PairRequest, PairingError> {
        decode(&self.open_part("request", sealed)?).map_err(PairingError::Malformed)
    }

    /// Encrypts and signs (with the inviter's key) the reveal: the random value the inviter
    /// contributes after reading the request, and the hash of the request it read.
    pub fn seal_reveal(&self, reveal: &PairReveal, nonce: [u8; NONCE_LEN], inviter: &SigningKey) -> Vec<u8> {
        self.seal_signed("reveal", &encode(reveal), nonce, inviter)
    }

    /// Checks the inviter's signature and decrypts a reveal.
    ///
    /// # Errors
    /// [`PairingError::Tampered`] or [`PairingError::Malformed`].
    pub fn open_reveal(&self, sealed: &[u8]) -> Result<PairReveal, PairingError> {
        decode(&self.open_signed("reveal", sealed)?).map_err(PairingError::Malformed)
    }

    /// Encrypts and signs (with the inviter's key) the response.
    pub fn seal_response(&self, response: &PairResponse, nonce: [u8; NONCE_LEN], inviter: &SigningKey) -> Vec<u8> {
        self.seal_signed("response", &encode(response), nonce, inviter)
    }

    /// Checks the inviter's signature and decrypts the response.
    ///
    /// # Errors
    /// [`PairingError::Tampered`] or [`PairingError::Malformed`].
    pub fn open_response(&self, sealed: &[u8]) -> Result<PairResponse, PairingError> {
        decode(&self.open_signed("response", sealed)?).map_err(PairingError::Malformed)
    }

    /// A part written by the inviter: encrypted, then signed with its key.
    fn seal_signed(&self, part: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN], inviter: &SigningKey) -> Vec<u8> {
        let mut sealed = self.seal_part(part, plaintext, nonce);
        let signature = inviter.sign(&sealed);
        sealed.extend_from_slice(&signature.to_bytes());
        sealed
    }

    fn open_signed(&self, part: &str, sealed: &[u8]) -> Result<Vec<u8>, PairingError> {
        let split = sealed.len().checked_sub(Signature::BYTE_SIZE).ok_or(PairingError::Tampered)?;
        let (body, signature) = sealed.split_at(split);
        let key = VerifyingKey::from_bytes(&self.inviter_key).map_err(|_| PairingError::Tampered)?;
        let signature = Signature::from_slice(signature).map_err(|_| PairingError::Tampered)?;
        key.verify(body, &signature).map_err(|_| PairingError::Tampered)?;
        self.open_part(part, body)
    }

    fn seal_part(&self, part: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let aad = [part.as_bytes(), &self.invite_id].concat();
        let mut out = nonce.to_vec();
        // Encrypting an in-memory buffer does not fail.
        if let Ok(ciphertext) =
            self.cipher(part).encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        {
            out.extend_from_slice(&ciphertext);
        }
        out
    }

    fn open_part(&self, part: &str, sealed: &[u8]) -> Result<Vec<u8>, PairingError> {
        if sealed.len() < NONCE_LEN {
            return Err(PairingError::Tampered);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = [part.as_bytes(), &self.invite_id].concat();
        self.cipher(part)
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| PairingError::Tampered)
    }

    /// The 6-digit code both devices show for a request and the inviter's revealed value:
    /// equal only if both hold the same secret and see the same request and value. Shown as
    /// `123 456`.
    pub fn confirmation_code(&self, request: &PairRequest, revealed: &[u8; 32]) -> String {
        let mut hasher = blake3::Hasher::new_derive_key("ferry 2026-12 pairing code v2");
        hasher.update(self.secret.expose());
        hasher.update(&encode(request));
        hasher.update(revealed);
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        let code = u64::from_le_bytes(first) % 1_000_000;
        format!("{:03} {:03}", code / 1000, code % 1000)
    }
}

/// The new device's half: who it is and where to wrap the vault key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairRequest {
    /// The new device's id.
    #[serde(with = "crate::objects::serde_byte_vec")]
    pub device_id: Vec<u8>,
    /// Its name.
    pub name: String,
    /// Its Ed25519 public key.
    #[serde(with = "crate::objects::serde_byte_vec")]
    pub signing_public: Vec<u8>,
    /// Its age X25519 recipient.
    pub recipient: String,
}

/// The inviter's contribution to the code, written after it read the request: a random value,
/// and the BLAKE3 hash of the sealed request it read (the new device checks it is its own).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairReveal {
    /// 32 random bytes, part of the confirmation code.
    #[serde(with = "crate::objects::serde_byte_vec")]
    pub value: Vec<u8>,
    /// BLAKE3 of the request object exactly as the inviter read it.
    #[serde(with = "crate::objects::serde_byte_vec")]
    pub request_hash: Vec<u8>,
}

impl PairReveal {
    /// The revealed value, if it has the right length.
    pub fn value(&self) -> Option<[u8; 32]> {
        self.value.as_slice().try_into().ok()
    }
}

/// The inviter's half: the key epoch whose slot it wrote for the new device. The device record
/// and key slot themselves are ordinary store objects.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairResponse {
    /// The key epoch of the new device's slot (`keys/<epoch>.<tag>/<device>.age`).
    pub epoch: u32,
    /// That epoch's tag (`None` for epoch 0).
    pub tag: Option<crate::objects::ByteArray16>,
}

impl PairResponse {
    /// The key epoch it names, as stores name it.
    pub fn epoch_ref(&self) -> crate::EpochRef {
        crate::EpochRef { number: self.epoch, tag: self.tag.map(|tag| tag.0) }
    }
}

fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], PairingError> {
    bytes.try_into().map_err(|_| PairingError::BadToken(format!("its {what} has a wrong length")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            store: "s3://bucket/vault?endpoint=http://127.0.0.1:9000".into(),
            vault_id: VaultId::from_bytes([1; 16]),
            inviter: DeviceId::from_bytes([2; 16]),
            inviter_key: SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes(),
            invite_id: [4; 16],
            secret: SecretBytes::new([5; 32]),
            expires_ms: 1_800_000_000_000,
        }
    }

    fn request() -> PairRequest {
        PairRequest {
            device_id: vec![6; 16],
            name: "phone".into(),
            signing_public: vec![7; 32],
            recipient: "age1x".into(),
        }
    }

    #[test]
    fn tokens_roundtrip_and_damage_is_named() {
        let invite = invite();
        let token = invite.to_token();
        assert!(token.starts_with("ferry1:"));
        assert_eq!(Invite::parse(&format!("  '{token}'\n")).unwrap(), invite);
        assert!(!format!("{invite:?}").contains("secret"), "Debug must not show the secret");

        let mut altered = token.clone().into_bytes();
        let last = altered.len() - 10;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let err = Invite::parse(&String::from_utf8(altered).unwrap()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(Invite::parse(&token[..token.len() - 6]).is_err());
        assert!(Invite::parse("ferry2:abc").unwrap_err().to_string().contains("ferry1:"));
    }

    #[test]
    fn exchange_objects_open_only_with_the_same_invite() {
        let invite = invite();
        let sealed = invite.seal_request(&request(), [8; 24]);
        assert_eq!(invite.open_request(&sealed).unwrap(), request());
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert_eq!(invite.open_request(&flipped), Err(PairingError::Tampered), "byte {i}");
        }
        let other = Invite { secret: SecretBytes::new([9; 32]), ..invite.clone() };
        assert_eq!(other.open_request(&sealed), Err(PairingError::Tampered));
        // A request is not a response, even with the same secret.
        assert!(invite.open_response(&sealed).is_err());

        let signing = SigningKey::from_bytes(&[3; 32]);
        let response = invite.seal_response(&PairResponse { epoch: 2, tag: None }, [1; 24], &signing);
        assert_eq!(invite.open_response(&response).unwrap(), PairResponse { epoch: 2, tag: None });
        let forged =
            invite.seal_response(&PairResponse { epoch: 2, tag: None }, [1; 24], &SigningKey::from_bytes(&[4; 32]));
        assert_eq!(invite.open_response(&forged), Err(PairingError::Tampered));
    }

    #[test]
    fn format_document_states_the_pairing_vectors() {
        use crate::format_document::check;
        check("invite token", invite().to_token());
        check("pairing request", hex::encode(invite().seal_request(&request(), [8; 24])));
        check("confirmation code", invite().confirmation_code(&request(), &[9; 32]));
        let inviter = SigningKey::from_bytes(&[3; 32]);
        let reveal = PairReveal { value: vec![9; 32], request_hash: vec![0x0c; 32] };
        check("pairing reveal", hex::encode(invite().seal_reveal(&reveal, [0x0a; 24], &inviter)));
        let response = PairResponse { epoch: 0, tag: None };
        check("pairing response", hex::encode(invite().seal_response(&response, [0x0b; 24], &inviter)));
    }

    #[test]
    fn codes_agree_only_for_the_same_secret_and_request() {
        let invite = invite();
        let code = invite.confirmation_code(&request(), &[1; 32]);
        assert_eq!(code.len(), 7);
        assert_eq!(code, invite.confirmation_code(&request(), &[1; 32]));
        let other_device = PairRequest { recipient: "age1y".into(), ..request() };
        assert_ne!(code, invite.confirmation_code(&other_device, &[1; 32]));
        assert_ne!(code, invite.confirmation_code(&request(), &[2; 32]), "the revealed value counts");
        let other_secret = Invite { secret: SecretBytes::new([9; 32]), ..invite.clone() };
        assert_ne!(code, other_secret.confirmation_code(&request(), &[1; 32]));
        let signing = SigningKey::from_bytes(&[3; 32]);
        let reveal = PairReveal { value: vec![1; 32], request_hash: vec![2; 32] };
        let sealed = invite.seal_reveal(&reveal, [4; 24], &signing);
        assert_eq!(invite.open_reveal(&sealed).unwrap(), reveal);
        assert_eq!(
            invite.open_reveal(&invite.seal_reveal(&reveal, [4; 24], &SigningKey::from_bytes(&[5; 32]))),
            Err(PairingError::Tampered)
        );
        assert!(invite.open_response(&sealed).is_err(), "a reveal is not a response");
    }
}

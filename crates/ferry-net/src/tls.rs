//! Mutual TLS pinned to the vault's device registry.
//!
//! Each device presents a self-signed certificate for its Ed25519 device key (the key its
//! device record publishes). A connection is accepted only if the other side's certificate key
//! is an active device of the vault: no certificate authority, no names — the registry is the
//! trust anchor, so a device paired anywhere is trusted everywhere, and a revoked one nowhere.
//! TLS 1.3 only; the handshake signature proves possession of the key.

use ferry_format::{DeviceId, SecretBytes};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The DER SubjectPublicKeyInfo of an Ed25519 key, before the 32 key bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// PKCS#8 v1 of an Ed25519 secret key, before the 32 seed bytes (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// What can go wrong setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate could not be made.
    #[error("cannot make this device's TLS certificate: {0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// This device's TLS identity: a self-signed certificate for its device key.
pub struct TlsIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(<device key>)")
    }
}

impl TlsIdentity {
    /// Makes the certificate for the device's Ed25519 secret key.
    ///
    /// # Errors
    /// [`TlsError::Certificate`].
    pub fn new(secret: &SecretBytes) -> Result<Self, TlsError> {
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(secret.expose());
        let key = PrivatePkcs8KeyDer::from(pkcs8);
        let pair = rcgen::KeyPair::try_from(&key).map_err(|e| TlsError::Certificate(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec!["ferry-device".to_owned()])
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let cert = params.self_signed(&pair).map_err(|e| TlsError::Certificate(e.to_string()))?;
        Ok(Self { cert: cert.der().clone(), key })
    }

    /// The Ed25519 public key the certificate carries.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        ed25519_key_of(&self.cert)
    }

    fn chain(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))
    }
}

/// The device keys a connection may present, shared with the code that keeps them current.
#[derive(Clone, Default, Debug)]
pub struct Pins(Arc<RwLock<HashMap<[u8; 32], DeviceId>>>);

impl Pins {
    /// Pins exactly these devices.
    pub fn set(&self, keys: impl IntoIterator<Item = (DeviceId, [u8; 32])>) {
        let map = keys.into_iter().map(|(device, key)| (key, device)).collect();
        if let Ok(mut pins) = self.0.write() {
            *pins = map;
        }
    }

    /// The device an Ed25519 key belongs to, if it is pinned now.
    pub fn device_with_key(&self, key: &[u8; 32]) -> Option<DeviceId> {
        self.0.read().ok()?.get(key).copied()
    }

    /// The device a certificate belongs to, if it is pinned.
    pub fn device_of(&self, cert: &CertificateDer<'_>) -> Option<DeviceId> {
        let key = ed25519_key_of(cert)?;
        self.0.read().ok()?.get(&key).copied()
    }
}

/// The Ed25519 key a certificate's SubjectPublicKeyInfo holds (read by webpki, so a key placed
/// elsewhere in the certificate is never mistaken for it).
pub(crate) fn ed25519_key_of(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let key = spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    key.try_into().ok()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn refused(why: &str) -> rustls::Error {
    rustls::Error::General(why.to_owned())
}

/// Checks the other side's certificate against the pins (or, for a hub's clients, only that it
/// is an Ed25519 key: the hub decides per request what each key may do).
#[derive(Debug)]
struct PinnedVerifier {
    pins: Option<Pins>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let accepted = match &self.pins {
            Some(pins) => pins.device_of(cert).is_some(),
            None => ed25519_key_of(cert).is_some(),
        };
        match (accepted, &self.pins) {
            (true, _) => Ok(()),
            (false, Some(_)) => Err(refused("not an active device of this vault")),
            (false, None) => Err(refused("not a ferry device certificate (an Ed25519 key)")),
        }
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(refused("TLS 1.2 is not used between ferry devices"))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(refused("TLS 1.2 is not used between ferry devices"))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The server side: present `identity`, require a pinned client.
///
/// # Errors
/// [`TlsError::Config`].
pub fn server_config(identity: &TlsIdentity, pins: Pins) -> Result<rustls::ServerConfig, TlsError> {
    server_config_for(identity, Some(pins))
}

/// A hub's server side: present `identity`, take any client that proves an Ed25519 key (the hub
/// authorises each request by that key).
///
/// # Errors
/// [`TlsError::Config`].
pub fn hub_server_config(identity: &TlsIdentity) -> Result<rustls::ServerConfig, TlsError> {
    server_config_for(identity, None)
}

fn server_config_for(identity: &TlsIdentity, pins: Option<Pins>) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier { pins, provider: provider.clone() });
    let (chain, key) = identity.chain();
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?)
}

/// The client side: present `identity`, require a pinned server.
///
/// # Errors
/// [`TlsError::Config`].
pub fn client_config(identity: &TlsIdentity, pins: Pins) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier { pins: Some(pins), provider: provider.clone() });
    let (chain, key) = identity.chain();
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_carries_the_device_key_and_only_pinned_keys_pass() {
        let secret = SecretBytes::new([7; 32]);
        let public = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
        let identity = TlsIdentity::new(&secret).unwrap();
        assert_eq!(ed25519_key_of(&identity.cert), Some(public));
        let pins = Pins::default();
        assert_eq!(pins.device_of(&identity.cert), None);
        let device = DeviceId::from_bytes([1; 16]);
        pins.set([(device, public)]);
        assert_eq!(pins.device_of(&identity.cert), Some(device));
        assert!(ed25519_key_of(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])).is_none());
        assert!(server_config(&identity, pins.clone()).is_ok() && client_config(&identity, pins).is_ok());
    }
}

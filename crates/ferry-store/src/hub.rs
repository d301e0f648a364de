//! Where a hub is: `hub://HOST:PORT#<hub key>[.<claim secret>]`.
//!
//! A hub (`ferry serve --hub`) is an always-on machine that stores a vault's sealed objects
//! without being able to read them. Its location carries the hex of its TLS key, so a device
//! pins the hub itself instead of trusting any certificate authority, and, the first time only,
//! the one-time secret that lets the first device claim it for its vault. The network client
//! lives in `ferry-net`; this crate only parses and prints locations.

use crate::{StoreError, StoreErrorKind};

/// A parsed `hub://` location.
#[derive(Clone, PartialEq, Eq)]
pub struct HubLocation {
    /// `host:port`.
    pub address: String,
    /// The hub's Ed25519 TLS key.
    pub key: [u8; 32],
    /// The one-time claim secret, when the location was printed by a hub nobody claimed yet.
    pub claim_secret: Option<[u8; 32]>,
}

impl std::fmt::Debug for HubLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The claim secret is never printed.
        write!(f, "HubLocation({})", self.to_text())
    }
}

impl HubLocation {
    /// Parses a `hub://` URL.
    ///
    /// # Errors
    /// A malformed location, naming what is wrong (never echoing the secret).
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        // Errors name the address only: what follows `#` may hold the secret.
        let shown = text.split('#').next().unwrap_or_default();
        let bad = |why: &str| {
            StoreError::new(
                StoreErrorKind::InvalidPath,
                shown,
                format!("{why}; a hub is written hub://HOST:PORT#<hub key> (copy the line `ferry serve --hub` prints)"),
            )
        };
        let rest = text.strip_prefix("hub://").ok_or_else(|| bad("not a hub:// location"))?;
        let (address, fragment) = rest.split_once('#').ok_or_else(|| bad("the hub key (after `#`) is missing"))?;
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("the port is missing"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("the address must be HOST:PORT"));
        }
        let (key, secret) = match fragment.split_once('.') {
            Some((key, secret)) => (key, Some(secret)),
            None => (fragment, None),
        };
        let key = decode_32(key).ok_or_else(|| bad("the hub key must be 64 hex digits"))?;
        let claim_secret = secret
            .map(|secret| decode_32(secret).ok_or_else(|| bad("the claim secret must be 64 hex digits")))
            .transpose()?;
        Ok(Self { address: address.to_owned(), key, claim_secret })
    }

    /// The text form without the claim secret (what a device keeps: the secret is spent once the
    /// hub is claimed).
    pub fn to_text(&self) -> String {
        format!("hub://{}#{}", self.address, hex::encode(self.key))
    }

    /// The text form with the claim secret, as the hub prints it.
    pub fn to_text_with_secret(&self) -> String {
        match &self.claim_secret {
            Some(secret) => format!("{}.{}", self.to_text(), hex::encode(secret)),
            None => self.to_text(),
        }
    }
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_locations_and_never_echoes_the_secret() {
        let key = "ab".repeat(32);
        let secret = "cd".repeat(32);
        let with_secret = HubLocation::parse(&format!("hub://nas.local:7420#{key}.{secret}")).unwrap();
        assert_eq!(with_secret.address, "nas.local:7420");
        assert_eq!(with_secret.key, [0xab; 32]);
        assert_eq!(with_secret.claim_secret, Some([0xcd; 32]));
        assert_eq!(with_secret.to_text(), format!("hub://nas.local:7420#{key}"));
        assert_eq!(HubLocation::parse(&with_secret.to_text_with_secret()).unwrap(), with_secret);
        assert!(!format!("{with_secret:?}").contains(&secret));
        let plain = HubLocation::parse(&format!("hub://[::1]:7420#{key}")).unwrap();
        assert_eq!(plain.claim_secret, None);

        for (text, why) in [
            ("hub://nas:7420".to_owned(), "hub key"),
            (format!("hub://nas#{key}"), "port"),
            (format!("hub://nas:port#{key}"), "HOST:PORT"),
            ("hub://nas:7420#abcd".to_owned(), "64 hex"),
            (format!("hub://nas:7420#{key}.{}", "zz".repeat(32)), "claim secret"),
        ] {
            let err = HubLocation::parse(&text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {err}");
        }
        let err = HubLocation::parse(&format!("hub://nas:7420#{key}.{}", "0".repeat(63))).unwrap_err();
        assert!(!err.to_string().contains(&"0".repeat(63)), "the secret must not be echoed: {err}");
    }
}

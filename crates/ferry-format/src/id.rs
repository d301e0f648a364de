//! Random identifiers of vaults and devices, and the identity of an op.

use std::fmt;
use std::str::FromStr;

/// A malformed identifier in text form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a valid {what}: expected {expected} hexadecimal characters")]
pub struct IdError {
    what: &'static str,
    expected: usize,
    text: String,
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// Wraps 16 bytes (callers make them random).
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// Reads the id from a byte slice, as stored locally.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Some(Self(bytes.try_into().ok()?))
            }

            /// The first 8 hexadecimal characters: enough for a person to tell devices apart.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                let mut bytes = [0u8; 16];
                hex::decode_to_slice(text, &mut bytes).map_err(|_| IdError {
                    what: $what,
                    expected: 32,
                    text: text.to_owned(),
                })?;
                Ok(Self(bytes))
            }
        }
    };
}

random_id!(
    /// The random 16-byte identity of one device of a vault.
    DeviceId,
    "device id"
);
random_id!(
    /// The random 16-byte identity of a vault (one user's data).
    VaultId,
    "vault id"
);

/// The identity of an op: the device that wrote it and that device's counter, starting at 1.
///
/// Each device numbers its own ops without gaps, so an op id is unique in the vault
/// without coordination. Text form: `<device hex>.<counter>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct OpId {
    /// The device that wrote the op.
    pub device: DeviceId,
    /// That device's sequence number for the op, from 1.
    pub counter: u64,
}

impl OpId {
    /// Size of [`OpId::to_bytes`].
    pub const ENCODED_LEN: usize = 24;

    /// Fixed-width binary form: 16 bytes of device id, then the counter big-endian.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..16].copy_from_slice(self.device.as_bytes());
        out[16..].copy_from_slice(&self.counter.to_be_bytes());
        out
    }

    /// Reads the binary form of [`OpId::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::ENCODED_LEN {
            return None;
        }
        let device = DeviceId::from_slice(&bytes[..16])?;
        let counter = u64::from_be_bytes(bytes[16..].try_into().ok()?);
        Some(Self { device, counter })
    }

    /// Encodes a list of op ids as their concatenated binary forms.
    pub fn encode_list(ids: &[OpId]) -> Vec<u8> {
        ids.iter().flat_map(|id| id.to_bytes()).collect()
    }

    /// Decodes [`OpId::encode_list`]; `None` if the length is not a multiple of an op id.
    pub fn decode_list(bytes: &[u8]) -> Option<Vec<OpId>> {
        if !bytes.len().is_multiple_of(Self::ENCODED_LEN) {
            return None;
        }
        bytes.chunks_exact(Self::ENCODED_LEN).map(Self::from_bytes).collect()
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.device, self.counter)
    }
}

impl FromStr for OpId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let bad = || IdError { what: "op id", expected: 32, text: text.to_owned() };
        let (device, counter) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self { device: device.parse().map_err(|_| bad())?, counter: counter.parse().map_err(|_| bad())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_id_text_and_binary_roundtrip() {
        let id = OpId { device: DeviceId::from_bytes([0xab; 16]), counter: 42 };
        assert_eq!(id.to_string(), "abababababababababababababababab.42");
        assert_eq!(id.to_string().parse::<OpId>(), Ok(id));
        assert_eq!(OpId::from_bytes(&id.to_bytes()), Some(id));
        let list = vec![id, OpId { counter: 7, ..id }];
        assert_eq!(OpId::decode_list(&OpId::encode_list(&list)), Some(list));
        assert_eq!(OpId::decode_list(&[1, 2, 3]), None);
    }

    #[test]
    fn malformed_ids_are_errors() {
        assert!("xyz".parse::<DeviceId>().is_err());
        assert!("ab".parse::<VaultId>().is_err());
        assert!("abababababababababababababababab".parse::<OpId>().is_err());
        assert!("abababababababababababababababab.-1".parse::<OpId>().is_err());
    }
}

/// A key epoch as stores name it: its number and, from epoch 1 on, the 16 random bytes the
/// rotating device chose (its *tag*). The tag makes the epoch's directory (`keys/<n>.<tag>/`)
/// and its revocation's name unguessable until the rotation is published, so nobody who can
/// merely write to a store can take those names first and block the rotation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct EpochRef {
    /// The epoch number: 0 for the vault's first key, +1 per rotation.
    pub number: u32,
    /// The rotation's tag; `None` exactly for epoch 0.
    pub tag: Option<[u8; 16]>,
}

impl EpochRef {
    /// The vault's first epoch.
    pub const FIRST: Self = Self { number: 0, tag: None };

    /// Epoch `number` (≥ 1) with its tag.
    pub const fn tagged(number: u32, tag: [u8; 16]) -> Self {
        Self { number, tag: Some(tag) }
    }

    /// Reads a directory name under `keys/`: `0`, or `<n>.<32 hex>` for n ≥ 1, in canonical
    /// spelling only.
    pub fn parse(text: &str) -> Option<Self> {
        let parsed = match text.split_once('.') {
            None => (text == "0").then_some(Self::FIRST)?,
            Some((number, tag)) => {
                let number: u32 = number.parse().ok()?;
                let mut bytes = [0u8; 16];
                hex::decode_to_slice(tag, &mut bytes).ok()?;
                (number >= 1).then_some(Self::tagged(number, bytes))?
            }
        };
        (parsed.to_string() == text).then_some(parsed)
    }
}

impl fmt::Display for EpochRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tag {
            None => write!(f, "{}", self.number),
            Some(tag) => write!(f, "{}.{}", self.number, hex::encode(tag)),
        }
    }
}

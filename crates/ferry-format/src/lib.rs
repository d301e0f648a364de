//! The bytes of ferry: identifiers, hybrid logical clocks, ops, names and key material.
//!
//! Everything ferry replicates is described here, as plain types and pure functions.
//! **This crate does no I/O and knows nothing about SQLite, stores or the network**: it
//! can be tested exhaustively with fixed inputs, and every other crate builds on it.
//!
//! The data model (see `docs/ARCHITECTURE.md`):
//!
//! - A *vault* ([`VaultId`]) is one user's data, shared by that user's *devices* ([`DeviceId`]).
//! - Data lives in *collections* of *records*: `(collection, key) → JSON value`.
//! - Every change is an [`Op`] identified by `(device_id, counter)` ([`OpId`]) and stamped with
//!   a hybrid logical clock ([`Hlc`]) that never goes backwards.
//!
//! ```
//! use ferry_format::{DeviceId, HlcClock, Op, OpId, OpKind, Collection, RecordKey};
//!
//! let device = DeviceId::from_bytes([7; 16]);
//! let mut clock = HlcClock::default();
//! let op = Op {
//!     id: OpId { device, counter: 1 },
//!     hlc: clock.tick(1_700_000_000_000)?,
//!     collection: Collection::new("notes")?,
//!     key: RecordKey::new("n1")?,
//!     kind: OpKind::put_json(r#"{"title":"hi"}"#)?,
//!     parents: vec![],
//! };
//! assert_eq!(op.hlc.wall_ms(), 1_700_000_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
pub mod canonical;
#[doc(hidden)]
pub mod fuzzing;
mod hlc;
mod id;
mod keys;
mod name;
pub mod objects;
mod op;
pub mod pairing;
pub mod seal;
pub mod typed;

#[cfg(test)]
mod format_document;

pub use hlc::{Hlc, HlcClock, HlcError};
pub use id::{DeviceId, EpochRef, IdError, OpId, VaultId};
pub use keys::{Fingerprint, MasterKey, RecoveryPhrase, RecoveryPhraseError, SecretBytes};
pub use name::{Collection, NameError, RecordKey};
pub use op::{Forget, ForgetScope, JsonValue, MAX_VALUE_BYTES, Op, OpKind, ValueError};

//! ferry's network layer: devices serve the sealed objects they hold to each other over mutual
//! TLS pinned to the vault's device registry (`tls`), through a small read-only HTTP API
//! (`server`), read by [`PeerStore`], a [`ferry_store::Store`] the engine pulls from like any
//! other. A device serves what it imported too, so data travels A → B → C with A offline.
//!
//! Nothing here decrypts an object or holds merge logic: the engine verifies everything it
//! imports, whoever served it.

mod peer_store;
mod server;
pub mod tls;

pub use peer_store::PeerStore;
pub use server::{PeerServer, serve};
pub use tls::{Pins, TlsError, TlsIdentity};

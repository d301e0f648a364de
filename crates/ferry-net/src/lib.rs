//! ferry's network layer: devices serve the sealed objects they hold to each other over mutual
//! TLS pinned to the vault's device registry (`tls`), through a small read-only HTTP API
//! (`server`), read by [`PeerStore`], a [`ferry_store::Store`] the engine pulls from like any
//! other. A device serves what it imported too, so data travels A → B → C with A offline.
//!
//! [`Daemon`] (`ferry serve`) puts it together: it finds the vault's other devices on the LAN
//! with mDNS or at stored addresses, follows each with a long-poll so a write reaches a peer
//! within one pull, pushes local writes to the stores, and answers apps on a local API.
//!
//! Nothing here decrypts an object or holds merge logic: the engine verifies everything it
//! imports, whoever served it.

pub mod api;
mod attempts;
mod changes;
mod daemon;
mod dial;
mod discovery;
mod doctor;
#[doc(hidden)]
pub mod fuzzing;
pub mod hub_check;
mod hub_server;
mod hub_state;
mod link;
mod pairing;
mod peer_store;
mod peers;
mod replicator;
mod server;
pub mod tls;

pub use attempts::{Attempt, Attempts, Direction};
pub use changes::Changes;
pub use daemon::{Daemon, DaemonConfig, DaemonError, StoreSync, token_path};
pub use dial::dial_order;
pub use discovery::{DiscoveryError, SERVICE_TYPE};
pub use doctor::{Check, Level, describe as describe_store_keys, doctor};
pub use hub_server::{Hub, HubError, objects_dir, serve_hub};
pub use hub_state::{ClaimRefusal, HubStateError};
pub use pairing::{Acceptance, Invitation, accept, codes_match};
pub use peer_store::{ClaimAs, PeerStore, Waited, hub_opener};
pub use peers::{PeerInfo, PeerState, PeerTable};
pub use replicator::{PeerPull, Replicator, Revocation, StoreOutcome};
pub use server::{ServeError, Served, ServedCounts, Server, ServerEvents, serve};
pub use tls::{Pins, TlsError, TlsIdentity};

use ferry_engine::now_ms;

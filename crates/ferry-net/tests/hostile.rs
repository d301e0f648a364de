//! The hostile-actor suite, network side: each test performs one attack against a real server
//! on 127.0.0.1 and asserts the refusal and what the server records. The store-side attacks
//! (store writer, revoked device writing to a store) are in `ferry-engine`'s `hostile_tests`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{identity, pins, three_devices, unlock};
use ferry_engine::{Home, Vault};
use ferry_net::{PeerStore, ServerEvents, serve};
use ferry_store::{Store, StoreErrorKind};

#[test]
fn hole_9_a_connection_open_when_its_device_is_revoked_gets_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _c, _store) = three_devices(dir.path());
    let served = Vault::open(&Home::new(dir.path().join("a")), &unlock()).unwrap();
    let server_pins = pins(&a);
    let events = ServerEvents::default();
    let server =
        serve(served, &identity(&a), server_pins.clone(), "127.0.0.1:0".parse().unwrap(), events.clone()).unwrap();

    // b connects while it is active and keeps its connection open (the client pools it).
    let from_a = PeerStore::new(&server.addr().to_string(), &identity(&b), pins(&b)).unwrap();
    assert!(from_a.get("ferry-vault.json").unwrap().is_some());

    // b is revoked (the daemon re-pins from the registry): the same connection is refused.
    let b_id = b.device_id();
    server_pins.set(a.active_device_keys().unwrap().into_iter().filter(|(device, _)| *device != b_id));
    let err = from_a.get("ferry-vault.json").unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(from_a.list("log/").is_err());
    let refused = events.attempts.latest(50);
    assert!(
        refused.iter().any(|attempt| !attempt.ok && attempt.detail.contains("revoked while connected")),
        "the refusal is recorded: {refused:?}"
    );
}

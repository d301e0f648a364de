//! Devices pulling from each other over mutual TLS on 127.0.0.1, and the connections that must
//! be refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{identity, options, pins, three_devices, unlock};
use ferry_engine::{Home, Vault};
use ferry_net::{PeerStore, Server, ServerEvents, serve};
use ferry_store::{Store, StoreErrorKind};
use serde_json::json;
use std::path::Path;

/// Serves `vault`'s home through a second handle (the caller keeps writing with the first).
fn serve_home(dir: &Path, name: &str, vault: &Vault) -> Server {
    serve_home_with(dir, name, vault, ServerEvents::default())
}

fn serve_home_with(dir: &Path, name: &str, vault: &Vault, events: ServerEvents) -> Server {
    let served = Vault::open(&Home::new(dir.join(name)), &unlock()).unwrap();
    serve(served, &identity(vault), pins(vault), "127.0.0.1:0".parse().unwrap(), events).unwrap()
}

fn peer(of: &Vault, server: &Server) -> PeerStore {
    PeerStore::new(&server.addr().to_string(), &identity(of), pins(of)).unwrap()
}

fn value(vault: &Vault, key: &str) -> Option<String> {
    vault.get("notes", key).unwrap().map(|r| r.value.as_str().to_owned())
}

#[test]
fn devices_pull_from_each_other_and_data_travels_on_with_the_first_one_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c, _store) = three_devices(dir.path());
    a.put("notes", "lan", &json!("from a, over the LAN only")).unwrap();

    let a_server = serve_home(dir.path(), "a", &a);
    let from_a = peer(&b, &a_server);
    let report = b.pull_from_peer(&from_a).unwrap();
    assert_eq!(report.imported_ops, 1, "{report:?}");
    assert_eq!(value(&b, "lan").as_deref(), Some("\"from a, over the LAN only\""));
    // Nothing changed: the second pull reads HEADs with etags and imports nothing.
    assert_eq!(b.pull_from_peer(&from_a).unwrap().imported_ops, 0);
    assert!(from_a.put("log/x/HEAD", b"x").is_err(), "a peer is read-only");
    drop(a_server);

    // a is gone; c gets a's write from b, verified against a's signature.
    let b_server = serve_home(dir.path(), "b", &b);
    let from_b = peer(&c, &b_server);
    c.pull_from_peer(&from_b).unwrap();
    assert_eq!(value(&c, "lan").as_deref(), Some("\"from a, over the LAN only\""));
    assert!(b.stores().unwrap().iter().all(|s| !s.url.starts_with("peer:")), "peers are not stores");

    // A peer that is down is unavailable (retry later), not an error of the data.
    let gone = PeerStore::new("127.0.0.1:1", &identity(&c), pins(&c)).unwrap();
    let err = gone.get("ferry-vault.json").unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
}

#[test]
fn strangers_revoked_devices_and_plain_http_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b, c, _store) = three_devices(dir.path());
    let events = ServerEvents::default();
    let a_server = serve_home_with(dir.path(), "a", &a, events.clone());

    // A device of another vault, in both directions (here, one that even trusts a's key).
    let stranger = Vault::create(&Home::new(dir.path().join("stranger")), options("stranger")).unwrap().vault;
    let stranger_pins = pins(&stranger);
    stranger_pins.set(stranger.active_device_keys().unwrap().into_iter().chain(a.active_device_keys().unwrap()));
    let err = PeerStore::new(&a_server.addr().to_string(), &identity(&stranger), stranger_pins)
        .unwrap()
        .get("ferry-vault.json")
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let stranger_server = serve(
        Vault::open(&Home::new(dir.path().join("stranger")), &unlock()).unwrap(),
        &identity(&stranger),
        pins(&stranger),
        "127.0.0.1:0".parse().unwrap(),
        ServerEvents::default(),
    )
    .unwrap();
    let err = peer(&b, &stranger_server).get("ferry-vault.json").unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");

    // The refusal is recorded with its reason, for `GET /api/sync/attempts`.
    assert!(
        recorded(&events, |a| !a.ok && a.detail.contains("not an active device") && a.device_id.is_none()),
        "{:?}",
        events.attempts.latest(10)
    );

    // A revoked device: refused once the server's pins follow the registry.
    a.revoke_device(&c.device_id().to_string()).unwrap();
    drop(a_server);
    let a_server = serve_home_with(dir.path(), "a", &a, events.clone());
    let err = peer(&c, &a_server).get("ferry-vault.json").unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let mut b = b;
    assert!(peer(&b, &a_server).get("ferry-vault.json").unwrap().is_some(), "b is still a member");
    b.pull_from_peer(&peer(&b, &a_server)).unwrap();

    // Plain HTTP to the TLS port gets no answer it could use.
    let plain = std::net::TcpStream::connect(a_server.addr()).unwrap();
    plain.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut plain = plain;
    std::io::Write::write_all(&mut plain, b"GET /v1/objects/ferry-vault.json HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("ferry-vault"), "no object over plain HTTP");
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    assert!(recorded(&events, |at| !at.ok && at.detail.contains("not TLS")), "{:?}", events.attempts.latest(5));
}

/// Whether an attempt matching `what` is recorded within 2 s (the server records a refusal just
/// after closing the connection, so the client may see the refusal first).
fn recorded(events: &ServerEvents, what: impl Fn(&ferry_net::Attempt) -> bool) -> bool {
    (0..200).any(|_| {
        if events.attempts.latest(10).iter().any(&what) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        false
    })
}

#[test]
fn a_long_log_crosses_in_batches_each_segment_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, _c, _store) = three_devices(dir.path());
    for n in 0..100 {
        a.put("notes", &format!("n{n}"), &json!(n)).unwrap();
        a.held_paths("log/").unwrap(); // seals what is pending: one segment per write
    }
    let events = ServerEvents::default();
    let a_server = serve_home_with(dir.path(), "a", &a, events.clone());
    let report = b.pull_from_peer(&peer(&b, &a_server)).unwrap();
    assert_eq!(report.imported_segments, 100, "{report:?}");
    let served = events.served.counts();
    eprintln!("a pull of 100 segments: {served:?}");
    // A listing of devices, a HEAD per device, two batches of segments (64 + 36): not 100+.
    assert!(served.data_requests <= 8, "{served:?}");
    let segments = a.held_paths(&format!("log/{}/", a.device_id())).unwrap().len() - 1; // without the HEAD
    assert_eq!(segments, 100);
    assert!(served.objects <= 100 + 6, "each segment once, plus records and HEADs: {served:?}");
    // Pulling again fetches no segment.
    let before = events.served.counts();
    assert_eq!(b.pull_from_peer(&peer(&b, &a_server)).unwrap().imported_segments, 0);
    let after = events.served.counts();
    assert!(after.object_bytes - before.object_bytes < 2_000, "{before:?} → {after:?}");
}

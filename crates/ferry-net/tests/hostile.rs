//! The hostile-actor suite, network side: each test performs one attack against a real server
//! on 127.0.0.1 and asserts the refusal and what the server records. The store-side attacks
//! (store writer, revoked device writing to a store) are in `ferry-engine`'s `hostile_tests`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{attach_hub, hub_location, identity, pins, refusal, start_hub, sync_hub, three_devices, unlock};
use ferry_engine::{Home, Vault};
use ferry_format::objects::paths;
use ferry_format::seal::{self, ObjectId, ObjectKind, SealKeys};
use ferry_format::{MasterKey, SecretBytes};
use ferry_net::{Hub, PeerStore, Pins, ServerEvents, TlsIdentity, serve, tls};
use ferry_store::{HubLocation, Store, StoreErrorKind};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Sends raw HTTP over TLS as `identity` to a hub, and reads what comes back within `wait`:
/// what a client that ignores ferry's rules can do.
fn raw_request(hub: &Hub, identity: &TlsIdentity, head: &str, body: &[u8], wait: Duration) -> String {
    let pins = Pins::default();
    pins.set([(ferry_format::DeviceId::from_bytes([0; 16]), hub.key())]);
    let config = Arc::new(tls::client_config(identity, pins).unwrap());
    let name = rustls::pki_types::ServerName::try_from("hub.ferry.invalid").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(hub.addr()).unwrap();
    tcp.set_read_timeout(Some(wait)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(body).unwrap();
    tls.flush().unwrap();
    let mut answer = vec![0; 4096];
    let read = tls.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

fn stranger() -> TlsIdentity {
    TlsIdentity::new(&SecretBytes::new([0x5a; 32])).unwrap()
}

#[test]
fn hole_6_a_hub_refuses_before_reading_a_body_and_caps_what_strangers_leave() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _b, _c, _store) = three_devices(dir.path());
    let hub = start_hub(dir.path());
    let from_a = attach_hub(&mut a, &hub_location(&hub));
    sync_hub(&mut a, from_a.as_ref());

    // A stranger announces a 64 MiB object and sends a few bytes: the refusal comes at once,
    // without the hub waiting for (or holding) the body.
    let head = format!(
        "PUT /v1/objects/{} HTTP/1.1\r\nHost: hub\r\nContent-Length: {}\r\n\r\n",
        paths::head(a.device_id()),
        64 << 20
    );
    let started = Instant::now();
    let answer = raw_request(&hub, &stranger(), &head, &[0; 1000], Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 403"), "refused before the body: {answer:?}");
    assert!(answer.contains("not an active device"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered without waiting for the body");

    // Strangers may leave pairing objects (a joining device is one), but few, small, and only
    // their writer (or a device of the vault) removes them.
    let as_stranger = PeerStore::hub(&hub_location(&hub), &stranger()).unwrap();
    refusal(as_stranger.put_if_absent(&paths::pair(&[8; 16], "request"), &vec![0; 65 << 10]), "larger than");
    for n in 0..4u8 {
        as_stranger.put_if_absent(&paths::pair(&[n; 16], "request"), b"sealed request").unwrap();
    }
    refusal(as_stranger.put_if_absent(&paths::pair(&[9; 16], "request"), b"one more"), "too many pairings");
    let other = PeerStore::hub(&hub_location(&hub), &TlsIdentity::new(&SecretBytes::new([0x5b; 32])).unwrap()).unwrap();
    refusal(other.delete(&paths::pair(&[0; 16], "request")), "only the key that wrote");
    as_stranger.delete(&paths::pair(&[0; 16], "request")).unwrap();
    from_a.delete(&paths::pair(&[1; 16], "request")).unwrap();
    // Paths that name no ferry object are refused before the disk is touched (not a 500).
    let climb = "PUT /v1/objects/pair/0000/../../hub.json HTTP/1.1\r\nHost: hub\r\nContent-Length: 1\r\n\r\n";
    let answer = raw_request(&hub, &stranger(), climb, b"x", Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("not a ferry store path"), "{answer:?}");
    let read = "GET /v1/objects/keys/0/../../hub.json HTTP/1.1\r\nHost: hub\r\n\r\n";
    let answer = raw_request(&hub, &stranger(), read, b"", Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer:?}");
    assert!(dir.path().join("hub/hub.json").exists());
}

#[test]
fn hole_6_idle_connections_cannot_hold_a_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _b, _c, _store) = three_devices(dir.path());
    let hub = start_hub(dir.path());
    let location = hub_location(&hub);
    attach_hub(&mut a, &location);
    // 300 connections that never start TLS: the cap turns the extra ones away, and the
    // handshake time limit frees the slots of the rest.
    let idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(hub.addr()).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !hub.attempts().latest(500).iter().any(|attempt| attempt.detail.contains("too many connections"))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(hub.attempts().latest(500).iter().any(|attempt| attempt.detail.contains("too many connections")));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = false;
    while Instant::now() < deadline && !served {
        // A new connection each time (a pooled one would not need a slot).
        let plain = HubLocation { claim_secret: None, ..location.clone() };
        served = common::open_hub(&a, &plain).is_ok_and(|hub| hub.list("log/").is_ok());
        if !served {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    assert!(served, "a device is served again once idle connections time out");
    drop(idle);
}

#[test]
fn hole_7_a_pinned_device_writes_only_what_its_role_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, c, _store) = three_devices(dir.path());
    let hub = start_hub(dir.path());
    let from_a = attach_hub(&mut a, &hub_location(&hub));
    a.put("notes", "n1", &json!("a's")).unwrap();
    sync_hub(&mut a, from_a.as_ref());
    let plain = HubLocation { claim_secret: None, ..hub_location(&hub) };
    let from_b = attach_hub(&mut b, &plain);
    sync_hub(&mut b, from_b.as_ref());

    // b replaces a's segment with a genuine one of a's (a rollback of a rewrite would look
    // like this), and a's HEAD with a's own earlier HEAD: only a replaces a's log.
    let a_segment = from_b.get(&paths::segment(a.device_id(), 1)).unwrap().unwrap();
    refusal(from_b.put(&paths::segment(a.device_id(), 1), &a_segment), "written once");
    let a_head = from_b.get(&paths::head(a.device_id())).unwrap().unwrap();
    refusal(from_b.put(&paths::head(a.device_id()), &a_head), "written once");
    // A registry object is never replaced either.
    let record = from_b.get(&paths::device_record(a.device_id())).unwrap().unwrap();
    refusal(from_b.put(&paths::device_record(a.device_id()), &record), "written once");

    // b revokes a with a rotation it never started: devices would refuse it, so the hub does.
    let b_key = ed25519_dalek::SigningKey::from_bytes(b.device_signing_secret().unwrap().expose());
    let (vault_id, b_id) = (a.vault_id(), b.device_id());
    let seal_as_b = |kind, id, epoch| {
        let keys = SealKeys { epoch, master_key: &MasterKey::new([1; 32]), signing_key: &b_key };
        seal::seal(kind, vault_id, b_id, id, [2; 24], &keys, b"the hub cannot read this").unwrap()
    };
    let tag = [0x77; 16];
    let forged = seal_as_b(ObjectKind::Revocation, ObjectId::revocation(a.device_id(), &tag), 0);
    refusal(from_b.put_if_absent(&paths::revocation(a.device_id(), &tag), &forged), "not written by its signer");
    assert!(from_a.list("log/").is_ok(), "a is still pinned");

    // A record sealed under an epoch older than the vault's current one is kept but pins nobody.
    let c_id = c.device_id();
    a.revoke_device(&c_id.to_string()).unwrap();
    sync_hub(&mut a, from_a.as_ref());
    let pinned_before = hub.vault().unwrap().1;
    let ghost = ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]);
    let ghost_id = ferry_format::DeviceId::from_bytes([0x66; 16]);
    let old = seal_as_b(ObjectKind::Device, ObjectId(ghost.verifying_key().to_bytes()), 0);
    from_b.put_if_absent(&paths::device_record(ghost_id), &old).unwrap();
    assert_eq!(hub.vault().unwrap().1, pinned_before, "the old-epoch record pinned nobody");
    let as_ghost = PeerStore::hub(&plain, &TlsIdentity::new(&SecretBytes::new([0x66; 32])).unwrap()).unwrap();
    refusal(as_ghost.list("log/"), "not an active device");
    assert!(hub.attempts().latest(100).iter().any(|attempt| attempt.detail.contains("written once")));
}

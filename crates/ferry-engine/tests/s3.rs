//! The replication suite against real S3-compatible servers on 127.0.0.1: `moto_server`
//! (PyPI `moto[server]`) and `s3s-fs` (crates.io), two independent implementations, so ferry
//! is not built to one server's quirks. `.ci/run` installs both; each test starts its own server
//! processes and stops them. Outside CI a missing server skips the test loudly; in CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use ferry_engine::{
    CreateOptions, Direction, Error, Home, JoinOptions, JoinWith, KdfCost, ListOptions, Pairing, Passphrase,
    StoreHandle, StoreState, Unlock, Vault,
};
use ferry_store::{CountingStore, Created, Fetched, S3Credentials, S3Location, S3Store, Store, StoreError};
use serde_json::json;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[path = "support/s3_server.rs"]
mod s3_server;

use s3_server::{Kind, Server, servers};

fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("vault passphrase"), kdf_cost: KdfCost::WorkFactor(4) }
}

fn create(dir: &Path, name: &str, store: &dyn Store) -> Vault {
    let home = Home::new(dir.join(name));
    let mut vault =
        Vault::create_for_store(&home, CreateOptions { device_name: name.into(), unlock: unlock() }, "s3", store)
            .unwrap()
            .vault;
    vault.sync(StoreHandle { id: first_store(&vault), store }, Direction::Push).unwrap();
    vault
}

fn join(dir: &Path, name: &str, store: &dyn Store) -> Vault {
    Vault::join(
        &Home::new(dir.join(name)),
        JoinOptions { device_name: name.into(), unlock: unlock(), with: JoinWith::Passphrase },
        "s3",
        store,
    )
    .unwrap()
}

fn records(vault: &Vault) -> Vec<(String, String)> {
    let mut all: Vec<_> = vault
        .list("notes", &ListOptions::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value.as_str().to_owned()))
        .collect();
    all.sort();
    all
}

#[test]
fn the_store_contract_holds_on_real_servers() {
    for server in servers() {
        let store = server.store("contract");
        let kind = server.kind;
        assert_eq!(store.get("log/d/HEAD").unwrap(), None, "{kind:?}");
        assert_eq!(store.put_if_absent("log/d/0001.seg", b"one").unwrap(), Created::New, "{kind:?}");
        assert_eq!(store.put_if_absent("log/d/0001.seg", b"changed").unwrap(), Created::Exists, "{kind:?}");
        assert_eq!(
            store.get("log/d/0001.seg").unwrap().as_deref(),
            Some(&b"one"[..]),
            "{kind:?}: create-if-absent must not overwrite"
        );
        store.put("log/d/HEAD", b"v1").unwrap();
        let Fetched::Changed { etag, .. } = store.get_if_changed("log/d/HEAD", None).unwrap() else {
            panic!("{kind:?}")
        };
        assert!(etag.is_some(), "{kind:?} gives etags");
        assert_eq!(store.get_if_changed("log/d/HEAD", etag.as_deref()).unwrap(), Fetched::Unchanged, "{kind:?}");
        store.put("log/d/HEAD", b"v2").unwrap();
        let many = store.get_many(&["log/d/0001.seg".into(), "log/d/0002.seg".into(), "log/d/HEAD".into()]).unwrap();
        assert_eq!(many, [Some(b"one".to_vec()), None, Some(b"v2".to_vec())], "{kind:?}: read at once, in order");
        let sized: Vec<_> = store.list_sized("log/").unwrap().into_iter().map(|l| (l.path, l.size)).collect();
        assert_eq!(sized, [("log/d/0001.seg".into(), Some(3)), ("log/d/HEAD".into(), Some(2))], "{kind:?}");
        assert!(
            matches!(store.get_if_changed("log/d/HEAD", etag.as_deref()).unwrap(), Fetched::Changed { bytes, .. } if bytes == b"v2"),
            "{kind:?}"
        );
        assert_eq!(store.list("log/").unwrap(), ["log/d/0001.seg", "log/d/HEAD"], "{kind:?}");
        store.delete("log/d/0001.seg").unwrap();
        assert_eq!(store.get("log/d/0001.seg").unwrap(), None, "{kind:?}");
    }
}

#[test]
fn two_devices_roundtrip_through_a_bucket() {
    for server in servers() {
        let dir = tempfile::tempdir().unwrap();
        let store = server.store("roundtrip");
        let mut a = create(dir.path(), "a", &store);
        a.put("notes", "n1", &json!({"title": "through S3"})).unwrap();
        let blob = a.put_blob(&vec![7u8; 3 * 1024 * 1024 + 5][..]).unwrap();
        a.sync(StoreHandle { id: first_store(&a), store: &store }, Direction::Both).unwrap();

        let mut b = join(dir.path(), "b", &store);
        b.put("notes", "n2", &json!("from b")).unwrap();
        b.sync(StoreHandle { id: first_store(&b), store: &store }, Direction::Both).unwrap();
        a.sync(StoreHandle { id: first_store(&a), store: &store }, Direction::Both).unwrap();
        assert_eq!(records(&a), records(&b), "{:?}", server.kind);
        assert_eq!(records(&a).len(), 2);
        let mut out = Vec::new();
        b.get_blob(&blob.id.parse().unwrap(), &[StoreHandle { id: first_store(&b), store: &store }], &mut out).unwrap();
        assert_eq!(out.len(), 3 * 1024 * 1024 + 5);
        assert!(b.sync_status().unwrap().skipped.is_empty());
    }
}

#[test]
fn a_bucket_of_another_vault_is_refused_and_nothing_is_written() {
    for server in servers() {
        let dir = tempfile::tempdir().unwrap();
        let store = server.store("theirs");
        let _owner = create(dir.path(), "owner", &store);
        let other_store = server.store("mine");
        let mut stranger = create(dir.path(), "stranger", &other_store);
        stranger.put("notes", "x", &json!(1)).unwrap();
        let before = store.list("").unwrap();
        let err = stranger.push(StoreHandle { id: first_store(&stranger), store: &store }).unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }), "{:?}: {err:?}", server.kind);
        assert_eq!(store.list("").unwrap(), before, "{:?}", server.kind);
    }
}

#[test]
fn pairing_and_revocation_through_a_bucket() {
    for server in servers() {
        let kind = server.kind;
        let dir = tempfile::tempdir().unwrap();
        let store = server.store("pairing");
        let mut a = create(dir.path(), "a", &store);
        let handle = StoreHandle { id: first_store(&a), store: &store };
        a.put("notes", "n1", &json!("shared")).unwrap();
        a.sync(handle, Direction::Both).unwrap();

        let invite = a.invite("s3", 60_000).unwrap();
        let token = invite.to_token();
        let pairing = Pairing::start(ferry_format::pairing::Invite::parse(&token).unwrap(), "phone", &store).unwrap();
        let request = a.pair_request(&invite, &store).unwrap().expect("request visible");
        assert_eq!(request.code, pairing.confirmation(&store).unwrap().expect("revealed").code, "{kind:?}");
        let replay = Pairing::start(ferry_format::pairing::Invite::parse(&token).unwrap(), "again", &store);
        assert!(matches!(replay, Err(Error::InviteUsed)), "{kind:?}: {replay:?}");
        a.approve_pairing(&invite, &store, &request).unwrap();
        let epoch = pairing.poll(&store).unwrap().expect("approved");
        let options = CreateOptions { device_name: "phone".into(), unlock: unlock() };
        let mut phone = pairing.finish(&Home::new(dir.path().join("phone")), &options, epoch, &store).unwrap();
        assert!(store.list("pair/").unwrap().is_empty(), "{kind:?}: the exchange is removed");
        phone.sync(handle, Direction::Both).unwrap();
        assert_eq!(records(&phone), records(&a), "{kind:?}");

        a.sync(handle, Direction::Both).unwrap();
        a.revoke_device(&phone.device_id().to_string()).unwrap();
        a.put("notes", "n2", &json!("after")).unwrap();
        a.sync(handle, Direction::Both).unwrap();
        let err = phone.sync(handle, Direction::Both).unwrap_err();
        assert!(matches!(err, Error::Revoked { .. }), "{kind:?}: {err:?}");
        assert_eq!(records(&phone).len(), 1, "{kind:?}: nothing sealed with the new key is readable");
    }
}

/// Ten devices, a hundred segments each: pulling when nothing changed costs one listing and one
/// conditional HEAD read per other device, counted on the real server.
#[test]
fn a_no_op_pull_of_ten_devices_and_a_thousand_segments_makes_at_most_eleven_requests() {
    for server in servers() {
        let dir = tempfile::tempdir().unwrap();
        let store = server.store("noop");
        let mut devices = vec![create(dir.path(), "d0", &store)];
        for i in 1..10 {
            devices.push(join(dir.path(), &format!("d{i}"), &store));
        }
        for (i, device) in devices.iter_mut().enumerate() {
            for seq in 0..100 {
                device.put("notes", &format!("{i}-{seq}"), &json!(seq)).unwrap();
                device.push(StoreHandle { id: first_store(device), store: &store }).unwrap();
            }
        }
        let reader = &mut devices[0];
        let report = reader.pull(StoreHandle { id: first_store(reader), store: &store }).unwrap();
        assert_eq!(report.imported_segments, 900, "{:?}", server.kind);
        let counting = CountingStore::new(&store);
        let before = store.requests();
        let report = reader.pull(StoreHandle { id: first_store(reader), store: &counting }).unwrap();
        assert_eq!(report.imported_ops, 0);
        let requests = store.requests() - before;
        assert!(requests <= 11, "{:?}: {requests} requests", server.kind);
        let counts = counting.counts();
        assert_eq!((counts.lists, counts.reads, counts.writes), (1, 9, 0), "{:?}", server.kind);
        assert_eq!(requests, 10, "{:?}: one listing and one HEAD per other device", server.kind);
    }
}

/// Kills the server process just before the `kill_at`-th write reaches it.
#[derive(Debug)]
struct KillServer<'a> {
    inner: &'a S3Store,
    writes: AtomicU64,
    kill_at: u64,
    server: &'a Mutex<Server>,
}

impl KillServer<'_> {
    fn before_write(&self) {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.kill_at {
            self.server.lock().unwrap().stop();
        }
    }
}

impl Store for KillServer<'_> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(path)
    }
    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        self.inner.get_if_changed(path, etag)
    }
    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        self.before_write();
        self.inner.put_if_absent(path, bytes)
    }
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.before_write();
        self.inner.put(path, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.inner.delete(path)
    }
}

/// The server dies in the middle of a push and comes back: the push is recorded as offline,
/// completes on the next attempt, and the other device gets every op exactly once. s3s-fs keeps
/// its objects on disk across the restart (moto keeps them in memory, so it cannot take part).
#[test]
fn a_server_stopped_mid_push_and_restarted_loses_and_duplicates_nothing() {
    let Some(server) = Server::start(Kind::S3sFs) else { return };
    let server = Mutex::new(server);
    let dir = tempfile::tempdir().unwrap();
    let store = server.lock().unwrap().store("restart");
    let mut a = create(dir.path(), "a", &store);
    for batch in 0..6 {
        for i in 0..3 {
            a.put("notes", &format!("{batch}-{i}"), &json!(i)).unwrap();
        }
    }
    // The push writes 3 blob chunks and a manifest, then a segment, then the HEAD: the server
    // dies before the third write reaches it.
    let bytes: Vec<u8> = (0..(2 * 1024 * 1024 + 10)).map(|i: u32| (i % 251) as u8).collect();
    let blob = a.put_blob(&bytes[..]).unwrap();
    let killer = KillServer { inner: &store, writes: AtomicU64::new(0), kill_at: 3, server: &server };
    let failed = a.sync(StoreHandle { id: first_store(&a), store: &killer }, Direction::Push);
    assert!(failed.is_err(), "the push must fail while the server is down");
    let status = a.sync_status().unwrap();
    assert_eq!(status.stores[0].state, StoreState::Offline, "{:?}", status.stores[0]);
    assert!(
        status.stores[0].last_error.as_deref().unwrap_or_default().contains("cannot be reached"),
        "{:?}",
        status.stores[0]
    );

    server.lock().unwrap().spawn();
    a.sync(StoreHandle { id: first_store(&a), store: &store }, Direction::Push).unwrap();
    assert_eq!(a.sync_status().unwrap().stores[0].state, StoreState::UpToDate);
    let mut b = join(dir.path(), "b", &store);
    b.sync(StoreHandle { id: first_store(&b), store: &store }, Direction::Pull).unwrap();
    assert_eq!(records(&b), records(&a));
    assert_eq!(b.status().unwrap().ops, 18);
    let mut out = Vec::new();
    b.get_blob(&blob.id.parse().unwrap(), &[StoreHandle { id: first_store(&b), store: &store }], &mut out).unwrap();
    assert!(out == bytes);
}

/// Wrong credentials get one clear error that says what to check, are recorded as an error (not
/// as offline), and are not retried in a storm.
#[test]
fn wrong_credentials_are_one_clear_error_without_retries() {
    let Some(server) = Server::start(Kind::S3sFs) else { return };
    let dir = tempfile::tempdir().unwrap();
    let good = server.store("creds");
    let mut a = create(dir.path(), "a", &good);
    let wrong = S3Store::new(
        S3Location::parse(&server.url("creds")).unwrap(),
        Some(S3Credentials {
            access_key_id: "ferry-test".into(),
            secret_access_key: "not-the-secret".into(),
            session_token: None,
        }),
    )
    .unwrap();
    a.put("notes", "n1", &json!(1)).unwrap();
    let err = a.sync(StoreHandle { id: first_store(&a), store: &wrong }, Direction::Both).unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default());
    assert!(text.contains("check the credentials"), "{text}");
    assert!(!text.contains("not-the-secret"), "secrets must never be printed: {text}");
    assert_eq!(wrong.requests(), 1, "a refusal is not retried request after request");
    let status = a.sync_status().unwrap();
    assert_eq!(status.stores[0].state, StoreState::Error);
    assert_eq!(status.unpublished_ops, 1, "nothing was lost: the op waits for the next sync");
}

/// The id of the first store the vault syncs with.
fn first_store(vault: &ferry_engine::Vault) -> ferry_engine::StoreId {
    vault.stores().unwrap()[0].id
}

/// Prune against both servers: the bucket keeps the snapshot, the HEADs and what no snapshot
/// covers; a device joining afterwards reads everything from the snapshot.
#[test]
fn a_prune_deletes_what_the_snapshot_stands_for_in_a_bucket_and_a_new_device_joins_from_it() {
    for server in servers() {
        let dir = tempfile::tempdir().unwrap();
        let store = server.store("prune");
        let mut a = create(dir.path(), "a", &store);
        let handle = |vault: &Vault| StoreHandle { id: first_store(vault), store: &store };
        for round in 0..6 {
            a.put("notes", "n1", &json!({ "round": round })).unwrap();
            a.sync(handle(&a), Direction::Both).unwrap();
        }
        let segments = || store.list("log/").unwrap().iter().filter(|p| p.ends_with(".seg")).count();
        let before = segments();
        let options = ferry_engine::PruneOptions {
            keep: Some(ferry_engine::Retention::Keep { ms: 0 }),
            grace_ms: 0,
            ..ferry_engine::PruneOptions::default()
        };
        let report = a.prune(&[handle(&a)], &options).unwrap();
        let pruned = report.stores[0].1.as_ref().unwrap();
        assert!(pruned.deleted_objects >= 6, "{:?}: {pruned:?}", server.kind);
        assert!(segments() < before, "{:?}", server.kind);

        let mut b = join(dir.path(), "b", &store);
        let pulled = b.sync(handle(&b), Direction::Both).unwrap().pull.unwrap();
        assert!(pulled.snapshot.is_some(), "{:?}", server.kind);
        assert_eq!(records(&b), records(&a), "{:?}", server.kind);
        assert!(b.sync_status().unwrap().skipped.is_empty(), "{:?}", server.kind);
    }
}

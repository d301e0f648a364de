//! Daemons (`ferry serve`) running in this process on 127.0.0.1: convergence without any store,
//! and the local API's key and Host checks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{three_devices, unlock};
use ferry_engine::{Home, Vault};
use ferry_net::{Daemon, DaemonConfig, PeerState};
use serde_json::json;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn start(vault: Vault, api: bool) -> Daemon {
    let config = DaemonConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api: api.then(|| "127.0.0.1:0".parse().unwrap()),
        mdns: false,
        stores: None,
    };
    Daemon::start(vault, config).unwrap()
}

fn reopen(dir: &Path, name: &str) -> Vault {
    Vault::open(&Home::new(dir.join(name)), &unlock()).unwrap()
}

/// Waits (at most `limit`) until `done` holds; returns how long it took.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn has(vault: &Vault, key: &str) -> bool {
    vault.get("notes", key).unwrap().is_some()
}

#[test]
fn three_daemons_converge_with_no_store_and_writes_arrive_fast() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c, store) = three_devices(dir.path());
    drop(store); // from here on, devices talk only to each other
    let daemons: Vec<Daemon> = ["a", "b", "c"].iter().map(|name| start(reopen(dir.path(), name), false)).collect();
    let addr = |i: usize| daemons[i].peer_addr().unwrap().to_string();
    // A ring of stored addresses: a knows b, b knows c, c knows a. Data must go all the way round.
    a.add_peer(&b.device_id().to_string(), &addr(1)).unwrap();
    b.add_peer(&c.device_id().to_string(), &addr(2)).unwrap();
    c.add_peer(&a.device_id().to_string(), &addr(0)).unwrap();
    let connected = within(Duration::from_secs(20), || {
        daemons.iter().all(|d| d.peers().iter().filter(|p| p.state == PeerState::Connected).count() == 1)
    });
    assert!(connected.is_some(), "{:?}", daemons.iter().map(Daemon::peers).collect::<Vec<_>>());

    a.put("notes", "from-a", &json!("a")).unwrap();
    b.put("notes", "from-b", &json!("b")).unwrap();
    c.put("notes", "from-c", &json!("c")).unwrap();
    let vaults = [&a, &b, &c];
    let converged = within(Duration::from_secs(20), || {
        vaults.iter().all(|v| ["from-a", "from-b", "from-c"].iter().all(|k| has(v, k)))
    });
    assert!(converged.is_some(), "every write on every device");

    // A write follows the ring a → c (c follows a) without waiting for any interval.
    a.put("notes", "quick", &json!("q")).unwrap();
    let took = within(Duration::from_secs(10), || has(&c, "quick")).expect("the write reaches c");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let took = within(Duration::from_secs(10), || has(&b, "quick")).expect("and b, through c");
    assert!(took < Duration::from_secs(5), "{took:?}");
    for vault in [&mut a, &mut b, &mut c] {
        assert_eq!(vault.status().unwrap().records, 4);
    }
    // What each pulled is in its attempts log.
    assert!(daemons[2].attempts(50).iter().any(|at| at.ok && at.detail.starts_with("pulled 1 ops")));
}

/// A peer that stops is shown lost within 5 s (one long-poll plus its grace), and once it is
/// back at the same address, with nothing telling this device so (the peer does not know this
/// device's address), the link follows it again within 2 s.
#[test]
fn a_lost_peer_shows_within_5_s_and_a_healed_one_is_followed_again_within_2_s() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b, _c, _store) = three_devices(dir.path());
    let b_daemon = start(reopen(dir.path(), "b"), false);
    let b_addr = b_daemon.peer_addr().unwrap();
    a.add_peer(&b.device_id().to_string(), &b_addr.to_string()).unwrap();
    let a_daemon = start(reopen(dir.path(), "a"), false);
    let state_of_b = || a_daemon.peers().into_iter().find(|p| p.name == "b").map(|p| p.state);
    assert!(within(Duration::from_secs(10), || state_of_b() == Some(PeerState::Connected)).is_some());

    drop(b_daemon);
    let lost = within(Duration::from_secs(10), || state_of_b() != Some(PeerState::Connected)).expect("b is lost");
    assert!(lost <= Duration::from_secs(5), "a stopped peer showed connected for {lost:?}");

    // Long enough for the backoff to reach its ceiling.
    std::thread::sleep(Duration::from_secs(4));
    let config = DaemonConfig { listen: b_addr, api: None, mdns: false, stores: None };
    let b_again = Daemon::start(reopen(dir.path(), "b"), config).unwrap();
    let healed = within(Duration::from_secs(10), || state_of_b() == Some(PeerState::Connected)).expect("b is back");
    assert!(healed <= Duration::from_secs(2), "the healed link took {healed:?}");

    // And it carries writes again at once.
    let mut b = reopen(dir.path(), "b");
    b.put("notes", "after-heal", &json!(1)).unwrap();
    let took = within(Duration::from_secs(5), || has(&a, "after-heal")).expect("the write arrives");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(b_again);
}

/// One HTTP/1.1 request over a plain TCP connection, with exactly the headers given.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    tcp.write_all(text.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    // A chunked body: the JSON is the line between the chunk sizes.
    let json = body.lines().find(|l| l.starts_with('{') || l.starts_with('[')).unwrap_or(body);
    (status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
}

#[test]
fn the_local_api_wants_its_key_and_its_own_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _b, _c, _store) = three_devices(dir.path());
    let daemon = start(reopen(dir.path(), "a"), true);
    let api = daemon.api_addr().unwrap();
    assert!(api.ip().is_loopback());
    let key_file = dir.path().join("a").join(ferry_net::api::TOKEN_FILE);
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_owned();
    assert_eq!(key.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let daemon_file = dir.path().join("a").join(ferry_net::api::DAEMON_FILE);
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&daemon_file).unwrap()).unwrap();
    assert_eq!(written["api"], json!(api.to_string()));

    let host = format!("127.0.0.1:{}", api.port());
    let bearer = format!("Bearer {key}");
    let (status, body) = request(api, "GET", "/api/sync/status", &[("Host", &host)]);
    assert_eq!(status, 401, "no key: {body}");
    let (status, _) = request(api, "GET", "/api/sync/status", &[("Host", &host), ("Authorization", "Bearer nope")]);
    assert_eq!(status, 401, "wrong key");
    // DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends its own Host.
    let evil = format!("evil.example:{}", api.port());
    let (status, body) = request(api, "GET", "/api/sync/status", &[("Host", &evil), ("Authorization", &bearer)]);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Host"), "{body}");
    let (status, _) = request(api, "GET", "/api/sync/status", &[("Authorization", &bearer)]);
    assert_eq!(status, 403, "no Host at all");

    let (status, body) = request(api, "GET", "/api/sync/status", &[("Host", &host), ("Authorization", &bearer)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], json!(a.device_id().to_string()));
    assert_eq!(body["daemon"]["listen"], json!(daemon.peer_addr().unwrap().to_string()));
    let localhost = format!("localhost:{}", api.port());
    let (status, peers) = request(api, "GET", "/api/sync/peers", &[("Host", &localhost), ("X-API-Key", &key)]);
    assert_eq!(status, 200);
    assert_eq!(peers.as_array().unwrap().len(), 2, "b and c: {peers}");
    let (status, _) =
        request(api, "POST", "/api/sync/actions/sync-now", &[("Host", &host), ("Authorization", &bearer)]);
    assert_eq!(status, 202);
    let (status, attempts) =
        request(api, "GET", "/api/sync/attempts?limit=5", &[("Host", &host), ("Authorization", &bearer)]);
    assert_eq!(status, 200);
    assert!(attempts.is_array());

    // The client the CLI uses finds the daemon through the home's files…
    let client = ferry_net::api::LocalClient::for_home(&dir.path().join("a")).unwrap();
    assert_eq!(client.get("/api/sync/status").unwrap()["device_name"], json!("a"));
    // …and a stopped daemon leaves nothing that looks like a running one.
    drop(daemon);
    assert!(!daemon_file.exists());
    let err = ferry_net::api::LocalClient::for_home(&dir.path().join("a")).unwrap_err();
    assert!(err.to_string().contains("no ferry daemon is running"), "{err}");
}

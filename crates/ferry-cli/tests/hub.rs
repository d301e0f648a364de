//! `ferry serve --hub` through the real binary: a device claims it with the printed line, a new
//! device pairs through it, devices that never run together sync through it, and the hub's home
//! holds nothing readable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Running, pair, spawn_with_first_line};
use std::path::Path;

const CANARY: &str = "plaintext-canary-cli-hub-5521";

/// Starts a hub in `hub`'s home on a free loopback port; returns it and its first stdout line.
fn start_hub(hub: &Device, port: u16) -> (Running, String) {
    let address = format!("127.0.0.1:{port}");
    spawn_with_first_line(hub.process(&["serve", "--hub", "--listen", &address, "--public-address", &address]))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { found.extend(files_under(&path)) } else { found.push(path) }
    }
    found
}

#[test]
fn devices_claim_pair_and_sync_through_a_hub_they_are_never_up_with_together() {
    let hub = Device::new();
    let port = free_port();
    let (running, line) = start_hub(&hub, port);
    let claim =
        line.strip_prefix("ferry store add '").and_then(|l| l.strip_suffix('\'')).unwrap_or_else(|| panic!("{line}"));
    assert!(claim.starts_with(&format!("hub://127.0.0.1:{port}#")) && claim.contains('.'), "{claim}");

    // The laptop creates the vault and claims the hub with the printed line.
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop"]);
    let added = laptop.ok(&["store", "add", claim]);
    assert!(added.contains("added hub://"), "{added}");
    let stores = laptop.ok(&["store", "ls"]);
    assert!(!stores.contains(&claim[claim.len() - 20..]), "the spent secret is not kept: {stores}");
    laptop.ok(&["put", "notes", "n1", &format!("\"{CANARY}\"")]);
    laptop.ok(&["sync"]);

    // The secret is spent: another vault's device cannot claim the hub with the same line.
    let stranger = Device::new();
    stranger.ok(&["init", "--name", "stranger"]);
    let err = stranger.fails(&["store", "add", claim], 1);
    assert!(err.contains("already serves vault"), "{err}");

    // A phone pairs through the hub (the laptop's only store), then syncs as itself.
    let phone = Device::new();
    let (invited, accepted) = pair(&laptop, &phone, "phone");
    assert!(invited.contains("Enrolled \"phone\""), "{invited}");
    assert!(accepted.contains("Paired"), "{accepted}");
    assert_eq!(phone.ok(&["get", "notes", "n1"]), format!("\"{CANARY}\"\n"));
    phone.ok(&["put", "notes", "n2", "\"from the phone\""]);
    phone.ok(&["sync"]);

    // Restarted, the hub remembers its vault and pins; the laptop gets the phone's write.
    drop(running);
    let (_running, line) = start_hub(&hub, port);
    assert!(line.starts_with("hub for vault ") && line.contains("2 devices pinned"), "{line}");
    laptop.ok(&["sync"]);
    assert_eq!(laptop.ok(&["get", "notes", "n2"]), "\"from the phone\"\n");

    // Joining a hub with the passphrase is refused with the way that works.
    let err = Device::new().fails(&["join", &claim[..claim.rfind('.').unwrap()], "--name", "x"], 5);
    assert!(err.contains("ferry pair invite"), "{err}");

    // The hub's home: an encrypted key, its pins, sealed objects; no plaintext anywhere.
    for file in files_under(&hub.home) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(CANARY), "{} holds plaintext", file.display());
    }
    assert!(std::fs::read(hub.home.join("hub-key.age")).unwrap().starts_with(b"age-encryption.org/v1"));
}

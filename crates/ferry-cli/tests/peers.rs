//! Two devices syncing directly: `ferry serve` on one, `ferry sync --peer` on the other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Store};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// Kills the server when the test ends, whatever happens.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_device_pulls_from_another_that_serves_without_any_store() {
    let store = Store::new();
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);
    let phone = Device::new();
    phone.ok(&["join", &store.url(), "--name", "phone"]);
    laptop.ok(&["sync"]);
    laptop.ok(&["put", "notes", "lan", r#""only over the LAN""#]);

    let mut child = laptop
        .process(&["serve", "--listen", "127.0.0.1:0", "--interval", "3600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let server = Running(child);
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(line.starts_with("serving ") && addr.starts_with("127.0.0.1:"), "{line:?}");

    let out = phone.ok(&["sync", "--peer", &addr]);
    assert!(out.contains("pulled 1 ops"), "{out}");
    assert_eq!(phone.ok(&["get", "notes", "lan"]), "\"only over the LAN\"\n");
    assert!(phone.ok(&["sync", "--peer", &addr]).contains("pulled 0 ops"));
    // The store never saw the write; the peer is not listed as a store.
    assert!(!phone.ok(&["store", "ls"]).contains("peer:"));

    // A device of another vault is refused by the server.
    let stranger = Device::new();
    stranger.ok(&["init", "--name", "stranger"]);
    let err = stranger.fails(&["sync", "--peer", &addr], 1);
    assert!(err.contains("not an active device") || err.contains("refused"), "{err}");
    drop(server);
    let err = phone.fails(&["sync", "--peer", &addr], 6);
    assert!(err.contains("cannot be reached"), "{err}");
}

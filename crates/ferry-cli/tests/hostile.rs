//! The hostile-actor suite, command side: what another user of the machine could read, and
//! what a stopped daemon leaves behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, spawn_with_first_line};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The permission bits of a file, `None` if it is not there (now).
fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|metadata| metadata.permissions().mode() & 0o777)
}

#[test]
fn hole_10_local_files_are_the_owners_and_a_stopped_daemon_removes_its_file() {
    let device = Device::initialised();
    device.ok(&["put", "notes", "n1", "{\"title\":\"hi\"}"]);
    let (mut running, _) = spawn_with_first_line(device.process(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--no-mdns",
    ]));
    let daemon_file = device.home.join("daemon.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    // Everything in the home that holds vault data or a key is the owner's only.
    // (SQLite makes the WAL and shared-memory files while a connection is open, and removes
    // them when the last one closes: checked whenever they are there.)
    for name in ["vault.db", "daemon.json", "api-key", "local-key.age"] {
        assert_eq!(mode(&device.home.join(name)), Some(0o600), "{name} must exist, readable by its owner only");
    }
    for name in ["vault.db-wal", "vault.db-shm"] {
        let found = mode(&device.home.join(name));
        assert!(found.is_none_or(|mode| mode == 0o600), "{name} is readable by others: {found:?}");
    }

    // A service manager's stop (SIGTERM) ends the daemon cleanly: no stale daemon.json.
    let pid = running.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exited = None;
    while exited.is_none() && Instant::now() < deadline {
        exited = running.0.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.is_some(), "the daemon stops on SIGTERM");
    assert!(!daemon_file.exists(), "daemon.json is removed when the daemon stops");
}

//! Devices syncing through a bucket and a folder, driven through the real binary, against real
//! S3-compatible servers (see `crates/ferry-engine/tests/support/s3_server.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;
#[path = "../../ferry-engine/tests/support/s3_server.rs"]
mod s3_server;

use common::Device;
use s3_server::{CREDENTIALS_ENV, Kind, Server};

fn ok_with_credentials(device: &Device, args: &[&str]) -> String {
    let mut cmd = device.command(args);
    cmd.envs(CREDENTIALS_ENV);
    let run = device.run_with(cmd, args);
    run.expect_code(0, &device.home);
    run.stdout
}

/// Laptop uses only a folder, phone only a bucket, desktop both: everything written anywhere
/// reaches everyone, and no command ever shows credentials.
#[test]
fn three_devices_two_stores_a_folder_and_a_bucket() {
    let Some(server) = Server::start(Kind::S3sFs) else { return };
    let folder = tempfile::tempdir().unwrap();
    let folder_url = format!("folder:{}", folder.path().join("nas").display());
    let bucket_url = server.url("cli");

    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &folder_url]);
    laptop.ok(&["put", "notes", "n1", r#""from the laptop""#]);
    laptop.ok(&["sync"]);

    let desktop = Device::new();
    desktop.ok(&["join", &folder_url, "--name", "desktop"]);
    let added = ok_with_credentials(&desktop, &["store", "add", &bucket_url]);
    assert!(added.contains("objects of other devices"), "{added}");

    let phone = Device::new();
    let joined = ok_with_credentials(&phone, &["join", &bucket_url, "--name", "phone"]);
    assert!(joined.contains("pulled 1 op"), "{joined}");
    assert_eq!(phone.ok(&["get", "notes", "n1"]), "\"from the laptop\"\n");

    phone.ok(&["put", "notes", "n2", r#""from the phone""#]);
    ok_with_credentials(&phone, &["sync"]);
    ok_with_credentials(&desktop, &["sync"]);
    ok_with_credentials(&desktop, &["sync"]);
    laptop.ok(&["sync"]);
    assert_eq!(laptop.ok(&["get", "notes", "n2"]), "\"from the phone\"\n");
    for device in [&laptop, &desktop] {
        assert_eq!(device.ok(&["ls", "notes", "--json"]), phone.ok(&["ls", "notes", "--json"]));
    }

    let stores = ok_with_credentials(&desktop, &["store", "ls"]);
    assert!(stores.contains(&bucket_url) && stores.contains("up-to-date"), "{stores}");
    let status = ok_with_credentials(&desktop, &["sync", "status"]);
    assert!(!status.contains("ferry-test-secret"), "credentials must never be shown: {status}");

    // Without credentials the bucket refuses: one clear error, exit 1, nothing lost locally.
    phone.ok(&["put", "notes", "n3", "3"]);
    let run = phone.run(&["sync"]);
    run.expect_code(1, &phone.home);
    assert!(run.stderr.contains("check the credentials"), "{}", run.stderr);
    assert_eq!(phone.ok(&["get", "notes", "n3"]), "3\n");
    ok_with_credentials(&phone, &["sync"]);

    // One store that cannot be opened (a failing credentials command) does not stop the others.
    desktop.ok(&["put", "notes", "n4", "4"]);
    let run = desktop.run(&["sync", "--credentials-command", "exit 3"]);
    run.expect_code(1, &desktop.home);
    assert!(run.stdout.contains("pushed 1 op"), "the folder store still synced: {}", run.stdout);
    assert!(run.stderr.contains("credentials command"), "{}", run.stderr);
    laptop.ok(&["sync"]);
    assert_eq!(laptop.ok(&["get", "notes", "n4"]), "4\n");
}

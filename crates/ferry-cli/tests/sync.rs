//! Devices syncing through a folder store, driven through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Store, laptop_and_phone};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn two_devices_converge_through_a_folder_store() {
    let store = Store::new();
    let laptop = Device::new();
    let out = laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);
    assert!(out.contains("Store: folder:"), "{out}");
    assert!(store.files().iter().any(|f| f.ends_with("ferry-vault.json")), "{:?}", store.files());
    laptop.ok(&["put", "notes", "n1", r#"{"title":"from laptop"}"#]);
    assert!(laptop.ok(&["sync"]).contains("pushed 1 op in 1 segment"));

    let desktop = Device::new();
    let out = desktop.ok(&["join", &store.url(), "--name", "desktop"]);
    assert!(out.contains("pulled 1 op"), "{out}");
    assert_eq!(desktop.ok(&["get", "notes", "n1"]), "{\"title\":\"from laptop\"}\n");

    // Offline edits on both, the same record on both.
    laptop.ok(&["put", "notes", "n1", r#""laptop edit""#]);
    desktop.ok(&["put", "notes", "n1", r#""desktop edit""#]);
    desktop.ok(&["put", "todos", "t1", "true"]);
    laptop.ok(&["sync", "push"]);
    desktop.ok(&["sync"]);
    laptop.ok(&["sync", "pull"]);
    for collection in ["notes", "todos"] {
        assert_eq!(laptop.ok(&["ls", collection, "--json"]), desktop.ok(&["ls", collection, "--json"]));
    }
    assert_eq!(laptop.ok(&["get", "notes", "n1"]), desktop.ok(&["get", "notes", "n1"]));

    let status = json(&laptop.ok(&["sync", "status", "--json"]));
    assert_eq!(status["stores"][0]["state"], "up-to-date");
    assert_eq!(status["unpublished_ops"], 0);
    assert_eq!(status["devices"][0]["name"], "desktop");
    assert_eq!(status["auto_resolved_conflicts"], 1);
    let text = laptop.ok(&["sync", "status"]);
    assert!(
        text.contains("up-to-date") && text.contains("desktop") && text.contains("skipped objects: none"),
        "{text}"
    );
    let local = json(&laptop.ok(&["status", "--json"]));
    assert_eq!(local["vault_key_fingerprint"], json(&desktop.ok(&["status", "--json"]))["vault_key_fingerprint"]);
}

#[test]
fn join_with_a_wrong_passphrase_writes_nothing_anywhere() {
    let store = Store::new();
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);
    let before = store.files();
    let mut desktop = Device::new();
    desktop.passphrase = "not the vault passphrase".into();
    let err = desktop.fails(&["join", &store.url(), "--name", "desktop"], 4);
    assert!(err.contains("does not open vault"), "{err}");
    assert!(!desktop.home.exists(), "no local state may be left");
    assert_eq!(store.files(), before, "no remote state may be written");
}

#[test]
fn store_mistakes_get_clear_errors() {
    let store = Store::new();
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);

    let second = Device::new();
    let err = second.fails(&["init", "--name", "x", "--store", &store.url()], 5);
    assert!(err.contains("already holds vault") && err.contains("ferry join"), "{err}");
    assert!(!second.home.exists());

    let empty = Store::new();
    std::fs::create_dir(empty.dir.path().join("ferry")).unwrap();
    let err = second.fails(&["join", &empty.url(), "--name", "x"], 5);
    assert!(err.contains("no ferry vault in"), "{err}");
    let err = second.fails(&["join", "nonsense", "--name", "x"], 2);
    assert!(err.contains("folder:/path/to/dir"), "{err}");
    let err = second.fails(&["init", "--store", "folder:/definitely/not/mounted/here"], 5);
    assert!(err.contains("is the disk mounted"), "{err}");

    let alone = Device::initialised();
    let err = alone.fails(&["sync"], 5);
    assert!(err.contains("no store"), "{err}");
}

#[test]
fn an_unreachable_store_is_recorded_and_retried_later() {
    let store = Store::new();
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);
    laptop.ok(&["put", "notes", "n1", "1"]);
    let root = store.dir.path().join("ferry");
    let unmounted = store.dir.path().join("elsewhere");
    std::fs::rename(&root, &unmounted).unwrap();

    let err = laptop.fails(&["sync"], 6);
    assert!(err.contains("is the disk or share mounted"), "{err}");
    assert_eq!(laptop.ok(&["get", "notes", "n1"]), "1\n", "local work goes on");
    let status = json(&laptop.ok(&["sync", "status", "--json"]));
    assert_eq!(status["stores"][0]["state"], "offline");
    assert_eq!(status["stores"][0]["failures"], 1);
    assert!(status["stores"][0]["next_retry_ms"].as_u64().is_some());
    assert_eq!(status["unpublished_ops"], 1);
    assert!(!root.exists(), "a missing store must not be re-created by a sync");

    std::fs::rename(&unmounted, &root).unwrap();
    laptop.ok(&["sync"]);
    let status = json(&laptop.ok(&["sync", "status", "--json"]));
    assert_eq!(status["stores"][0]["state"], "up-to-date");
    assert_eq!(status["unpublished_ops"], 0);
}

#[test]
fn blobs_travel_with_sync_and_are_written_only_when_verified() {
    let store = Store::new();
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&photo, &bytes).unwrap();
    let id = laptop.ok(&["blob", "put", photo.to_str().unwrap()]).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    laptop.ok(&["put", "notes", "n1", &format!(r#"{{"attachment":"{id}"}}"#)]);
    laptop.ok(&["sync"]);

    let desktop = Device::new();
    desktop.ok(&["join", &store.url(), "--name", "desktop"]);
    let copy = dir.path().join("copy.bin");
    desktop.ok(&["blob", "get", &id, copy.to_str().unwrap()]);
    assert!(std::fs::read(&copy).unwrap() == bytes, "the blob must come back byte for byte");

    let err = desktop.fails(&["blob", "get", &"0".repeat(64), dir.path().join("x").to_str().unwrap()], 3);
    assert!(err.contains("not on this device nor in any store"), "{err}");
    assert!(!dir.path().join("x").exists() && !dir.path().join("x.ferry-partial").exists());
    assert!(desktop.fails(&["blob", "get", "nope", "x"], 2).contains("not a blob id"));
}

#[test]
fn a_store_that_lost_objects_is_checked_and_repaired() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.bin");
    std::fs::write(&file, b"a small attachment").unwrap();
    let id = laptop.ok(&["blob", "put", file.to_str().unwrap()]).trim().to_owned();
    for n in 0..3 {
        laptop.ok(&["put", "notes", &format!("n{n}"), &format!("{n}")]);
        laptop.ok(&["sync"]);
    }
    assert!(laptop.ok(&["store", "check"]).contains("holds everything this device holds"));

    // A NAS share loses a blob and a segment in the middle of the laptop's log.
    let root = store.dir.path().join("ferry");
    let lost: Vec<std::path::PathBuf> = walk(&root)
        .into_iter()
        .filter(|path| {
            let text = path.display().to_string();
            text.contains("/blobs/") || text.ends_with("/2.seg")
        })
        .collect();
    assert_eq!(lost.len(), 2, "{lost:?}");
    for path in &lost {
        std::fs::remove_file(path).unwrap();
    }
    let copy = dir.path().join("copy.bin");
    let err = phone.fails(&["blob", "get", &id, copy.to_str().unwrap()], 3);
    assert!(err.contains("a store lost it"), "{err}");
    let doctor = laptop.run(&["doctor"]);
    assert!(doctor.stdout.contains("lacks 2 objects"), "{}", doctor.stdout);
    assert!(doctor.stdout.contains("ferry store check --repair"), "{}", doctor.stdout);
    let run = laptop.run(&["store", "check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout.matches("lacks").count(), 2, "{}", run.stdout);

    let repaired = laptop.ok(&["store", "check", "--repair"]);
    assert_eq!(repaired.matches("put back").count(), 2, "{repaired}");
    assert!(lost.iter().all(|path| path.exists()));
    phone.ok(&["blob", "get", &id, copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), b"a small attachment");
    let fresh = Device::new();
    fresh.ok(&["join", &store.url(), "--name", "tablet"]);
    assert_eq!(fresh.ok(&["get", "notes", "n2"]).trim(), "2");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn a_number_shows_the_same_bytes_on_both_devices_through_get_ls_and_log() {
    let store = Store::new();
    let (laptop, phone) = common::laptop_and_phone(&store);
    laptop.ok(&[
        "put",
        "notes",
        "n",
        r#"{"n": 123456789012345678901234, "f": 1.2345678901234567e+23, "z": -0, "x": 1.50}"#,
    ]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    let canonical = r#"{"f":1.2345678901234567e+23,"n":1.2345678901234569e+23,"x":1.5,"z":0}"#;
    for device in [&laptop, &phone] {
        assert_eq!(device.ok(&["get", "notes", "n"]).trim(), canonical);
        assert!(device.ok(&["get", "notes", "n", "--json"]).contains(canonical));
        assert!(device.ok(&["ls", "notes", "--json"]).contains(canonical));
        assert!(device.ok(&["log", "notes", "n", "--json"]).contains(canonical));
    }
}

//! Keys and devices through the real binary: pairing, revocation, recovery, export/import,
//! fingerprints, passphrase change, init --force and doctor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Store, pair, start_invite};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Initialises a device with a folder store; returns its recovery phrase.
fn init_with_store(device: &Device, name: &str, store: &Store) -> String {
    let out = device.ok(&["init", "--name", name, "--store", &store.url(), "--json"]);
    json(&out)["recovery_phrase"].as_str().unwrap().to_owned()
}

#[test]
fn pairing_through_a_folder_store_and_revoking_the_paired_device() {
    let store = Store::new();
    let laptop = Device::new();
    init_with_store(&laptop, "laptop", &store);
    laptop.ok(&["put", "notes", "n1", r#""before pairing""#]);
    let phone = Device::new();
    let (invited, accepted) = pair(&laptop, &phone, "phone");
    assert!(invited.contains("Enrolled \"phone\""), "{invited}");
    assert!(accepted.contains("Paired"), "{accepted}");
    assert_eq!(phone.ok(&["get", "notes", "n1"]), "\"before pairing\"\n");
    assert!(!store.files().iter().any(|f| f.contains("/pair/")), "exchange removed: {:?}", store.files());

    let fingerprint =
        |device: &Device| json(&device.ok(&["key", "fingerprint", "--json"]))["vault_key_fingerprint"].clone();
    assert_eq!(fingerprint(&laptop), fingerprint(&phone));
    laptop.ok(&["sync"]);
    let devices = json(&laptop.ok(&["devices", "--json"]));
    let phone_info = devices.as_array().unwrap().iter().find(|d| d["name"] == "phone").unwrap().clone();
    let laptop_id = devices.as_array().unwrap().iter().find(|d| d["this_device"] == true).unwrap()["device_id"].clone();
    assert_eq!(phone_info["enrolled_by"], laptop_id);

    // The phone is lost: revoke it. It can no longer push, and cannot read what comes after.
    let phone_id = phone_info["device_id"].as_str().unwrap().to_owned();
    let out = laptop.ok(&["devices", "revoke", &phone_id[..8]]);
    assert!(out.contains("Revoked \"phone\"") && out.contains("epoch 1"), "{out}");
    assert!(laptop.ok(&["devices"]).contains("revoked by laptop"));
    laptop.ok(&["put", "notes", "n2", r#""after revocation""#]);
    laptop.ok(&["sync"]);
    phone.ok(&["put", "notes", "n1", r#""phone edit""#]);
    let err = phone.fails(&["sync"], 5);
    assert!(err.contains("revoked by"), "{err}");
    phone.fails(&["get", "notes", "n2"], 3);
    assert_eq!(laptop.ok(&["get", "notes", "n1"]), "\"before pairing\"\n");
    let doctor = phone.run(&["doctor"]);
    assert_eq!(doctor.code, 1, "{}", doctor.stdout);
    assert!(doctor.stdout.contains("this device was revoked"), "{}", doctor.stdout);
}

#[test]
fn invites_that_expired_were_used_or_were_altered_are_refused() {
    let store = Store::new();
    let laptop = Device::new();
    init_with_store(&laptop, "laptop", &store);
    let (mut invite, _, token) = start_invite(&laptop, "1");

    let mut altered = token.clone().into_bytes();
    let i = altered.len() - 12;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let err = Device::new().fails(&["pair", "accept", std::str::from_utf8(&altered).unwrap(), "--name", "x"], 2);
    assert!(err.contains("checksum"), "{err}");

    // First answer wins; a replay of the same invite is refused.
    let first = Device::new();
    let mut answering = first
        .process(&["pair", "accept", &token, "--name", "first"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut code = String::new();
    BufReader::new(answering.stdout.take().unwrap()).read_line(&mut code).unwrap();
    assert!(code.starts_with("Confirmation code: "), "{code}");
    let err = Device::new().fails(&["pair", "accept", &token, "--name", "second"], 2);
    assert!(err.contains("used already"), "{err}");

    // A wrong code on the inviter refuses the device; nothing is enrolled.
    let shown: String = code.chars().filter(char::is_ascii_digit).collect();
    let wrong: String = shown.chars().map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10)).collect();
    writeln!(invite.stdin.take().unwrap(), "{wrong}").unwrap();
    let refused = invite.wait_with_output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    answering.kill().unwrap();
    answering.wait().unwrap();
    assert_eq!(json(&laptop.ok(&["devices", "--json"])).as_array().unwrap().len(), 1);
    assert!(!first.home.join("vault.db").exists());

    // An invite past its time.
    let (mut stale, _, token) = start_invite(&laptop, "1");
    stale.kill().unwrap();
    stale.wait().unwrap();
    let decoded = ferry_format::pairing::Invite::parse(&token).unwrap();
    let expired = ferry_format::pairing::Invite { expires_ms: 1, ..decoded };
    let err = Device::new().fails(&["pair", "accept", &expired.to_token(), "--name", "late"], 2);
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn recovery_phrase_join_after_every_device_home_is_deleted() {
    let store = Store::new();
    let laptop = Device::new();
    let phrase = init_with_store(&laptop, "laptop", &store);
    laptop.ok(&["put", "notes", "n1", r#"{"keep":true}"#]);
    laptop.ok(&["sync"]);
    std::fs::remove_dir_all(&laptop.home).unwrap();

    let fresh = Device::new();
    let wrong = "abandon ".repeat(23) + "art";
    let run = fresh.run_stdin(&["join", &store.url(), "--recovery", "--name", "again"], &format!("{wrong}\n"));
    run.expect_code(4, &fresh.home);
    assert!(!fresh.home.join("vault.db").exists());
    let run = fresh.run_stdin(&["join", &store.url(), "--recovery", "--name", "again"], &format!("{phrase}\n"));
    run.expect_code(0, &fresh.home);
    assert_eq!(fresh.ok(&["get", "notes", "n1"]), "{\"keep\":true}\n");
    let verify = fresh.run_stdin(&["key", "verify", "--recovery"], &format!("{phrase}\n"));
    verify.expect_code(0, &fresh.home);
    assert!(verify.stdout.contains("matches this vault"), "{}", verify.stdout);
    let wrong_verify = fresh.run_stdin(&["key", "verify", "--recovery"], &format!("{wrong}\n"));
    wrong_verify.expect_code(4, &fresh.home);
}

#[test]
fn export_wipe_import_restores_the_same_records() {
    let store = Store::new();
    let laptop = Device::new();
    let phrase = init_with_store(&laptop, "laptop", &store);
    for n in 0..20 {
        laptop.ok(&["put", "notes", &format!("n{n}"), &n.to_string()]);
    }
    laptop.ok(&["rm", "notes", "n4"]);
    let before = laptop.ok(&["ls", "notes", "--json"]);
    let file = store.dir.path().join("backup.ferry");
    let out = laptop.ok(&["export", file.to_str().unwrap()]);
    assert!(out.contains("Exported 21 ops"), "{out}");
    std::fs::remove_dir_all(&laptop.home).unwrap();
    std::fs::remove_dir_all(store.dir.path().join("ferry")).unwrap();

    let restored = Device::new();
    let run = restored.run_stdin(&["import", file.to_str().unwrap(), "--name", "restored"], &format!("{phrase}\n"));
    run.expect_code(0, &restored.home);
    assert!(run.stdout.contains("Restored vault"), "{}", run.stdout);
    let strip = |text: &str| -> Vec<serde_json::Value> {
        json(text).as_array().unwrap().iter().map(|r| serde_json::json!([r["key"], r["value"]])).collect()
    };
    assert_eq!(strip(&restored.ok(&["ls", "notes", "--json"])), strip(&before));
    // A second import merges nothing new.
    let again = restored.run_stdin(&["import", file.to_str().unwrap()], &format!("{phrase}\n"));
    again.expect_code(0, &restored.home);
    assert!(again.stdout.contains("Imported 0 new ops"), "{}", again.stdout);
}

#[test]
fn passphrase_change_fingerprints_mismatch_force_and_doctor() {
    let store = Store::new();
    let laptop = Device::new();
    let phrase = init_with_store(&laptop, "laptop", &store);
    laptop.ok(&["put", "notes", "n1", "1"]);
    laptop.ok(&["sync"]);
    let doctor = laptop.ok(&["doctor"]);
    assert!(doctor.contains("keys match") && doctor.contains("warn  recovery phrase"), "{doctor}");

    // A new passphrase: joining takes it, and the old one is refused.
    let run = laptop.run_stdin(&["key", "passphrase"], "a new passphrase\n");
    run.expect_code(0, &laptop.home);
    let mut laptop = laptop;
    laptop.passphrase = "a new passphrase".into();
    laptop.ok(&["status"]);
    let mut desktop = Device::new();
    desktop.fails(&["join", &store.url(), "--name", "desktop"], 4);
    desktop.passphrase = "a new passphrase".into();
    desktop.ok(&["join", &store.url(), "--name", "desktop"]);

    // A device of another vault names both fingerprints and writes nothing.
    let other_store = Store::new();
    let stranger = Device::new();
    init_with_store(&stranger, "stranger", &other_store);
    let files = store.files();
    let err = stranger.fails(&["store", "add", &store.url()], 5);
    let ours =
        json(&stranger.ok(&["key", "fingerprint", "--json"]))["vault_key_fingerprint"].as_str().unwrap().to_owned();
    let theirs =
        json(&laptop.ok(&["key", "fingerprint", "--json"]))["vault_key_fingerprint"].as_str().unwrap().to_owned();
    assert!(err.contains("key mismatch") && err.contains(&ours) && err.contains(&theirs), "{err}");
    assert_eq!(store.files(), files);

    // init --force: the old vault's id and recovery phrase are required, then it is moved aside.
    let replacing = Device::new();
    let err = replacing.fails(&["init", "--name", "new", "--store", &store.url()], 5);
    assert!(err.contains("--force"), "{err}");
    let vault_id = json(&laptop.ok(&["status", "--json"]))["vault_id"].as_str().unwrap().to_owned();
    let run = replacing.run_stdin(&["init", "--name", "new", "--store", &store.url(), "--force"], "nope\n");
    run.expect_code(2, &replacing.home);
    let wrong = "abandon ".repeat(23) + "art";
    let snapshot = store.files();
    let run = replacing.run_stdin(
        &["init", "--name", "new", "--store", &store.url(), "--force"],
        &format!("{}\n{wrong}\n", &vault_id[..8]),
    );
    run.expect_code(5, &replacing.home);
    assert_eq!(store.files(), snapshot, "nothing moved");
    let run = replacing.run_stdin(
        &["init", "--name", "new", "--store", &store.url(), "--force"],
        &format!("{}\n{phrase}\n", &vault_id[..8]),
    );
    run.expect_code(0, &replacing.home);
    assert!(store.files().iter().any(|f| f.contains(&format!("previous/{vault_id}/ferry-vault.json"))));
    let err = laptop.fails(&["sync"], 5);
    assert!(err.contains("key mismatch"), "{err}");
}

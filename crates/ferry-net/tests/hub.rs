//! A hub on 127.0.0.1: devices that are never up together sync through it, it stores only what
//! it cannot read, and it refuses strangers, forgeries and revoked devices.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{attach_hub, hub_location as location, open_hub, options, refusal, start_hub, sync_hub, three_devices};
use ferry_engine::{Home, Pairing, StoreHandle, Vault};
use ferry_format::SecretBytes;
use ferry_format::objects::paths;
use ferry_net::hub_opener;
use ferry_store::HubLocation;
use serde_json::json;
use std::path::Path;

const CANARY: &str = "plaintext-canary-hub-7301";

fn value(vault: &Vault, key: &str) -> Option<String> {
    vault.get("notes", key).unwrap().map(|r| r.value.as_str().to_owned())
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
fn devices_never_up_together_sync_through_a_hub_that_holds_only_sealed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c, _folder) = three_devices(dir.path());
    let hub = start_hub(dir.path());
    let claim_line = location(&hub);
    assert!(claim_line.claim_secret.is_some() && hub.vault().is_none());

    // a claims the hub with the printed line and publishes; nobody else is running.
    let from_a = attach_hub(&mut a, &claim_line);
    assert_eq!(hub.vault(), Some((a.vault_id(), 3)));
    a.put("notes", "n1", &json!(format!("from a {CANARY}"))).unwrap();
    sync_hub(&mut a, from_a.as_ref());
    drop(from_a);

    // b, later, with the location without the (spent) secret: reads a's write, answers.
    let plain = HubLocation { claim_secret: None, ..claim_line.clone() };
    let from_b = attach_hub(&mut b, &plain);
    sync_hub(&mut b, from_b.as_ref());
    assert_eq!(value(&b, "n1"), Some(json!(format!("from a {CANARY}")).to_string()));
    b.put("notes", "n2", &json!("from b")).unwrap();
    sync_hub(&mut b, from_b.as_ref());
    let from_a = open_hub(&a, &plain).unwrap();
    sync_hub(&mut a, from_a.as_ref());
    assert_eq!(value(&a, "n2"), Some(json!("from b").to_string()));

    // The secret is spent: another vault cannot take the hub over with it.
    let stranger = Vault::create(&Home::new(dir.path().join("stranger")), options("stranger")).unwrap().vault;
    refusal(open_hub(&stranger, &claim_line), "already serves vault");
    let from_stranger = open_hub(&stranger, &plain).unwrap();
    refusal(from_stranger.list("log/"), "not an active device");
    refusal(from_stranger.get(&paths::head(a.device_id())), "not an active device");

    // A pinned device cannot place objects that are not what their path says, or delete.
    let a_segment = from_b.get(&paths::segment(a.device_id(), 1)).unwrap().expect("a's first segment");
    refusal(from_b.put_if_absent(&paths::segment(b.device_id(), 99), &a_segment), "does not hold what its name says");
    let mut forged = from_b.get(&paths::head(a.device_id())).unwrap().unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    refusal(from_b.put(&paths::head(a.device_id()), &forged), "not signed by the device it names");
    refusal(from_b.put(paths::VAULT_FILE, b"{}"), "written once");
    refusal(from_b.delete(&paths::segment(a.device_id(), 1)), "own segments and snapshots");
    refusal(from_b.put_if_absent("previous/x", b"junk"), "not a ferry store path");
    assert!(hub.attempts().latest(50).iter().any(|a| !a.ok && a.detail.contains("not signed")));

    // A revocation written to the hub unpins the device at once.
    let from_c = attach_hub(&mut c, &plain);
    sync_hub(&mut c, from_c.as_ref());
    a.revoke_device(&c.device_id().to_string()).unwrap();
    sync_hub(&mut a, from_a.as_ref());
    refusal(from_c.list("log/"), "not an active device");
    assert_eq!(hub.vault(), Some((a.vault_id(), 2)));

    // What the hub holds on disk: no plaintext, and only sealed objects beside the key files.
    for file in files_under(&dir.path().join("hub")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(CANARY), "{} holds plaintext", file.display());
        let name = file.strip_prefix(dir.path().join("hub/objects")).map(|p| p.to_string_lossy().into_owned());
        if let Ok(path) = name
            && (path.starts_with("log/") || path.starts_with("devices/"))
        {
            assert!(ferry_format::seal::Header::parse(&bytes).is_ok(), "{path} is not a sealed object");
        }
    }
}

#[test]
fn a_new_device_pairs_through_the_hub_and_then_syncs_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Vault::create(&Home::new(dir.path().join("a")), options("a")).unwrap().vault;
    a.put("notes", "before", &json!("written before the new device came")).unwrap();
    let hub = start_hub(dir.path());
    let from_a = attach_hub(&mut a, &location(&hub));
    sync_hub(&mut a, from_a.as_ref());
    let url = a.stores().unwrap()[0].url.clone();
    assert_eq!(HubLocation::parse(&url).unwrap().claim_secret, None, "the spent secret is not kept");

    // The new device has no vault and no pinned key yet: an ephemeral key reaches `pair/` only.
    let invite = a.invite(&url, 60_000).unwrap();
    let joining = hub_opener(SecretBytes::new([7; 32]), None)(&HubLocation::parse(&url).unwrap()).unwrap();
    refusal(joining.list("log/"), "not an active device");
    let pairing = Pairing::start(invite.clone(), "phone", joining.as_ref()).unwrap();
    let request = a.pair_request(&invite, from_a.as_ref()).unwrap().expect("the request reached the hub");
    a.approve_pairing(&invite, from_a.as_ref(), &request).unwrap();
    let epoch = pairing.poll(joining.as_ref()).unwrap().expect("approved");

    // It finishes as itself: the record a wrote pinned its key on the hub.
    let as_itself = hub_opener(pairing.device_signing_secret(), None)(&HubLocation::parse(&url).unwrap()).unwrap();
    let mut phone =
        pairing.finish(&Home::new(dir.path().join("phone")), &options("phone"), epoch, as_itself.as_ref()).unwrap();
    phone
        .sync(
            StoreHandle { id: phone.stores().unwrap()[0].id, store: as_itself.as_ref() },
            ferry_engine::Direction::Both,
        )
        .unwrap();
    assert_eq!(value(&phone, "before"), Some(json!("written before the new device came").to_string()));
    assert!(as_itself.list("pair/").unwrap().is_empty(), "the exchange is cleaned up");
}

#[test]
fn a_prune_through_a_hub_deletes_only_the_pruning_devices_own_log_and_another_device_reads_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c, _folder) = three_devices(dir.path());
    let hub = start_hub(dir.path());
    let claim_line = location(&hub);
    let plain = HubLocation { claim_secret: None, ..claim_line.clone() };
    let from_a = attach_hub(&mut a, &claim_line);
    let from_b = attach_hub(&mut b, &plain);
    for round in 0..5 {
        a.put("notes", "n1", &json!({ "round": round })).unwrap();
        sync_hub(&mut a, from_a.as_ref());
        b.put("notes", "n2", &json!({ "round": round })).unwrap();
        sync_hub(&mut b, from_b.as_ref());
    }
    sync_hub(&mut a, from_a.as_ref());
    let segments = |device: ferry_format::DeviceId| {
        from_a.list(&format!("log/{device}/")).unwrap().iter().filter(|p| p.ends_with(".seg")).count()
    };
    let (a_before, b_before) = (segments(a.device_id()), segments(b.device_id()));

    let id = a.stores().unwrap().into_iter().find(|s| s.url.starts_with("hub://")).unwrap().id;
    let options = ferry_engine::PruneOptions {
        keep: Some(ferry_engine::Retention::Keep { ms: 0 }),
        grace_ms: 0,
        dry_run: false,
        scheduled: false,
    };
    let report = a.prune(&[StoreHandle { id, store: from_a.as_ref() }], &options).unwrap();
    let pruned = report.stores[0].1.as_ref().unwrap();
    // The hub lets a delete its own segments only; b's stay until b prunes.
    assert!(
        pruned.refused_objects > 0 && pruned.refused.as_deref().unwrap_or("").contains("own segments"),
        "{pruned:?}"
    );
    assert!(segments(a.device_id()) < a_before, "a's own segments went");
    assert_eq!(segments(b.device_id()), b_before, "b's segments stay");

    // c, which saw none of this history, reads it through the hub from the snapshot (a's
    // first segments are gone), and holds what everyone holds.
    let from_c = attach_hub(&mut c, &plain);
    let id = c.stores().unwrap().into_iter().find(|s| s.url.starts_with("hub://")).unwrap().id;
    let pulled = c.sync(StoreHandle { id, store: from_c.as_ref() }, ferry_engine::Direction::Both).unwrap();
    assert!(pulled.pull.unwrap().snapshot.is_some(), "loaded the snapshot");
    for key in ["n1", "n2"] {
        assert_eq!(value(&c, key), value(&a, key), "{key}");
    }
    assert!(c.sync_status().unwrap().skipped.is_empty());
}

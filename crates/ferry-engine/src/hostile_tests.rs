//! The hostile-actor suite (issue: "close the trust holes"): each test performs one attack
//! through the real engine code path, as a store writer with an old passphrase or a revoked
//! device with its own key would, and asserts the refusal and the reason `sync status` shows.
//! The network actors (stranger, pinned hub client) are in `ferry-net/tests/hostile.rs`.

use crate::identity::{DeviceKeys, VaultKeys};
use crate::sync_tests::{
    devices, first_device_with_phrase, handle, join, join_with_phrase, options, sync, two_synced_devices, unlock,
};
use crate::*;
use ferry_format::objects::{DevicePayload, HeadPayload, SegmentPayload, WireOp, decode, encode, paths};
use ferry_format::seal::{self, ObjectId, ObjectKind, SealKeys};
use ferry_format::{
    Collection, DeviceId, EpochRef, Fingerprint, Forget, ForgetScope, Hlc, JsonValue, MasterKey, Op, OpId, OpKind,
    RecordKey, RecoveryPhrase,
};
use ferry_store::{MemoryStore, Store};
use serde_json::json;

fn skipped(vault: &Vault) -> Vec<(String, String)> {
    vault.sync_status().unwrap().skipped.into_iter().map(|s| (s.path, s.reason)).collect()
}

fn key_slots_of(store: &MemoryStore, epoch: u32) -> Vec<String> {
    store.list("keys/").unwrap().into_iter().filter(|p| p.starts_with(&format!("keys/{epoch}."))).collect()
}

/// The attacker's view: the old passphrase opens `keys/0/passphrase.age`, giving epoch 0's key.
fn key_from_old_passphrase(store: &MemoryStore) -> MasterKey {
    let slot = store.get(&paths::key_slot(&EpochRef::FIRST, "passphrase")).unwrap().unwrap();
    let identity = age::scrypt::Identity::new(unlock().passphrase.secret());
    MasterKey::new(age::decrypt(&identity, &slot).unwrap().try_into().unwrap())
}

#[test]
fn hole_1_a_record_planted_with_an_old_passphrase_gets_no_key_and_can_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, phrase) = first_device_with_phrase(dir.path(), "a", &store);
    sync(&mut a, &store);
    let mut b = join(dir.path(), "b", &store);
    let mut c = join(dir.path(), "c", &store);
    for vault in [&mut b, &mut c, &mut a] {
        sync(vault, &store);
    }
    a.revoke_device(&c.device_id().to_string()).unwrap();
    sync(&mut a, &store);

    // The attacker knows the old passphrase and can write to the store; it has no device key.
    let old_key = key_from_old_passphrase(&store);
    let planted = DeviceId::from_bytes([0; 16]); // sorts first in every listing
    let planted_keys = DeviceKeys::generate().unwrap();
    let attacker_recovery =
        crate::identity::recovery_identity(&RecoveryPhrase::from_entropy([9; 32])).unwrap().to_public().to_string();
    let record = DevicePayload {
        device_id: *planted.as_bytes(),
        name: "planted".into(),
        recipient: planted_keys.recipient(),
        enrolled_ms: 1,
        recovery_recipient: attacker_recovery.clone(),
    };
    let sealed = seal::seal(
        ObjectKind::Device,
        a.vault_id(),
        planted,
        ObjectId(planted_keys.signing_public()),
        [1; 24],
        &SealKeys { epoch: 0, master_key: &old_key, signing_key: planted_keys.signing_key() },
        &encode(&record),
    )
    .unwrap();
    store.put(&paths::device_record(planted), &sealed).unwrap();

    // a learns the planted device, but only as known and inactive.
    sync(&mut a, &store);
    let listed = a.devices().unwrap();
    let info = listed.iter().find(|d| d.device_id == planted.to_string()).expect("known");
    assert!(!info.active, "a record sealed under an old epoch enrols nobody");

    // The next, unrelated, revocation wraps the new key to the members only.
    sync(&mut b, &store);
    let revoked = a.revoke_device(&b.device_id().to_string()).unwrap();
    assert_eq!(revoked.members, 1, "only a itself is left");
    sync(&mut a, &store);
    let slots = key_slots_of(&store, 2);
    assert!(!slots.iter().any(|path| path.contains(&planted.to_string())), "no key for the planted device: {slots:?}");

    // It is not "revoked already": revoking it records that for good.
    let revoked = a.revoke_device(&planted.to_string()).unwrap();
    assert_eq!(revoked.device_id, planted.to_string());
    sync(&mut a, &store);

    // A device joining later with the recovery phrase takes the recovery key from the newest
    // signed key epoch object, not from the planted record (which sorts first).
    let restored = join_with_phrase(dir.path(), "restored", &store, &RecoveryPhrase::parse(&phrase).unwrap()).unwrap();
    let recovery = |vault: &Vault| -> String { crate::database::meta_get(&vault.conn, "recovery_recipient").unwrap() };
    assert_eq!(recovery(&restored), recovery(&a));
    assert_ne!(recovery(&restored), attacker_recovery);
}

/// Seals an object as `vault`'s device would, with its own keys, skipping every check a
/// well-behaved device makes (a revoked device does not make them).
fn seal_as(vault: &Vault, kind: ObjectKind, object_id: ObjectId, payload: &[u8]) -> Vec<u8> {
    let keys = VaultKeys::load(&vault.conn).unwrap();
    let device = DeviceKeys::load(&vault.conn).unwrap();
    seal::seal(kind, keys.vault_id, vault.device_id(), object_id, [3; 24], &keys.sealing(&device), payload).unwrap()
}

fn local_clock(vault: &Vault) -> Hlc {
    Hlc::from_u64(crate::database::meta_get::<i64>(&vault.conn, "hlc").unwrap().try_into().unwrap())
}

fn op(device: DeviceId, counter: u64, hlc: Hlc, key: &str, kind: OpKind) -> WireOp {
    WireOp::from_op(&Op {
        id: OpId { device, counter },
        hlc,
        collection: Collection::new("notes").unwrap(),
        key: RecordKey::new(key).unwrap(),
        kind,
        parents: Vec::new(),
    })
}

/// Publishes `vault`'s segment 1 holding `ops` and a HEAD of log `generation` naming it (a
/// higher generation than before is what a purge publishes after rewriting).
fn publish_first_segment(vault: &Vault, store: &MemoryStore, ops: Vec<WireOp>, generation: u32) {
    let segment = SegmentPayload { seq: 1, prev: None, ops };
    let sealed = seal_as(vault, ObjectKind::Segment, ObjectId::segment(1), &encode(&segment));
    store.put(&paths::segment(vault.device_id(), 1), &sealed).unwrap();
    let rewritten_from = (generation > 0).then_some(1);
    let head = HeadPayload { seq: 1, hash: *blake3::hash(&sealed).as_bytes(), generation, rewritten_from };
    store
        .put(&paths::head(vault.device_id()), &seal_as(vault, ObjectKind::Head, ObjectId::HEAD, &encode(&head)))
        .unwrap();
}

#[test]
fn hole_2_a_revoked_device_cannot_rewrite_its_log_and_a_rewrite_cannot_add() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c", "d"]);
    let [mut b, mut c, mut d]: [Vault; 3] = joined.try_into().unwrap();
    c.put("notes", "kept", &json!("before")).unwrap();
    b.put("notes", "b-note", &json!("b's")).unwrap();
    for vault in [&mut c, &mut b, &mut d, &mut a] {
        sync(vault, &store);
    }
    a.revoke_device(&c.device_id().to_string()).unwrap();
    sync(&mut a, &store);

    // c, revoked, re-opens its segment 1: the op it had, plus a write dated ten years ahead
    // and a forget of every note.
    let original: SegmentPayload = {
        let bytes = c.held_object(&paths::segment(c.device_id(), 1)).unwrap().unwrap();
        let keys = VaultKeys::load(&c.conn).unwrap();
        let (_, plain) = seal::open(
            &bytes,
            &seal::Expected {
                kind: ObjectKind::Segment,
                vault_id: keys.vault_id,
                device_id: Some(c.device_id()),
                object_id: Some(ObjectId::segment(1)),
            },
            |_| Some(DeviceKeys::load(&c.conn).unwrap().signing_key().verifying_key()),
            |e| keys.key(e),
        )
        .unwrap();
        decode(&plain).unwrap()
    };
    let future = Hlc::new(crate::write::now_ms() + 10 * 365 * 24 * 3600 * 1000, 0).unwrap();
    let mut ops = original.ops.clone();
    ops.push(op(c.device_id(), 50, future, "injected", OpKind::Put(JsonValue::parse("\"from the future\"").unwrap())));
    ops.push(op(c.device_id(), 51, future, "*", OpKind::Forget(Forget { scope: ForgetScope::All, window: None })));
    publish_first_segment(&c, &store, ops, 7);

    let report = a.pull(handle(&store)).unwrap();
    assert_eq!(report.imported_ops, 0, "nothing of the rewrite is imported: {report:?}");
    let head = paths::head(c.device_id());
    let reasons = skipped(&a);
    let reason = reasons.iter().find(|(path, _)| *path == head).map(|(_, r)| r.clone()).expect("reported");
    assert!(reason.contains("cannot be rewritten"), "{reason}");
    assert!(a.get("notes", "injected").unwrap().is_none());
    assert!(a.get("notes", "b-note").unwrap().is_some(), "the forget was not imported");
    assert!(local_clock(&a).wall_ms() < crate::write::now_ms() + 60_000, "the clock did not jump ahead");

    // An active device's rewrite may remove ops, never add one below its last counter. d's
    // log holds ops 2 and 3 (op 1 was forgotten and purged before a read it).
    let now = Hlc::new(crate::write::now_ms(), 0).unwrap();
    let value = || OpKind::Put(JsonValue::parse("1").unwrap());
    let kept = vec![op(d.device_id(), 2, now, "d2", value()), op(d.device_id(), 3, now, "d3", value())];
    publish_first_segment(&d, &store, kept.clone(), 0);
    assert_eq!(a.pull(handle(&store)).unwrap().imported_ops, 2);
    let mut sneaked = vec![op(d.device_id(), 1, now, "sneaked", value())];
    sneaked.extend(kept);
    publish_first_segment(&d, &store, sneaked, 7);
    let report = a.pull(handle(&store)).unwrap();
    assert_eq!(report.imported_ops, 0, "{report:?}");
    assert!(a.get("notes", "sneaked").unwrap().is_none());
    let segment = paths::segment(d.device_id(), 1);
    let reason = skipped(&a).into_iter().find(|(path, _)| *path == segment).map(|(_, r)| r).expect("reported");
    assert!(reason.contains("may only remove ops"), "{reason}");
}

#[test]
fn hole_2_a_clock_far_ahead_is_imported_but_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, b) = two_synced_devices(dir.path(), &store);
    let future = Hlc::new(crate::write::now_ms() + 10 * 365 * 24 * 3600 * 1000, 0).unwrap();
    let ops = vec![op(b.device_id(), 1, future, "late", OpKind::Put(JsonValue::parse("1").unwrap()))];
    let segment = SegmentPayload { seq: 1, prev: None, ops };
    let sealed = seal_as(&b, ObjectKind::Segment, ObjectId::segment(1), &encode(&segment));
    store.put(&paths::segment(b.device_id(), 1), &sealed).unwrap();
    let head = HeadPayload { seq: 1, hash: *blake3::hash(&sealed).as_bytes(), generation: 0, rewritten_from: None };
    store.put(&paths::head(b.device_id()), &seal_as(&b, ObjectKind::Head, ObjectId::HEAD, &encode(&head))).unwrap();

    let report = a.pull(handle(&store)).unwrap();
    assert_eq!(report.imported_ops, 1);
    assert_eq!(report.clocks_held_back.len(), 1, "{report:?}");
    assert!(report.clocks_held_back[0].1 > 9 * 365 * 24 * 3600 * 1000);
    assert!(local_clock(&a).wall_ms() < crate::write::now_ms() + 60_000, "this device's clock did not jump ahead");
}

#[test]
fn hole_3_squatted_epoch_names_do_not_block_a_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
    for vault in [&mut b, &mut c, &mut a] {
        sync(vault, &store);
    }
    // A store writer takes every name it can predict: the old layout's epoch objects and
    // slots, revocations without a tag, slots of every device in untagged and zero-tag epochs.
    for n in 1..=5u32 {
        store.put(&format!("keys/{n}/epoch"), b"junk").unwrap();
        let zero = EpochRef::tagged(n, [0; 16]);
        store.put(&paths::key_epoch(&zero), b"junk").unwrap();
        for device in [a.device_id(), b.device_id(), c.device_id()] {
            store.put(&format!("keys/{n}/{device}.age"), b"junk").unwrap();
            store.put(&paths::key_slot(&zero, &device.to_string()), b"junk").unwrap();
        }
    }
    store.put(&format!("devices/{}.revoked", c.device_id()), b"junk").unwrap();

    a.revoke_device(&c.device_id().to_string()).unwrap();
    sync(&mut a, &store);
    a.put("notes", "after", &json!("secret")).unwrap();
    sync(&mut a, &store);

    // b accepts the revocation, adopts the new key and reads a's new writes.
    let report = b.pull(handle(&store)).unwrap();
    assert_eq!(report.adopted_epoch, Some(1), "{report:?}");
    assert_eq!(report.revocations, 1);
    assert_eq!(b.get("notes", "after").unwrap().unwrap().value.as_str(), "\"secret\"");
    let states: Vec<(String, bool)> = b.devices().unwrap().into_iter().map(|i| (i.name, i.active)).collect();
    assert!(states.contains(&("c".into(), false)), "{states:?}");

    // A name taken while the revocation is being published is found when the revoker reads
    // it back: the push fails loudly, and nothing pretends the revocation landed.
    let second = MemoryStore::default();
    let mut d = crate::sync_tests::first_device(dir.path(), "d", &second);
    sync(&mut d, &second);
    let mut e = crate::sync_tests::join(dir.path(), "e", &second);
    sync(&mut e, &second);
    sync(&mut d, &second);
    d.revoke_device(&e.device_id().to_string()).unwrap();
    let queued: Vec<String> = d.registry_objects().unwrap().into_iter().map(|(path, _)| path).collect();
    let epoch_path = queued.iter().find(|path| path.ends_with("/epoch")).unwrap().clone();
    second.put(&epoch_path, b"taken first").unwrap();
    let err = d.push(handle(&second)).unwrap_err();
    assert!(matches!(err, Error::RotationObjectTaken { .. }), "{err:?}");
    assert_eq!(err.hint(), Some(crate::Hint::RevokeAgain), "{err}");
}

#[test]
fn hole_4_adding_a_store_after_a_revocation_writes_no_passphrase_slot() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, b) = two_synced_devices(dir.path(), &store);
    a.revoke_device(&b.device_id().to_string()).unwrap();
    sync(&mut a, &store);

    // The revoked device's owner knows the passphrase; a new, empty store must not get a slot
    // that opens the new key with it.
    let added = MemoryStore::default();
    let id = a.attach_store("test:added", &added, Some(&unlock())).unwrap();
    a.push(StoreHandle { id, store: &added }).unwrap();
    let listed = added.list("keys/").unwrap();
    assert!(!listed.iter().any(|path| path.ends_with("/passphrase.age")), "{listed:?}");
    assert!(listed.iter().any(|path| path.ends_with("/recovery.age")), "{listed:?}");
    assert!(matches!(
        crate::sync_tests::try_join(dir.path(), "intruder", &added).unwrap_err(),
        Error::NoPassphraseSlot { .. }
    ));

    // `ferry key passphrase` sets a new one; from then on stores get it (with the new one).
    let new = Unlock { passphrase: Passphrase::new("a new passphrase"), kdf_cost: KdfCost::WorkFactor(4) };
    a.change_passphrase(&new).unwrap();
    let third = MemoryStore::default();
    let id = a.attach_store("test:third", &third, Some(&new)).unwrap();
    a.push(StoreHandle { id, store: &third }).unwrap();
    assert!(third.list("keys/").unwrap().iter().any(|path| path.ends_with("/passphrase.age")));
}

#[test]
fn hole_5_a_replaced_pairing_request_is_caught_and_codes_cannot_be_ground() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (a, _) = devices(dir.path(), &store, &[]);
    let invite = a.invite("test:store", 60_000).unwrap();
    let token = invite.to_token();

    // The real phone answers; someone who also holds the line (a store writer, a hub client)
    // replaces the request with its own device's before the inviter reads it.
    let phone = Pairing::start(ferry_format::pairing::Invite::parse(&token).unwrap(), "phone", &store).unwrap();
    let attacker_invite = ferry_format::pairing::Invite::parse(&token).unwrap();
    let attacker_keys = DeviceKeys::generate().unwrap();
    let attacker_request = ferry_format::pairing::PairRequest {
        device_id: vec![0x66; 16],
        name: "phone".into(),
        signing_public: attacker_keys.signing_public().to_vec(),
        recipient: attacker_keys.recipient(),
    };
    let request_path = paths::pair(&invite.invite_id, "request");
    store.put(&request_path, &attacker_invite.seal_request(&attacker_request, [5; 24])).unwrap();

    // Before the inviter reads the request, nobody can know the code: it depends on a value
    // the inviter picks afterwards (two readings of one request give different codes).
    let seen = a.pair_request(&invite, &store).unwrap().expect("a request");
    assert_eq!(seen.fingerprint, Fingerprint::of_device_key(&attacker_keys.signing_public()).to_string());
    let other = a.invite("test:store", 60_000).unwrap();
    let codes: Vec<String> = (0..2).map(|n| other.confirmation_code(&attacker_request, &[n; 32])).collect();
    assert_ne!(codes[0], codes[1]);

    // The phone sees the inviter read another request, and shows no code at all.
    let err = phone.confirmation(&store).unwrap_err();
    assert!(matches!(err, Error::PairingInterfered), "{err:?}");
    assert!(err.to_string().contains("interfered"), "{err}");

    // A second reveal cannot be written over the first (the inviter's value is fixed once).
    let again = a.pair_request(&invite, &store).unwrap_err();
    assert!(matches!(again, Error::InviteUsed), "{again:?}");
}

#[test]
fn hole_10_a_forget_window_reaching_into_the_future_spares_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    a.put("notes", "n1", &json!("before")).unwrap();
    let now = crate::write::now_ms();
    let window = (Hlc::new(now - 3_600_000, 0).unwrap(), Hlc::new(now + 10 * 365 * 24 * 3_600_000, 0).unwrap());
    a.forget("notes", &ForgetTarget::All, Some(window)).unwrap();
    assert!(a.get("notes", "n1").unwrap().is_none(), "what was written is forgotten");
    sync(&mut a, &store);
    sync(&mut b, &store);

    // Written after the forget, on either device: kept everywhere.
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.put("notes", "n2", &json!("after, on b")).unwrap();
    a.put("notes", "n3", &json!("after, on a")).unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    sync(&mut b, &store);
    for vault in [&a, &b] {
        assert!(vault.get("notes", "n2").unwrap().is_some(), "b's later write survives");
        assert!(vault.get("notes", "n3").unwrap().is_some(), "a's later write survives");
    }
}

#[test]
fn hole_10_a_device_notices_at_its_next_sync_that_the_store_rolled_its_head_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, _) = devices(dir.path(), &store, &[]);
    a.put("notes", "n1", &json!(1)).unwrap();
    sync(&mut a, &store);
    let old_head = store.get(&paths::head(a.device_id())).unwrap().unwrap();
    a.put("notes", "n2", &json!(2)).unwrap();
    sync(&mut a, &store);

    // The store is rolled back: the old HEAD, and the newer segment gone.
    store.put(&paths::head(a.device_id()), &old_head).unwrap();
    store.delete(&paths::segment(a.device_id(), 2)).unwrap();
    // a's next sync (no new write) notices and republishes.
    let report = a.sync(handle(&store), Direction::Both).unwrap();
    assert!(report.push.unwrap().republished_head);
    let mut joiner = join(dir.path(), "late", &store);
    sync(&mut joiner, &store);
    assert!(joiner.get("notes", "n2").unwrap().is_some(), "a device joining later gets everything");
    // And the next sync has nothing more to do.
    assert!(!a.sync(handle(&store), Direction::Both).unwrap().push.unwrap().republished_head);
}

#[test]
fn hole_10_a_forged_export_or_store_made_for_the_recovery_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut real, words) = first_device_with_phrase(dir.path(), "a", &store);
    let phrase = RecoveryPhrase::parse(&words).unwrap();
    let victim_recipient: String = crate::database::meta_get(&real.conn, "recovery_recipient").unwrap();

    // The attacker knows the recovery recipient (every device of the vault holds it) and makes
    // a vault of its own around it: an export file, and a store, that the phrase opens.
    let forger = Vault::create(&Home::new(dir.path().join("forger")), options("forger")).unwrap();
    let mut forger = forger.vault;
    crate::database::meta_set(&forger.conn, "recovery_recipient", &victim_recipient).unwrap();
    forger.put("notes", "bait", &json!("write your secrets here")).unwrap();
    let forged_file = dir.path().join("backup.ferry");
    forger.export(&forged_file, &ExportTo::RecoveryKey).unwrap();
    let forged_store = MemoryStore::default();
    let id = forger.attach_store("test:forged", &forged_store, Some(&unlock())).unwrap();
    forger.push(StoreHandle { id, store: &forged_store }).unwrap();

    // Restoring from the forged file, or joining the forged store, with the real phrase fails.
    let secret = BackupSecret::RecoveryPhrase(phrase.clone());
    let err = Vault::restore(&Home::new(dir.path().join("restored")), &options("restored"), &forged_file, &secret)
        .unwrap_err();
    assert!(err.to_string().contains("does not hold the vault of that phrase"), "{err}");
    assert!(!dir.path().join("restored").exists(), "nothing was created");
    let err = join_with_phrase(dir.path(), "joined", &forged_store, &phrase).unwrap_err();
    assert!(err.to_string().contains("forged or another vault"), "{err}");

    // The real vault's export and store still open with it.
    let real_file = dir.path().join("real.ferry");
    real.export(&real_file, &ExportTo::RecoveryKey).unwrap();
    Vault::restore(&Home::new(dir.path().join("restored")), &options("restored"), &real_file, &secret).unwrap();
}

#[test]
fn hole_8_a_recovery_join_is_not_held_at_an_epoch_whose_successor_the_store_hides() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, phrase) = first_device_with_phrase(dir.path(), "a", &store);
    sync(&mut a, &store);
    let mut b = join(dir.path(), "b", &store);
    sync(&mut b, &store);
    sync(&mut a, &store);
    a.revoke_device(&b.device_id().to_string()).unwrap();
    sync(&mut a, &store);

    // The store (colluding with the revoked b) hides epoch 1's key objects from a newcomer.
    let hiding = MemoryStore::default();
    for path in store.list("").unwrap() {
        if !(path.starts_with("keys/1.")) {
            hiding.put(&path, &store.get(&path).unwrap().unwrap()).unwrap();
        }
    }
    let err = join_with_phrase(dir.path(), "restored", &hiding, &RecoveryPhrase::parse(&phrase).unwrap()).unwrap_err();
    assert!(err.to_string().contains("starts key epoch 1, which this store does not show"), "{err}");
    assert!(!dir.path().join("restored").exists());
}

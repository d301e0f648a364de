//! Keys and devices: revocation and key epochs, recovery, key mismatches, forged registry
//! objects.

use crate::identity::{DeviceKeys, VaultKeys};
use crate::sync_tests::{devices, first_device, handle, options, state, sync, unlock};
use crate::*;
use crate::{BackupSecret, ExportTo};
use ferry_format::objects::{DevicePayload, RevocationPayload, encode, paths};
use ferry_format::seal::{self, ObjectId, ObjectKind};
use ferry_format::{DeviceId, RecoveryPhrase};
use ferry_store::{MemoryStore, Store};
use serde_json::json;

fn skipped_reasons(vault: &Vault) -> Vec<(String, String)> {
    vault.sync_status().unwrap().skipped.into_iter().map(|s| (s.path, s.reason)).collect()
}

fn epoch_of(store: &MemoryStore, path: &str) -> u32 {
    seal::Header::parse(&store.get(path).unwrap().unwrap()).unwrap().epoch
}

/// Seals an object as `vault`'s device would, bypassing every check a well-behaved device
/// makes (a revoked or malicious device does not make them).
fn forge(vault: &Vault, kind: ObjectKind, object_id: ObjectId, payload: &[u8]) -> Vec<u8> {
    let keys = VaultKeys::load(&vault.conn).unwrap();
    let device = DeviceKeys::load(&vault.conn).unwrap();
    seal::seal(kind, keys.vault_id, vault.device_id(), object_id, [7; 24], &keys.sealing(&device), payload).unwrap()
}

#[test]
fn revoking_a_device_rotates_the_key_and_shuts_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
    c.put("notes", "from-c", &json!("before")).unwrap();
    for vault in [&mut c, &mut a, &mut b] {
        sync(vault, &store);
    }
    sync(&mut a, &store);
    assert_eq!(b.get("notes", "from-c").unwrap().unwrap().value.as_str(), "\"before\"");

    let revoked = a.revoke_device(&c.device_id().to_string()[..8]).unwrap();
    assert_eq!((revoked.new_epoch, revoked.members, revoked.last_accepted_seq), (1, 2, 1));
    a.put("notes", "after", &json!("secret")).unwrap();
    sync(&mut a, &store);
    let a_segment = paths::segment(a.device_id(), 1);
    assert_eq!(epoch_of(&store, &a_segment), 1, "a seals with the new key");

    // c, not knowing yet, writes and publishes.
    c.put("notes", "from-c", &json!("after revocation")).unwrap();
    c.push(handle(&store)).unwrap();

    // b adopts the new epoch, reads a's new record, rejects c's late segment.
    let report = b.sync(handle(&store), Direction::Both).unwrap();
    assert_eq!(report.pull.as_ref().unwrap().adopted_epoch, Some(1));
    assert_eq!(b.get("notes", "after").unwrap().unwrap().value.as_str(), "\"secret\"");
    assert_eq!(b.get("notes", "from-c").unwrap().unwrap().value.as_str(), "\"before\"");
    let late = paths::segment(c.device_id(), 2);
    assert!(
        skipped_reasons(&b).iter().any(|(path, reason)| *path == late && reason.contains("written after device")),
        "{:?}",
        skipped_reasons(&b)
    );
    b.put("notes", "from-b", &json!(1)).unwrap();
    sync(&mut b, &store);
    assert_eq!(epoch_of(&store, &paths::segment(b.device_id(), 1)), 1);
    sync(&mut a, &store);
    assert_eq!(state(&a), state(&b));

    // c learns it was revoked, cannot read anything sealed with the new key, cannot push.
    let pulled = c.pull(handle(&store)).unwrap();
    let a_head = paths::head(a.device_id());
    assert!(pulled.skipped.iter().any(|(path, reason)| *path == a_head && reason.contains("epoch 1")), "{pulled:?}");
    assert_eq!(pulled.revocations, 1);
    assert!(c.get("notes", "after").unwrap().is_none());
    let err = c.push(handle(&store)).unwrap_err();
    assert!(matches!(err, Error::Revoked { .. }), "{err:?}");
    assert!(err.to_string().contains(&a.device_id().to_string()), "{err}");
    let listed = a.devices().unwrap();
    let c_info = listed.iter().find(|d| d.device_id == c.device_id().to_string()).unwrap();
    assert_eq!(c_info.revoked_by.as_deref(), Some(a.device_id().to_string().as_str()));
}

#[test]
fn forged_revocations_and_records_are_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
    for vault in [&mut b, &mut c, &mut a] {
        sync(vault, &store);
    }
    sync(&mut b, &store);
    a.revoke_device(&c.device_id().to_string()).unwrap();
    sync(&mut a, &store);

    // The revoked device c revokes b, and enrolls a device of its own, with the old key.
    let forged = RevocationPayload { device_id: *b.device_id().as_bytes(), revoked_ms: 1, new_epoch: 1, last_seq: 0 };
    // It names the epoch a started (its tag is in the store for all to see).
    let first = VaultKeys::load(&a.conn).unwrap().current();
    let tag = first.tag.unwrap();
    let forged = forge(&c, ObjectKind::Revocation, ObjectId::revocation(b.device_id(), &tag), &encode(&forged));
    store.put(&paths::revocation(b.device_id(), &tag), &forged).unwrap();
    let intruder = DeviceId::from_bytes([0x66; 16]);
    let record = DevicePayload {
        device_id: *intruder.as_bytes(),
        name: "intruder".into(),
        recipient: DeviceKeys::generate().unwrap().recipient(),
        enrolled_ms: 1,
        recovery_recipient: String::new(),
    };
    let intruder_key = DeviceKeys::generate().unwrap().signing_public();
    store
        .put(&paths::device_record(intruder), &forge(&c, ObjectKind::Device, ObjectId(intruder_key), &encode(&record)))
        .unwrap();
    // And a record of a device that is not enrolled at all, damaged in transit.
    let mut damaged = store.get(&paths::device_record(b.device_id())).unwrap().unwrap();
    damaged[120] ^= 1;
    let stranger = DeviceId::from_bytes([0x77; 16]);
    store.put(&paths::device_record(stranger), &damaged).unwrap();

    let report = a.pull(handle(&store)).unwrap();
    let reasons: Vec<&(String, String)> = report.skipped.iter().collect();
    let find = |path: &str| reasons.iter().find(|(p, _)| p == path).map(|(_, r)| r.clone());
    let revocation = find(&paths::revocation(b.device_id(), &tag)).expect("forged revocation reported");
    assert!(revocation.contains("revoked"), "{revocation}");
    let record = find(&paths::device_record(intruder)).expect("intruder reported");
    assert!(record.contains("revoked"), "{record}");
    assert!(find(&paths::device_record(stranger)).is_some(), "damaged record reported");
    let known: Vec<String> = a.devices().unwrap().into_iter().map(|d| d.device_id).collect();
    assert_eq!(known.len(), 3, "{known:?}");
    assert!(!known.contains(&intruder.to_string()));
    // b has not pulled since the revocation: for it, c is still active when it meets c's
    // forged revocation of b. The forgery names key epoch 1, which a started, so it is refused
    // whatever the order of the listing; c's real revocation is accepted.
    let forged_bytes = store.get(&paths::revocation(b.device_id(), &tag)).unwrap().unwrap();
    let b_view = crate::sync::registry::Registry::load(&b.conn).unwrap();
    let b_keys = VaultKeys::load(&b.conn).unwrap();
    let forged = crate::sync::registry::open_revocation(&forged_bytes, b.device_id(), tag, &b_keys, &b_view)
        .unwrap_or_else(|e| panic!("c is active for b, so only the epoch check can refuse it: {e}"));
    let epoch_object = store.get(&paths::key_epoch(&first)).unwrap();
    let refused = crate::sync::registry::check_revocation_epoch(&forged, epoch_object.as_deref(), &b_keys, &b_view);
    assert!(refused.unwrap_err().to_string().contains("started by another device"));
    b.pull(handle(&store)).unwrap();
    let states: Vec<(String, bool)> = b.devices().unwrap().into_iter().map(|i| (i.name, i.active)).collect();
    assert!(states.contains(&("b".into(), true)) && states.contains(&("c".into(), false)), "{states:?}");

    // b is still active: its writes still arrive.
    b.put("notes", "still", &json!(true)).unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    assert!(a.get("notes", "still").unwrap().is_some());
}

#[test]
fn recovery_phrase_brings_the_vault_back_after_every_device_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, phrase) = crate::sync_tests::first_device_with_phrase(dir.path(), "a", &store);
    a.put("notes", "n1", &json!("old key")).unwrap();
    sync(&mut a, &store);
    let mut b = crate::sync_tests::join(dir.path(), "b", &store);
    sync(&mut b, &store);
    sync(&mut a, &store);
    // A revocation moves the vault to epoch 1: recovery must still read epoch 0's data.
    a.revoke_device(&b.device_id().to_string()).unwrap();
    a.put("notes", "n2", &json!("new key")).unwrap();
    sync(&mut a, &store);
    b.put("ignored", "x", &json!(1)).unwrap();
    let expected = state(&a);
    drop((a, b));
    std::fs::remove_dir_all(dir.path().join("a")).unwrap();
    std::fs::remove_dir_all(dir.path().join("b")).unwrap();

    let before = store.list("").unwrap();
    let wrong = RecoveryPhrase::from_entropy([1; 32]);
    let join_with =
        |name: &str, phrase: RecoveryPhrase| crate::sync_tests::join_with_phrase(dir.path(), name, &store, &phrase);
    let err = join_with("wrong", wrong).unwrap_err();
    assert!(matches!(err, Error::WrongRecoveryPhrase { .. }), "{err:?}");
    assert!(!dir.path().join("wrong").exists());
    assert_eq!(store.list("").unwrap(), before);
    // The passphrase slot was retired with the revocation.
    let err = crate::sync_tests::try_join(dir.path(), "p", &store).unwrap_err();
    assert!(matches!(err, Error::NoPassphraseSlot { .. }), "{err:?}");

    let mut restored = join_with("restored", RecoveryPhrase::parse(&phrase).unwrap()).unwrap();
    sync(&mut restored, &store);
    assert_eq!(restored.status().unwrap().key_epoch, 1);
    assert_eq!(state(&restored).0, expected.0);
    assert!(restored.get("notes", "n1").unwrap().is_some() && restored.get("notes", "n2").unwrap().is_some());
}

#[test]
fn a_store_with_other_keys_is_named_with_both_fingerprints_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    sync(&mut a, &store);
    let theirs = a.status().unwrap().vault_key_fingerprint;

    let other = MemoryStore::default();
    let mut stranger = first_device(dir.path(), "stranger", &other);
    stranger.put("notes", "x", &json!(1)).unwrap();
    let ours = stranger.status().unwrap().vault_key_fingerprint;
    let before = store.list("").unwrap();
    let local_before = stranger.status().unwrap().ops;
    let err = stranger.attach_store("test:other", &store, Some(&unlock())).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    assert!(text.contains(&theirs) && text.contains(&ours), "{text}");
    assert_eq!(store.list("").unwrap(), before);
    assert_eq!(stranger.stores().unwrap().len(), 1);
    assert_eq!(stranger.status().unwrap().ops, local_before);

    // The same vault id with another key (a vault file altered in the store) is named too.
    let mut file: serde_json::Value = serde_json::from_slice(&store.get(paths::VAULT_FILE).unwrap().unwrap()).unwrap();
    file["fingerprint"] = json!("0000-0000-0000-0000-0000");
    store.put(paths::VAULT_FILE, &serde_json::to_vec(&file).unwrap()).unwrap();
    a.put("notes", "y", &json!(2)).unwrap();
    let err = a.sync(handle(&store), Direction::Both).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
}

/// Pairs a new device `name` into `inviter`'s vault through `store`.
pub(crate) fn pair(inviter: &mut Vault, store: &dyn Store, dir: &std::path::Path, name: &str) -> Vault {
    let invite = inviter.invite("test:store", 60_000).unwrap();
    let token = invite.to_token();
    let pairing = Pairing::start(ferry_format::pairing::Invite::parse(&token).unwrap(), name, store).unwrap();
    assert!(pairing.confirmation(store).unwrap().is_none(), "no code before the inviter read the request");
    let request = inviter.pair_request(&invite, store).unwrap().expect("the request is there");
    let shown = pairing.confirmation(store).unwrap().expect("revealed");
    assert_eq!(request.code, shown.code, "both devices show the same code");
    assert_eq!(request.fingerprint, shown.fingerprint, "and the same key fingerprint");
    assert_eq!(request.name, name);
    assert!(pairing.poll(store).unwrap().is_none(), "no response before approval");
    inviter.approve_pairing(&invite, store, &request).unwrap();
    let epoch = pairing.poll(store).unwrap().expect("approved");
    pairing.finish(&Home::new(dir.join(name)), &options(name), epoch, store).unwrap()
}

#[test]
fn pairing_through_a_folder_store_enrolls_a_device_signed_by_its_inviter() {
    let dir = tempfile::tempdir().unwrap();
    let store = ferry_store::FolderStore::new(dir.path().join("store"));
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    a.put("notes", "n1", &json!("epoch 0")).unwrap();
    sync(&mut a, &store);
    a.revoke_device(&b.device_id().to_string()).unwrap();
    a.put("notes", "n2", &json!("epoch 1")).unwrap();
    sync(&mut a, &store);

    let mut phone = pair(&mut a, &store, dir.path(), "phone");
    assert!(store.list(paths::PAIR).unwrap().is_empty(), "the exchange is removed after use");
    sync(&mut phone, &store);
    assert_eq!(phone.status().unwrap().key_epoch, 1);
    assert_eq!(state(&phone).0, state(&a).0, "reads both epochs' data");
    assert_eq!(phone.status().unwrap().vault_key_fingerprint, a.status().unwrap().vault_key_fingerprint);
    phone.put("notes", "from-phone", &json!(1)).unwrap();
    sync(&mut phone, &store);
    sync(&mut a, &store);
    assert!(a.get("notes", "from-phone").unwrap().is_some());
    let info = a.devices().unwrap().into_iter().find(|d| d.name == "phone").unwrap();
    assert_eq!(info.enrolled_by, Some(a.device_id().to_string()));
    assert_eq!(info.revoked_by, None);
}

#[test]
fn expired_replayed_and_tampered_invites_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    sync(&mut a, &store);
    let parse =
        |invite: &ferry_format::pairing::Invite| ferry_format::pairing::Invite::parse(&invite.to_token()).unwrap();

    let stale = a.invite("test:store", 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(matches!(Pairing::start(parse(&stale), "late", &store), Err(Error::InviteExpired { .. })));
    assert!(matches!(a.pair_request(&stale, &store), Err(Error::InviteExpired { .. })));

    let invite = a.invite("test:store", 60_000).unwrap();
    let _first = Pairing::start(parse(&invite), "first", &store).unwrap();
    let err = Pairing::start(parse(&invite), "second", &store).unwrap_err();
    assert!(matches!(err, Error::InviteUsed), "{err:?}");

    let request_path = store.list(paths::PAIR).unwrap().pop().unwrap();
    let mut tampered = store.get(&request_path).unwrap().unwrap();
    tampered[40] ^= 1;
    store.put(&request_path, &tampered).unwrap();
    let err = a.pair_request(&invite, &store).unwrap_err();
    assert!(matches!(err, Error::Pairing(ferry_format::pairing::PairingError::Tampered)), "{err:?}");

    // An invite of another vault is refused by the new device before it writes anything.
    let other = MemoryStore::default();
    let mut stranger = first_device(dir.path(), "stranger", &other);
    sync(&mut stranger, &other);
    let foreign = stranger.invite("test:store", 60_000).unwrap();
    let before = store.list("").unwrap();
    assert!(matches!(Pairing::start(parse(&foreign), "x", &store), Err(Error::KeyMismatch { .. })));
    assert_eq!(store.list("").unwrap(), before);
    assert_eq!(a.devices().unwrap().len(), 1, "nothing was enrolled");
}

#[test]
fn export_wipe_restore_gives_the_identical_vault_and_import_merges() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let created =
        Vault::create_for_store(&Home::new(dir.path().join("a")), options("a"), "test:store", &store).unwrap();
    let phrase = RecoveryPhrase::parse(&created.recovery_phrase.to_words()).unwrap();
    let mut a = created.vault;
    sync(&mut a, &store);
    let mut b = crate::sync_tests::join(dir.path(), "b", &store);
    b.put("notes", "from-b", &json!({"b": 1})).unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    let blob = a.put_blob(&vec![7u8; 3 * crate::CHUNK_SIZE / 2][..]).unwrap();
    a.put("files", "f", &json!({ "blob": blob.id })).unwrap();
    a.revoke_device(&b.device_id().to_string()).unwrap();
    for n in 0..50 {
        a.put("notes", &format!("n{n}"), &json!(n)).unwrap();
    }
    a.delete("notes", "n3").unwrap(); // unpublished: no sync since
    let expected = state(&a);
    let file = dir.path().join("vault.ferry");
    let report = a.export(&file, &ExportTo::RecoveryKey).unwrap();
    assert!(report.objects > 5 && report.bytes > 0, "{report:?}");
    let raw = std::fs::read(&file).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(!raw.windows(6).any(|w| w == b"from-b"), "nothing readable in the file");
    drop((a, b));
    std::fs::remove_dir_all(dir.path().join("a")).unwrap();
    std::fs::remove_dir_all(dir.path().join("b")).unwrap();

    let wrong = BackupSecret::RecoveryPhrase(RecoveryPhrase::from_entropy([3; 32]));
    let home = Home::new(dir.path().join("restored"));
    let err = Vault::restore(&home, &options("restored"), &file, &wrong).unwrap_err();
    assert!(matches!(err, Error::WrongBackupSecret { .. }), "{err:?}");
    assert!(!home.root().exists(), "nothing is created");
    let (restored, imported) =
        Vault::restore(&home, &options("restored"), &file, &BackupSecret::RecoveryPhrase(phrase.clone())).unwrap();
    assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
    assert_eq!(state(&restored), expected);
    assert_eq!(restored.status().unwrap().key_epoch, 1);
    let mut out = Vec::new();
    restored.get_blob(&blob.id.parse().unwrap(), &[], &mut out).unwrap();
    assert_eq!(out, vec![7u8; 3 * crate::CHUNK_SIZE / 2]);

    // Importing the same file again into the restored device changes nothing.
    let mut restored = restored;
    let again = restored.import(&file, &BackupSecret::RecoveryPhrase(phrase)).unwrap();
    assert_eq!((again.imported_ops, again.new_devices, again.blob_objects), (0, 0, 0));
    assert_eq!(state(&restored), expected);
}

#[test]
fn imports_of_other_vaults_cut_files_and_wrong_passphrases_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    a.put("notes", "x", &json!(1)).unwrap();
    let file = dir.path().join("a.ferry");
    let secret = Unlock { passphrase: Passphrase::new("backup words"), kdf_cost: KdfCost::WorkFactor(4) };
    a.export(&file, &ExportTo::Passphrase(secret)).unwrap();

    let other = MemoryStore::default();
    let mut stranger = first_device(dir.path(), "stranger", &other);
    stranger.put("notes", "mine", &json!(2)).unwrap();
    let before = state(&stranger);
    let right = BackupSecret::Passphrase(Passphrase::new("backup words"));
    let err = stranger.import(&file, &right).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    let err = stranger.import(&file, &BackupSecret::Passphrase(Passphrase::new("nope"))).unwrap_err();
    assert!(matches!(err, Error::WrongBackupSecret { .. }), "{err:?}");
    let err = stranger.import(&file, &BackupSecret::RecoveryPhrase(RecoveryPhrase::from_entropy([1; 32]))).unwrap_err();
    assert!(matches!(err, Error::WrongBackupSecret { .. }), "{err:?}");
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.ferry");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let err = a.import(&cut, &right).unwrap_err();
    assert!(matches!(err, Error::BadBackup { .. }), "{err:?}");
    assert_eq!(state(&stranger), before);
    assert!(!dir.path().join("stranger").join("import.tmp").exists());
    assert_eq!(stranger.stores().unwrap().len(), 1, "the staging store is forgotten");
}

#[test]
fn init_force_needs_the_old_recovery_phrase_and_moves_the_old_vault_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    let store = ferry_store::FolderStore::new(&root);
    let created =
        Vault::create_for_store(&Home::new(dir.path().join("old")), options("old"), "test:store", &store).unwrap();
    let old_phrase = RecoveryPhrase::parse(&created.recovery_phrase.to_words()).unwrap();
    let mut old = created.vault;
    old.put("notes", "kept", &json!("in the old vault")).unwrap();
    sync(&mut old, &store);
    let old_id = old.vault_id().to_string();
    let before = store.list("").unwrap();

    let fresh = Home::new(dir.path().join("new"));
    let err = Vault::create_for_store_replacing(
        &fresh,
        options("new"),
        "test:store",
        &store,
        &RecoveryPhrase::from_entropy([2; 32]),
    )
    .unwrap_err();
    assert!(matches!(err, Error::RecoveryNotConfirmed { .. }), "{err:?}");
    assert_eq!(store.list("").unwrap(), before, "nothing moved");
    assert!(!fresh.root().exists());

    let (created, archived) =
        Vault::create_for_store_replacing(&fresh, options("new"), "test:store", &store, &old_phrase).unwrap();
    assert_eq!(archived.as_deref(), Some(format!("previous/{old_id}/").as_str()));
    let mut new = created.vault;
    sync(&mut new, &store);
    assert_ne!(new.vault_id(), old.vault_id());

    // The old vault is intact where it was moved, and opens with its recovery phrase.
    let moved = ferry_store::FolderStore::new(root.join("previous").join(&old_id));
    let mut back = Vault::join(
        &Home::new(dir.path().join("back")),
        JoinOptions { device_name: "back".into(), unlock: unlock(), with: JoinWith::RecoveryPhrase(old_phrase) },
        "test:moved",
        &moved,
    )
    .unwrap();
    back.pull(handle(&moved)).unwrap();
    assert_eq!(back.get("notes", "kept").unwrap().unwrap().value.as_str(), "\"in the old vault\"");
}

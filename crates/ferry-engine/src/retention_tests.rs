//! Retention end to end: compaction, snapshots and prune across devices that write, sync, stay
//! offline and join late, through the real sync paths.

use crate::sync_tests::{devices, handle, join, state, sync};
use crate::*;
use ferry_format::objects::paths;
use ferry_store::{MemoryStore, Store};
use serde_json::json;

/// Prune now: keep no superseded history, no grace period.
fn prune_now(vault: &mut Vault, store: &dyn Store) -> PruneReport {
    let options = PruneOptions { keep: Some(Retention::Keep { ms: 0 }), grace_ms: 0, dry_run: false, scheduled: false };
    vault.prune(&[handle(store)], &options).unwrap()
}

fn values(vault: &Vault) -> Vec<(String, String, String, usize)> {
    state(vault).0
}

fn segments_in(store: &dyn Store) -> usize {
    store.list("log/").unwrap().iter().filter(|p| p.ends_with(".seg")).count()
}

#[test]
fn after_a_prune_every_device_converges_a_new_one_joins_from_the_snapshot_and_an_offline_one_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "offline"]);
    let mut joined = joined.into_iter();
    let (mut b, mut offline) = (joined.next().unwrap(), joined.next().unwrap());
    for vault in [&mut b, &mut offline, &mut a] {
        sync(vault, &store);
    }
    // History: each record rewritten many times, from both devices.
    for round in 0..6 {
        a.put("notes", "n1", &json!({"round": round, "by": "a"})).unwrap();
        sync(&mut a, &store);
        b.put("notes", "n2", &json!({"round": round, "by": "b"})).unwrap();
        sync(&mut b, &store);
    }
    a.delete("notes", "n2").unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    // The offline device wrote before the prune and never published.
    offline.put("notes", "from-offline", &json!("written offline")).unwrap();
    let before = segments_in(&store);

    let report = prune_now(&mut a, &store);
    assert!(report.local.ops >= 8, "superseded ops dropped: {report:?}");
    let snapshot = report.snapshot.clone().expect("a snapshot was written");
    let (_, pruned) = &report.stores[0];
    let pruned = pruned.as_ref().unwrap();
    assert!(pruned.deleted_objects >= 12, "{pruned:?}");
    assert!(segments_in(&store) < before / 4, "{} of {before} segments left", segments_in(&store));
    assert!(store.get(&snapshot.path).unwrap().is_some());
    for device in [&a, &b] {
        assert!(store.get(&paths::head(device.device_id())).unwrap().is_some(), "HEADs are never pruned");
    }
    assert_eq!(a.repair().unwrap().corrected, 0, "what compaction left folds to the same state");
    // b still holds copies of the pruned segments: its store check must not put them back.
    let audit = b.repair_store(handle(&store)).unwrap();
    assert!(audit.missing.is_empty() && audit.restored == 0, "{audit:?}");

    // b keeps syncing through the pruned store.
    b.put("notes", "n3", &json!("after the prune")).unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    assert_eq!(values(&a), values(&b));

    // A new device starts from the snapshot, then the tail.
    let mut c = join(dir.path(), "c", &store);
    let report = sync(&mut c, &store);
    assert_eq!(report.pull.unwrap().snapshot.as_deref(), Some(snapshot.path.as_str()));
    assert_eq!(values(&c), values(&a));

    // The offline device comes back: the segments after its cursors are gone, it loads the
    // snapshot, and its unpublished write reaches everyone.
    let report = sync(&mut offline, &store);
    assert!(report.pull.unwrap().snapshot.is_some());
    for vault in [&mut a, &mut b, &mut c] {
        sync(vault, &store);
    }
    let expected = values(&a);
    assert!(expected.iter().any(|(_, key, ..)| key == "from-offline"));
    for vault in [&b, &c, &offline] {
        assert_eq!(values(vault), expected);
    }
    for vault in [&b, &c, &offline] {
        let skipped = vault.sync_status().unwrap().skipped;
        assert!(skipped.is_empty(), "nothing skipped: {skipped:?}");
    }
}

#[test]
fn a_forget_replaces_the_snapshots_that_held_what_it_erased() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let mut b = joined.into_iter().next().unwrap();
    sync(&mut b, &store);
    a.put("secrets", "s1", &json!("the secret")).unwrap();
    a.put("notes", "n1", &json!("kept")).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    let first = prune_now(&mut a, &store).snapshot.unwrap();

    // b forgets the secret; a learns of it and replaces its snapshot.
    b.forget("secrets", &ForgetTarget::Record("s1".into()), None).unwrap();
    sync(&mut b, &store);
    let report = sync(&mut a, &store);
    assert!(report.pull.unwrap().forgot);
    sync(&mut a, &store); // the next push publishes the purge
    assert!(store.get(&first.path).unwrap().is_none(), "the snapshot that held the secret is gone from the store");
    assert!(
        store.list("snapshots/").unwrap().iter().any(|path| path.ends_with(".snap")),
        "a new snapshot stands for the pruned segments"
    );

    // A device joining now never sees the secret, and gets the rest.
    let mut c = join(dir.path(), "c", &store);
    let report = sync(&mut c, &store);
    assert!(report.pull.unwrap().snapshot.is_some());
    assert!(c.get("secrets", "s1").unwrap().is_none());
    assert_eq!(c.get("notes", "n1").unwrap().unwrap().value.as_str(), r#""kept""#);
    assert_eq!(values(&c), values(&a));
}

#[test]
fn snapshots_of_a_revoked_device_are_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let mut joined = joined.into_iter();
    let (mut b, mut c) = (joined.next().unwrap(), joined.next().unwrap());
    sync(&mut b, &store);
    a.put("notes", "n1", &json!("from a")).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    // b writes a snapshot (a device's own right), then is revoked.
    let written = b.write_snapshot().unwrap().unwrap();
    sync(&mut b, &store);
    assert!(store.get(&written.path).unwrap().is_some());
    a.revoke_device(&b.device_id().to_string()).unwrap();
    sync(&mut a, &store);

    let report = sync(&mut c, &store);
    assert!(report.pull.unwrap().snapshot.is_none(), "the revoked device's snapshot is not trusted");
    assert_eq!(c.get("notes", "n1").unwrap().unwrap().value.as_str(), r#""from a""#, "read from the segments");
    // Nor is it a base for pruning: nothing it covers is deleted.
    let before = segments_in(&store);
    let pruned = a.prune_store(handle(&store), 0, false).unwrap();
    assert_eq!(pruned.snapshot, None);
    assert_eq!(segments_in(&store), before);
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One world of the model: four devices of one vault in one store; `d` is revoked half-way,
/// `c` is offline for most of the run (writing locally all along).
struct World {
    _dir: tempfile::TempDir,
    store: MemoryStore,
    devices: Vec<Vault>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::default();
        let (a, others) = devices(dir.path(), &store, &["b", "c", "d"]);
        let mut devices = vec![a];
        devices.extend(others);
        for vault in &mut devices {
            sync(vault, &store);
        }
        Self { _dir: dir, store, devices }
    }

    fn sync(&mut self, device: usize) {
        // A revoked device's syncs fail (it learns it was revoked): that is its expected end.
        let _ = self.devices[device].sync(handle(&self.store), Direction::Both);
    }
}

/// Random writes, deletes, syncs, snapshots and prunes (with no history kept and no grace
/// period) across four devices, one offline for most of the run and one revoked: every device
/// ends with the same records as in a world that never pruned, given the same writes.
#[test]
fn random_histories_converge_to_the_same_state_with_and_without_prune() {
    // More seeds: FERRY_RETENTION_SEEDS=N (CI runs 3).
    let count: u64 = std::env::var("FERRY_RETENTION_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    for seed in (0..count).map(|i| 0x9e37_79b9_u64.wrapping_mul(i + 1)) {
        let mut rng = Rng(seed);
        let mut pruned = World::new();
        let mut plain = World::new();
        let steps = 160;
        for step in 0..steps {
            let offline = |device: usize| device == 2 && (20..140).contains(&step);
            if step == 80 {
                // The revoker has everything the revoked device published, and publishes the
                // revocation at once (a revocation racing the revoked device's last pushes is
                // another matter: docs/SECURITY.md).
                for world in [&mut pruned, &mut plain] {
                    world.sync(3);
                    world.sync(0);
                    let revoked = world.devices[3].device_id().to_string();
                    world.devices[0].revoke_device(&revoked).unwrap();
                    world.sync(0);
                }
            }
            let device = rng.below(4) as usize;
            let revoked = device == 3 && step >= 80;
            match rng.below(10) {
                0..=4 if !revoked => {
                    let key = format!("k{}", rng.below(6));
                    let value = json!({ "step": step, "by": device });
                    // One write per millisecond at most: both worlds then order writes alike.
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    pruned.devices[device].put("notes", &key, &value).unwrap();
                    plain.devices[device].put("notes", &key, &value).unwrap();
                }
                5 if !revoked => {
                    let key = format!("k{}", rng.below(6));
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    let held = |world: &World| world.devices[device].get("notes", &key).unwrap().is_some();
                    if held(&pruned) && held(&plain) {
                        pruned.devices[device].delete("notes", &key).unwrap();
                        plain.devices[device].delete("notes", &key).unwrap();
                    }
                }
                6..=8 if !offline(device) => {
                    pruned.sync(device);
                    plain.sync(device);
                }
                9 if !offline(device) && !revoked => {
                    let options = PruneOptions {
                        keep: Some(Retention::Keep { ms: 0 }),
                        grace_ms: 0,
                        dry_run: false,
                        scheduled: false,
                    };
                    pruned.devices[device].prune(&[handle(&pruned.store)], &options).unwrap();
                    plain.sync(device); // a prune syncs first and after
                    plain.sync(device);
                }
                _ => {}
            }
        }
        for world in [&mut pruned, &mut plain] {
            for _ in 0..3 {
                for device in 0..3 {
                    world.sync(device);
                }
            }
        }
        // Every device of each world holds the same records (values and heads); the values are
        // the plain world's. (Heads may differ between the worlds: a prune syncs at other moments
        // than a plain sync, so a later write may have seen more or less of the others.)
        let shown = |records: Vec<(String, String, String, usize)>| -> Vec<(String, String, String)> {
            records.into_iter().map(|(collection, key, value, _)| (collection, key, value)).collect()
        };
        let expected = values(&plain.devices[0]);
        assert!(!expected.is_empty());
        let pruned_state = values(&pruned.devices[0]);
        assert_eq!(shown(pruned_state.clone()), shown(expected.clone()), "seed {seed}: the values of the plain world");
        for device in 0..3 {
            assert_eq!(values(&plain.devices[device]), expected, "seed {seed}: the plain world converges");
            assert_eq!(values(&pruned.devices[device]), pruned_state, "seed {seed}: device {device} after prunes");
            // Only the revoked device's later objects are refused.
            let revoked = pruned.devices[3].device_id().to_string();
            let skipped = pruned.devices[device].sync_status().unwrap().skipped;
            assert!(skipped.iter().all(|s| s.path.contains(&revoked)), "seed {seed}: {skipped:?}");
        }
        assert!(segments_in(&pruned.store) < segments_in(&plain.store), "seed {seed}: prunes removed segments");
    }
}

#[test]
fn a_daemon_prunes_once_a_day_and_seals_a_new_snapshot_only_when_the_log_grew_enough() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, _) = devices(dir.path(), &store, &[]);
    a.put("notes", "n1", &json!(1)).unwrap();
    assert!(a.prune_due().unwrap(), "never pruned here");
    let scheduled = PruneOptions { scheduled: true, ..PruneOptions::default() };
    assert!(a.prune(&[handle(&store)], &scheduled).unwrap().snapshot.is_some(), "the first snapshot");
    assert!(!a.prune_due().unwrap(), "not again today");
    a.put("notes", "n2", &json!(2)).unwrap();
    assert!(a.prune(&[handle(&store)], &scheduled).unwrap().snapshot.is_none(), "one op is not worth a snapshot");
    let asked = PruneOptions { grace_ms: 0, ..PruneOptions::default() };
    assert!(a.prune(&[handle(&store)], &asked).unwrap().snapshot.is_some(), "`ferry prune` seals what moved");
}

/// A member device that turns hostile seals a snapshot claiming another device's ops beyond its
/// cut (ops that device never wrote); a store writer swaps a part for another snapshot's. A
/// new device refuses both, says why, and reads the vault from the segments.
#[test]
fn a_snapshot_with_ops_beyond_its_cut_or_a_swapped_part_is_refused() {
    use crate::identity::{DeviceKeys, VaultKeys};
    use ferry_format::objects::{ByteArray32, CutEntry, SnapshotOp, SnapshotPartPayload, SnapshotPayload};
    use ferry_format::seal::ObjectId;
    use ferry_format::{Collection, Hlc, Op, OpId, OpKind, RecordKey};

    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let mut joined = joined.into_iter();
    let (mut b, mut c) = (joined.next().unwrap(), joined.next().unwrap());
    a.put("notes", "n1", &json!("the real value")).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);

    // b seals snapshot 1: a's op 1, and a forged op 999 of a, with a's cut at counter 1.
    let keys = VaultKeys::load(&b.conn).unwrap();
    let device_keys = DeviceKeys::load(&b.conn).unwrap();
    let sealer = keys.sealer(b.device_id(), &device_keys);
    let forged = Op {
        id: OpId { device: a.device_id(), counter: 999 },
        hlc: Hlc::from_u64(u64::MAX >> 1),
        collection: Collection::new("notes").unwrap(),
        key: RecordKey::new("n1").unwrap(),
        kind: OpKind::put_json(r#""forged""#).unwrap(),
        parents: vec![],
    };
    let part = SnapshotPartPayload { n: 1, part: 0, ops: vec![SnapshotOp::from_op(&forged)] };
    let part_bytes = sealer.seal(ObjectId::snapshot_part(1, 0), [1; 24], &part).unwrap();
    let (a_seq, a_hash) = b.cursor(a.device_id()).unwrap();
    let a_hash = a_hash.unwrap();
    let manifest = SnapshotPayload {
        n: 1,
        created_ms: 1,
        cut: vec![CutEntry { d: *a.device_id().as_bytes(), seq: a_seq, hash: a_hash, g: 0, c: 1 }],
        parts: vec![ByteArray32(*blake3::hash(&part_bytes).as_bytes())],
        ops: 1,
    };
    let manifest_bytes = sealer.seal(ObjectId::snapshot(1), [2; 24], &manifest).unwrap();
    store.put(&paths::snapshot_part(b.device_id(), 1, 0), &part_bytes).unwrap();
    store.put(&paths::snapshot(b.device_id(), 1), &manifest_bytes).unwrap();

    let pulled = sync(&mut c, &store).pull.unwrap();
    assert!(pulled.snapshot.is_none());
    let refused = pulled.skipped.iter().find(|(path, _)| path.ends_with(".snap")).expect("the snapshot is refused");
    assert!(refused.1.contains("outside the snapshot's cut"), "{refused:?}");
    assert_eq!(c.get("notes", "n1").unwrap().unwrap().value.as_str(), r#""the real value""#);

    // A store writer puts another snapshot's part under this one's name: the hash differs.
    let honest = a.write_snapshot().unwrap().unwrap();
    sync(&mut a, &store);
    let honest_part = paths::snapshot_part(a.device_id(), 1, 0);
    assert!(honest.path.ends_with("0000000000000001.snap") && store.get(&honest_part).unwrap().is_some());
    store.put(&honest_part, &part_bytes).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut d = crate::sync_tests::join(dir2.path(), "d", &store);
    let pulled = sync(&mut d, &store).pull.unwrap();
    assert!(pulled.snapshot.is_none(), "no snapshot is loaded");
    assert!(pulled.skipped.iter().any(|(_, why)| why.contains("hash differs")), "{:?}", pulled.skipped);
    assert_eq!(d.get("notes", "n1").unwrap().unwrap().value.as_str(), r#""the real value""#);
}

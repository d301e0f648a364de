//! Replication tests: devices converging through stores, costs, crashes and hostile objects.

use crate::*;
use ferry_format::RecoveryPhrase;
use ferry_format::objects::paths;
use ferry_store::{CountingStore, FaultPlan, FaultyStore, FolderStore, MemoryStore, Store};
use serde_json::json;
use std::path::Path;

pub(crate) fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("vault passphrase"), kdf_cost: KdfCost::WorkFactor(4) }
}

pub(crate) fn options(name: &str) -> CreateOptions {
    CreateOptions { device_name: name.into(), unlock: unlock() }
}

pub(crate) fn first_device(dir: &Path, name: &str, store: &dyn Store) -> Vault {
    Vault::create_for_store(&Home::new(dir.join(name)), options(name), "test:store", store).unwrap().vault
}

/// The first device of a vault made in `store`, and the vault's recovery phrase (its words).
pub(crate) fn first_device_with_phrase(dir: &Path, name: &str, store: &dyn Store) -> (Vault, String) {
    let created = Vault::create_for_store(&Home::new(dir.join(name)), options(name), "test:store", store).unwrap();
    let phrase = created.recovery_phrase.to_words();
    (created.vault, phrase)
}

/// Joins the vault in `store` as device `name` with the recovery phrase.
pub(crate) fn join_with_phrase(dir: &Path, name: &str, store: &dyn Store, phrase: &RecoveryPhrase) -> Result<Vault> {
    Vault::join(
        &Home::new(dir.join(name)),
        JoinOptions { device_name: name.into(), unlock: unlock(), with: JoinWith::RecoveryPhrase(phrase.clone()) },
        "test:store",
        store,
    )
}

pub(crate) fn try_join(dir: &Path, name: &str, store: &dyn Store) -> Result<Vault> {
    Vault::join(
        &Home::new(dir.join(name)),
        JoinOptions { device_name: name.into(), unlock: unlock(), with: JoinWith::Passphrase },
        "test:store",
        store,
    )
}

pub(crate) fn join(dir: &Path, name: &str, store: &dyn Store) -> Vault {
    try_join(dir, name, store).unwrap()
}

/// A vault created in `store` by device "a" and published, then devices joined under `others`.
pub(crate) fn devices(dir: &Path, store: &dyn Store, others: &[&str]) -> (Vault, Vec<Vault>) {
    let mut first = first_device(dir, "a", store);
    sync(&mut first, store);
    let joined = others.iter().map(|name| join(dir, name, store)).collect();
    (first, joined)
}

/// Devices "a" and "b" of one vault in `store`, each having synced once after both joined.
pub(crate) fn two_synced_devices(dir: &Path, store: &dyn Store) -> (Vault, Vault) {
    let (mut a, joined) = devices(dir, store, &["b"]);
    let mut b = joined.into_iter().next().unwrap();
    sync(&mut b, store);
    sync(&mut a, store);
    (a, b)
}

pub(crate) fn handle(store: &dyn Store) -> StoreHandle<'_> {
    StoreHandle { id: crate::StoreId(1), store }
}

pub(crate) fn sync(vault: &mut Vault, store: &dyn Store) -> SyncReport {
    vault.sync(handle(store), Direction::Both).unwrap()
}

/// Every record of every collection with its value and heads, plus the op count.
pub(crate) fn state(vault: &Vault) -> (Vec<(String, String, String, usize)>, u64) {
    let mut all = Vec::new();
    for collection in vault.collections().unwrap() {
        for r in vault.list(&collection.name, &ListOptions::default()).unwrap() {
            all.push((collection.name.clone(), r.key, r.value.as_str().to_owned(), r.heads));
        }
    }
    all.sort();
    (all, vault.status().unwrap().ops)
}

#[test]
fn two_devices_converge_through_a_folder_with_offline_edits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store")).unwrap();
    let store = FolderStore::new(dir.path().join("store"));
    let mut laptop = first_device(dir.path(), "laptop", &store);
    laptop.put("notes", "n1", &json!({"title": "from laptop"})).unwrap();
    sync(&mut laptop, &store);

    let mut desktop = join(dir.path(), "desktop", &store);
    sync(&mut desktop, &store);
    assert_eq!(desktop.get("notes", "n1").unwrap().unwrap().value.as_str(), r#"{"title":"from laptop"}"#);
    assert_eq!(desktop.vault_id(), laptop.vault_id());

    // Offline edits on both, including the same record.
    laptop.put("notes", "n2", &json!("laptop only")).unwrap();
    laptop.put("notes", "n1", &json!("laptop edit")).unwrap();
    desktop.put("todos", "t1", &json!("desktop only")).unwrap();
    desktop.put("notes", "n1", &json!("desktop edit")).unwrap();
    desktop.delete("notes", "n1").unwrap();
    desktop.put("notes", "n1", &json!("desktop edit, later")).unwrap();

    for _ in 0..2 {
        sync(&mut laptop, &store);
        sync(&mut desktop, &store);
    }
    assert_eq!(state(&laptop), state(&desktop));
    let n1 = laptop.get("notes", "n1").unwrap().unwrap();
    assert_eq!(n1.value.as_str(), r#""desktop edit, later""#, "the later write wins on both");
    assert_eq!(n1.heads, 2, "the concurrent laptop edit is still a head");
    let status = laptop.sync_status().unwrap();
    assert_eq!(status.auto_resolved_conflicts, 1);
    assert_eq!(status.unpublished_ops, 0);
    assert_eq!(status.stores[0].state, StoreState::UpToDate);
    assert_eq!(status.devices[0].name, "desktop");
    assert!(status.skipped.is_empty(), "{:?}", status.skipped);

    // A write that saw both heads supersedes them, everywhere.
    laptop.put("notes", "n1", &json!("merged")).unwrap();
    sync(&mut laptop, &store);
    sync(&mut desktop, &store);
    assert_eq!(desktop.get("notes", "n1").unwrap().unwrap().heads, 1);
    assert_eq!(state(&laptop), state(&desktop));
    assert_eq!(laptop.devices().unwrap().len(), 2);
}

#[test]
fn three_devices_converge_whatever_the_sync_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
    for (i, vault) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
        for n in 0..20 {
            vault.put("shared", &format!("k{}", n % 7), &json!({"by": i, "n": n})).unwrap();
            vault.put(&format!("own{i}"), &format!("k{n}"), &json!(n)).unwrap();
        }
        vault.delete("shared", "k3").unwrap();
    }
    sync(&mut c, &store);
    sync(&mut a, &store);
    sync(&mut b, &store);
    sync(&mut c, &store);
    sync(&mut a, &store);
    assert_eq!(state(&a), state(&b));
    assert_eq!(state(&b), state(&c));
    assert_eq!(a.status().unwrap().ops, 3 * 41);
}

#[test]
fn join_refuses_a_wrong_passphrase_and_writes_nothing_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    sync(&mut a, &store);
    let before = store.list("").unwrap();
    let wrong = JoinOptions {
        device_name: "b".into(),
        unlock: Unlock { passphrase: Passphrase::new("not it"), kdf_cost: KdfCost::WorkFactor(4) },
        with: JoinWith::Passphrase,
    };
    let err = Vault::join(&Home::new(dir.path().join("b")), wrong, "test:store", &store).unwrap_err();
    assert!(matches!(err, Error::WrongStorePassphrase { .. }), "{err:?}");
    assert!(!dir.path().join("b").exists(), "no local state");
    assert_eq!(store.list("").unwrap(), before, "no remote state");

    let empty = MemoryStore::default();
    let err = Vault::join(
        &Home::new(dir.path().join("c")),
        JoinOptions { device_name: "c".into(), unlock: unlock(), with: JoinWith::Passphrase },
        "x",
        &empty,
    );
    assert!(matches!(err, Err(Error::NoVaultInStore { .. })));
    let err = Vault::create_for_store(&Home::new(dir.path().join("d")), options("d"), "x", &store).unwrap_err();
    assert!(matches!(err, Error::StoreHasVault { .. }), "{err:?}");
    assert!(!dir.path().join("d").exists());
}

#[test]
fn a_device_of_another_vault_refuses_the_store_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    sync(&mut a, &store);
    let other_store = MemoryStore::default();
    let mut stranger = first_device(dir.path(), "stranger", &other_store);
    stranger.put("notes", "x", &json!(1)).unwrap();
    let before = store.list("").unwrap();
    let err = stranger.push(handle(&store)).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    assert_eq!(store.list("").unwrap(), before);
}

#[test]
fn a_no_op_pull_costs_one_listing_and_one_read_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut devices = vec![first_device(dir.path(), "d0", &store)];
    sync(&mut devices[0], &store);
    for i in 1..10 {
        devices.push(join(dir.path(), &format!("d{i}"), &store));
    }
    for (i, device) in devices.iter_mut().enumerate() {
        for round in 0..5 {
            device.put("c", &format!("{i}-{round}"), &json!(round)).unwrap();
            device.push(handle(&store)).unwrap(); // one segment per round: history grows
        }
    }
    let counting = CountingStore::new(store.clone());
    let reader = &mut devices[0];
    reader.pull(handle(&counting)).unwrap();
    assert_eq!(reader.status().unwrap().ops, 50);
    counting.reset();
    let report = reader.pull(handle(&counting)).unwrap();
    assert_eq!(report.imported_ops, 0);
    let counts = counting.counts();
    assert_eq!(counts.lists, 1);
    assert_eq!(counts.reads, 9, "one conditional HEAD read per other device");
    assert!(counts.total() <= 1 + 10);
}

/// Kills a push or pull at every store call in turn, then lets it finish: the result is always
/// the same as an uninterrupted sync, with nothing duplicated.
#[test]
fn sync_killed_at_any_store_call_finishes_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let reference = {
        let store = MemoryStore::default();
        let mut a = first_device(dir.path(), "ref-a", &store);
        a.put("n", "1", &json!(1)).unwrap();
        let report = a.sync(handle(&store), Direction::Both).unwrap();
        assert!(report.push.unwrap().uploaded_objects > 0);
        store.list("").unwrap().len()
    };
    for crash_at in 0..12 {
        let store = MemoryStore::default();
        let home = dir.path().join(format!("a{crash_at}"));
        let mut a = Vault::create_for_store(&Home::new(&home), options("a"), "s", &store).unwrap().vault;
        for i in 0..25 {
            a.put("n", &i.to_string(), &json!(i)).unwrap();
        }
        let faulty = FaultyStore::new(store.clone(), FaultPlan::CrashAt(crash_at));
        let crashed = a.sync(handle(&faulty), Direction::Both);
        let status = a.sync_status().unwrap();
        if crashed.is_err() {
            assert_eq!(status.stores[0].state, StoreState::Offline, "crash at {crash_at}");
            assert!(status.stores[0].next_retry_ms.is_some());
        }
        drop(a);
        let mut a = Vault::open(&Home::new(&home), &unlock()).unwrap();
        sync(&mut a, &store);
        assert_eq!(store.list("").unwrap().len(), reference, "crash at {crash_at}: objects {:?}", store.list(""));
        assert_eq!(a.sync_status().unwrap().unpublished_ops, 0);

        // A second device pulls everything exactly once.
        let mut b = join(dir.path(), &format!("b{crash_at}"), &store);
        let faulty = FaultyStore::new(store.clone(), FaultPlan::CrashAt(crash_at));
        let _ = b.sync(handle(&faulty), Direction::Both);
        sync(&mut b, &store);
        assert_eq!(b.status().unwrap().ops, 25, "crash at {crash_at}");
        assert_eq!(b.list("n", &ListOptions::default()).unwrap().len(), 25);
        assert_eq!(state(&b).0, state(&a).0);
    }
}

#[test]
fn hostile_or_damaged_objects_are_skipped_with_reasons_and_the_rest_imports() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
    for (vault, name) in [(&mut a, "a"), (&mut b, "b"), (&mut c, "c")] {
        vault.put("notes", name, &json!(name)).unwrap();
        vault.push(handle(&store)).unwrap();
    }
    let other_store = MemoryStore::default();
    let mut stranger = first_device(dir.path(), "stranger", &other_store);
    stranger.put("notes", "x", &json!(1)).unwrap();
    stranger.push(handle(&other_store)).unwrap();

    let segment = |vault: &Vault| paths::segment(vault.device_id(), 1);
    let a_segment = store.get(&segment(&a)).unwrap().unwrap();
    // b's segment is bit-flipped; c's is replaced by a copy of a's (re-labelled).
    let mut flipped = store.get(&segment(&b)).unwrap().unwrap();
    flipped[150] ^= 1;
    store.tamper(&segment(&b), flipped);
    store.tamper(&segment(&c), a_segment.clone());

    let mut reader = join(dir.path(), "reader", &store);
    let report = reader.pull(handle(&store)).unwrap();
    assert_eq!(report.imported_ops, 1, "a's op imports despite the others: {report:?}");
    let reasons: Vec<String> =
        reader.sync_status().unwrap().skipped.into_iter().map(|s| format!("{}: {}", s.path, s.reason)).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains(&b.device_id().to_string()) && r.contains("bad signature")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains(&c.device_id().to_string()) && r.contains("stored under device")),
        "{reasons:?}"
    );

    // Truncated, unsigned, and replayed from another vault.
    let mut truncated = a_segment.clone();
    truncated.truncate(a_segment.len() / 2);
    let mut unsigned = store.get(&segment(&c)).unwrap().unwrap();
    let len = unsigned.len();
    unsigned[len - 64..].fill(0);
    let foreign = other_store.get(&segment(&stranger)).unwrap().unwrap();
    for (bytes, expect) in [(truncated, "truncated"), (unsigned, "bad signature"), (foreign, "another vault")] {
        let mut victim = join(dir.path(), &format!("v{}", expect.len() + bytes.len()), &store);
        store.tamper(&segment(&a), bytes);
        let report = victim.pull(handle(&store)).unwrap();
        assert_eq!(report.imported_ops, 0);
        let skipped = victim.sync_status().unwrap().skipped;
        assert!(skipped.iter().any(|s| s.path == segment(&a) && s.reason.contains(expect)), "{expect}: {skipped:?}");
    }
    // Restored objects import on the next pull, and their skip records go away.
    store.tamper(&segment(&a), a_segment);
    let mut healed = join(dir.path(), "healed", &store);
    healed.pull(handle(&store)).unwrap();
    assert_eq!(healed.get("notes", "a").unwrap().unwrap().value.as_str(), "\"a\"");
}

#[test]
fn a_missing_segment_is_a_reported_gap_not_a_silent_hole() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    for i in 0..3 {
        a.put("n", &i.to_string(), &json!(i)).unwrap();
        a.push(handle(&store)).unwrap();
    }
    let withheld_path = paths::segment(a.device_id(), 2);
    let withheld = store.get(&withheld_path).unwrap().unwrap();
    store.delete(&withheld_path).unwrap();
    let mut b = join(dir.path(), "b", &store);
    let report = b.pull(handle(&store)).unwrap();
    assert_eq!(report.imported_ops, 1, "segment 1 only; 3 must wait for 2");
    assert!(report.skipped.iter().any(|(path, reason)| path == &withheld_path && reason.contains("gap in chain")));
    store.put(&withheld_path, &withheld).unwrap();
    b.pull(handle(&store)).unwrap();
    assert_eq!(b.status().unwrap().ops, 3);
    assert!(b.sync_status().unwrap().skipped.is_empty());
}

#[test]
fn watchers_see_imported_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let mut a = first_device(dir.path(), "a", &store);
    sync(&mut a, &store);
    let mut b = join(dir.path(), "b", &store);
    let changes = b.watch();
    a.put("notes", "n1", &json!(1)).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    let seen: Vec<Change> = changes.try_iter().collect();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].collection.as_str(), seen[0].key.as_str()), ("notes", "n1"));
}

mod delivery_order {
    use super::*;
    use crate::sync::import::import_ops;
    use ferry_format::{Collection, DeviceId, Hlc, JsonValue, Op, OpId, OpKind, RecordKey};
    use proptest::prelude::*;

    /// Ops from 3 devices on 4 records; each names a random subset of earlier ops of its record.
    fn op_set() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            (0u8..3, 0u8..4, 0u64..1_000, any::<bool>(), proptest::collection::vec(any::<prop::sample::Index>(), 0..3)),
            1..40,
        )
        .prop_map(|specs| {
            let mut ops: Vec<Op> = Vec::new();
            let mut counters = [0u64; 3];
            for (device, record, hlc, delete, picks) in specs {
                counters[device as usize] += 1;
                let key = RecordKey::new(&format!("k{record}")).unwrap();
                let earlier: Vec<OpId> = ops.iter().filter(|op| op.key == key).map(|op| op.id).collect();
                let mut parents: Vec<OpId> = if earlier.is_empty() {
                    vec![]
                } else {
                    picks.iter().map(|p| earlier[p.index(earlier.len())]).collect()
                };
                parents.sort_unstable();
                parents.dedup();
                let counter = counters[device as usize];
                ops.push(Op {
                    id: OpId { device: DeviceId::from_bytes([device + 1; 16]), counter },
                    hlc: Hlc::from_u64(hlc << 16 | counter),
                    collection: Collection::new("c").unwrap(),
                    key,
                    kind: if delete && !earlier.is_empty() {
                        OpKind::Delete
                    } else {
                        // Objects whose fields vary, so the `fields` policy has work to do.
                        OpKind::Put(
                            JsonValue::parse(&format!(r#"{{"f{}":{counter},"f{}":{device}}}"#, hlc % 3, (hlc / 3) % 3))
                                .unwrap(),
                        )
                    },
                    parents,
                });
            }
            ops
        })
    }

    /// The ops delivered as random segments in random order, some more than once.
    fn delivery(ops: Vec<Op>) -> impl Strategy<Value = Vec<Vec<Op>>> {
        let len = ops.len();
        (
            Just(ops),
            proptest::collection::vec(any::<prop::sample::Index>(), len),
            proptest::collection::vec(1usize..6, 1..20),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        )
            .prop_map(|(ops, order, sizes, repeats)| {
                let mut shuffled = ops.clone();
                for (i, pick) in order.iter().enumerate() {
                    let j = pick.index(shuffled.len());
                    shuffled.swap(i, j);
                }
                let mut segments = Vec::new();
                let mut rest = shuffled.as_slice();
                let mut size = sizes.iter().cycle();
                while !rest.is_empty() {
                    let n = (*size.next().unwrap()).min(rest.len());
                    segments.push(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                for pick in repeats {
                    let again = segments[pick.index(segments.len())].clone();
                    segments.push(again);
                }
                segments
            })
    }

    /// Live records (key, value, heads, conflict flag), every derived row as text, and the op
    /// count.
    type ReplicaState = (Vec<(String, String, usize, bool)>, Vec<Vec<u8>>, u64);

    fn replica_state(segments: &[Vec<Op>], dir: &Path, name: &str, policy: &Policy) -> ReplicaState {
        let home = Home::new(dir.join(name));
        let mut vault = Vault::create(&home, options(name)).unwrap().vault;
        let settings = Collection::any(crate::policy::SETTINGS_COLLECTION).unwrap();
        let key = RecordKey::new("policy/c").unwrap();
        let value = OpKind::Put(JsonValue::from_value(&serde_json::to_value(policy).unwrap()).unwrap());
        vault.write(|w| w.write_any(settings, key, value)).unwrap();
        for segment in segments {
            let tx = vault.conn.transaction().unwrap();
            import_ops(&tx, segment).unwrap();
            tx.commit().unwrap();
        }
        let records: Vec<(String, String, usize, bool)> = vault
            .list("c", &ListOptions::default())
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.key, r.value.as_str().to_owned(), r.heads, r.conflict))
            .collect();
        let mut derived: Vec<Vec<u8>> = vault
            .conn
            .prepare("SELECT key || ':' || hex(winner_device) || ':' || winner_counter || ':' || deleted || ':' || hex(heads) || ':' || coalesce(merged, '') FROM records WHERE collection = 'c'")
            .unwrap()
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap().into_bytes())
            .collect();
        derived.sort();
        let mut records = records;
        records.sort();
        (records, derived, vault.status().unwrap().ops)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Replicas that receive the same op set as different segments, in different orders,
        /// with duplicates, end in the same state under every policy: values, winners, heads,
        /// merged values, conflict flags, op counts.
        #[test]
        fn replicas_agree_whatever_the_delivery(
            (first, second) in op_set().prop_flat_map(|ops| (delivery(ops.clone()), delivery(ops))),
            policy in prop_oneof![
                Just(Policy::Lww),
                Just(Policy::Fields),
                Just(Policy::Manual),
                Just(Policy::Priority { order: vec![DeviceId::from_bytes([3; 16]).to_string(), DeviceId::from_bytes([1; 16]).to_string()] }),
            ],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let a = replica_state(&first, dir.path(), "a", &policy);
            let b = replica_state(&second, dir.path(), "b", &policy);
            prop_assert_eq!(&a, &b);
            let unique: std::collections::HashSet<OpId> = first.iter().flatten().map(|op| op.id).collect();
            prop_assert_eq!(a.2, unique.len() as u64 + 1, "no op is lost or duplicated (+1: the policy)");
            // Repair (a full fold under the policy) agrees with the incremental state.
            let mut vault = Vault::open(&Home::new(dir.path().join("a")), &unlock()).unwrap();
            prop_assert_eq!(vault.repair().unwrap().corrected, 0);
        }
    }
}

mod blobs {
    use super::*;

    fn content(len: usize, seed: u8) -> Vec<u8> {
        let mut state = u64::from(seed) + 1;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (state >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn blobs_are_chunked_deduplicated_and_travel_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::default();
        let mut a = first_device(dir.path(), "a", &store);
        let data = content(CHUNK_SIZE * 2 + 12_345, 1);
        let info = a.put_blob(data.as_slice()).unwrap();
        assert_eq!((info.size, info.chunks, info.new_chunks), (data.len() as u64, 3, 3));
        let again = a.put_blob(data.as_slice()).unwrap();
        assert_eq!((again.id.as_str(), again.new_chunks), (info.id.as_str(), 0), "same content, same id, nothing new");
        // A blob sharing its first two chunks stores only its own tail.
        let mut variant = data[..CHUNK_SIZE * 2].to_vec();
        variant.extend_from_slice(b"different tail");
        assert_eq!(a.put_blob(variant.as_slice()).unwrap().new_chunks, 1);
        let empty = a.put_blob(&b""[..]).unwrap();
        assert_eq!((empty.size, empty.chunks), (0, 0));

        let report = a.push(handle(&store)).unwrap();
        assert!(report.uploaded_objects >= 4 + 3, "{report:?}");
        for object in store.list("blobs/").unwrap() {
            let bytes = store.get(&object).unwrap().unwrap();
            assert!(!bytes.windows(64).any(|w| data.windows(64).next() == Some(w)), "plaintext in {object}");
        }

        let b = join(dir.path(), "b", &store);
        let mut b = b;
        sync(&mut b, &store);
        let id: BlobId = info.id.parse().unwrap();
        let mut out = Vec::new();
        assert_eq!(b.get_blob(&id, &[handle(&store)], &mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);
        // Now cached locally: no store needed.
        let mut again = Vec::new();
        b.get_blob(&id, &[], &mut again).unwrap();
        assert_eq!(again, data);
        let mut nothing = Vec::new();
        assert_eq!(b.get_blob(&empty.id.parse().unwrap(), &[handle(&store)], &mut nothing).unwrap(), 0);
    }

    #[test]
    fn damaged_or_unknown_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::default();
        let mut a = first_device(dir.path(), "a", &store);
        let info = a.put_blob(content(1000, 2).as_slice()).unwrap();
        a.push(handle(&store)).unwrap();
        let mut b = join(dir.path(), "b", &store);
        sync(&mut b, &store);
        let chunk = store.list("blobs/").unwrap().into_iter().find(|p| !p.ends_with(&info.id)).unwrap();
        let mut bytes = store.get(&chunk).unwrap().unwrap();
        bytes[120] ^= 1;
        store.tamper(&chunk, bytes);
        let err = b.get_blob(&info.id.parse().unwrap(), &[handle(&store)], Vec::new()).unwrap_err();
        assert!(matches!(err, Error::BadStoreObject { .. }), "{err:?}");
        let unknown: BlobId = "ab".repeat(32).parse().unwrap();
        let err = b.get_blob(&unknown, &[handle(&store)], Vec::new()).unwrap_err();
        assert!(matches!(err, Error::BlobNotFound(_)), "{err:?}");
        assert!(matches!("xyz".parse::<BlobId>(), Err(Error::InvalidBlobId(_))));
    }
}

/// A syncs only with store 1, C only with store 2, B with both: B carries each store's data to
/// the other, and all three converge. A store added later receives the whole history.
#[test]
fn data_crosses_stores_through_a_device_that_syncs_with_both() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (MemoryStore::default(), MemoryStore::default());
    let (mut a, joined) = devices(dir.path(), &one, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    a.put("notes", "from-a", &json!("a")).unwrap();
    sync(&mut a, &one);
    sync(&mut b, &one);

    // Store 2 is new: B puts the vault there (with the passphrase) and carries A's data along.
    assert!(matches!(b.attach_store("two", &two, None), Err(Error::WrongPassphrase { .. })));
    let two_id = b.attach_store("two", &two, Some(&unlock())).unwrap();
    assert!(matches!(b.attach_store("two", &two, Some(&unlock())), Err(Error::StoreAlreadyAdded(_))));
    let report = b.sync(StoreHandle { id: two_id, store: &two }, Direction::Both).unwrap();
    assert!(report.push.unwrap().relayed_objects >= 3, "A's record, segment and HEAD");

    let mut c = Vault::join(
        &Home::new(dir.path().join("c")),
        JoinOptions { device_name: "c".into(), unlock: unlock(), with: JoinWith::Passphrase },
        "two",
        &two,
    )
    .unwrap();
    sync(&mut c, &two);
    assert_eq!(c.get("notes", "from-a").unwrap().unwrap().value.as_str(), "\"a\"");

    c.put("notes", "from-c", &json!("c")).unwrap();
    a.put("notes", "from-a-2", &json!("a2")).unwrap();
    sync(&mut c, &two);
    sync(&mut a, &one);
    for _ in 0..2 {
        b.sync(StoreHandle { id: crate::StoreId(1), store: &one }, Direction::Both).unwrap();
        b.sync(StoreHandle { id: two_id, store: &two }, Direction::Both).unwrap();
    }
    sync(&mut a, &one);
    sync(&mut c, &two);
    assert_eq!(state(&a), state(&b));
    assert_eq!(state(&b), state(&c));
    assert_eq!(state(&a).0.len(), 3);
    for vault in [&a, &b, &c] {
        assert!(vault.sync_status().unwrap().skipped.is_empty(), "{:?}", vault.sync_status().unwrap().skipped);
    }
    // A store of another vault is refused.
    let foreign = MemoryStore::default();
    let _stranger = first_device(dir.path(), "stranger", &foreign);
    let mut stranger = Vault::open(&Home::new(dir.path().join("stranger")), &unlock()).unwrap();
    stranger.sync(handle(&foreign), Direction::Push).unwrap();
    assert!(matches!(a.attach_store("foreign", &foreign, Some(&unlock())), Err(Error::KeyMismatch { .. })));
    b.detach_store(two_id).unwrap();
    assert_eq!(b.stores().unwrap().len(), 1);
}

mod one_value_everywhere {
    //! A value written on one device shows the writer's bytes on every device, through every
    //! way out: get, list, history, conflict heads, JSON output, an export restored elsewhere.
    use super::*;
    use proptest::prelude::*;

    /// JSON text as apps write it: numbers of every shape (long integers, extreme doubles,
    /// exponents, `-0`, trailing zeros), strings with escapes, nested objects in any order.
    fn json_text() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f}")),
            "-?[1-9][0-9]{19,30}",
            "-?[0-9]\\.[0-9]{1,20}[eE][+-]?[0-9]{1,3}",
            Just("-0".to_owned()),
            Just("1.50".to_owned()),
        ];
        let string = "[a-zé\"\\\\\n\t\u{1}\u{2028}]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap());
        let leaf = prop_oneof![number, string, Just("null".to_owned()), Just("true".to_owned())];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                    format!("{{ {} }}", members.join(", "))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn a_value_shows_the_same_bytes_on_every_device_through_every_way_out(texts in prop::collection::vec(json_text(), 1..4)) {
            let dir = tempfile::tempdir().unwrap();
            let store = MemoryStore::default();
            let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
            let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
            // Values land in numbers that overflow i64 and doubles the parser could misread.
            let parsed: Vec<String> = texts.iter().filter(|t| ferry_format::JsonValue::parse(t).is_ok()).cloned().collect();
            for (i, text) in parsed.iter().enumerate() {
                a.put_json("values", &format!("k{i}"), text).unwrap();
            }
            for vault in [&mut a, &mut b, &mut c] {
                sync(vault, &store);
            }
            // An export restored on a fourth device (with the passphrase) holds the same bytes.
            let exported = dir.path().join("export.ferry");
            a.export(&exported, &ExportTo::Passphrase(unlock())).unwrap();
            let secret = BackupSecret::Passphrase(unlock().passphrase);
            let (restored, _) = Vault::restore(&Home::new(dir.path().join("d")), &options("d"), &exported, &secret).unwrap();
            for (i, _) in parsed.iter().enumerate() {
                let key = format!("k{i}");
                let written = a.get("values", &key).unwrap().unwrap().value;
                for vault in [&a, &b, &c, &restored] {
                    let record = vault.get("values", &key).unwrap().unwrap();
                    prop_assert_eq!(record.value.as_str(), written.as_str());
                    let listed = vault.list("values", &ListOptions::default()).unwrap();
                    let row = listed.iter().find(|r| r.key == key).unwrap();
                    prop_assert_eq!(row.value.as_str(), written.as_str());
                    // JSON output embeds the bytes verbatim.
                    let json = serde_json::to_string(&record.value).unwrap();
                    prop_assert_eq!(json.as_str(), written.as_str());
                    let pretty = serde_json::to_string_pretty(&vec![&record.value]).unwrap();
                    prop_assert!(pretty.contains(written.as_str()));
                    let history = vault.history(&HistoryFilter { record: Some(("values".into(), key.clone())), limit: None }).unwrap();
                    let put = history.iter().find_map(|op| match &op.kind { ferry_format::OpKind::Put(v) => Some(v.as_str().to_owned()), _ => None });
                    prop_assert_eq!(put.as_deref(), Some(written.as_str()));
                    let heads = vault.heads("values", &key).unwrap();
                    prop_assert_eq!(heads[0].value.as_ref().map(|v| v.as_str()), Some(written.as_str()));
                }
            }
        }
    }
}

/// Two handles of one home pulling the same device's new segments at once (a daemon following
/// two peers that both serve them): one fetches and imports them, the other leaves them to it,
/// and neither store is read for them twice.
#[test]
fn concurrent_pulls_of_one_device_fetch_its_segments_once() {
    use ferry_store::{CountingStore, Created, Fetched, StoreError};
    use std::time::Duration;

    /// A store whose segment reads take a while, so the two pulls overlap.
    #[derive(Clone, Debug)]
    struct Slow(MemoryStore);
    impl Store for Slow {
        fn location(&self) -> String {
            "slow".into()
        }
        fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
            if path.ends_with(".seg") {
                std::thread::sleep(Duration::from_millis(100));
            }
            self.0.get(path)
        }
        fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
            self.0.get_if_changed(path, etag)
        }
        fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
            self.0.put_if_absent(path, bytes)
        }
        fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.0.put(path, bytes)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.0.list(prefix)
        }
        fn delete(&self, path: &str) -> Result<(), StoreError> {
            self.0.delete(path)
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, mut b) = two_synced_devices(dir.path(), &store);
    for batch in 0..3 {
        a.put("notes", &format!("n{batch}"), &json!(batch)).unwrap();
        sync(&mut a, &store); // one segment each
    }
    let first = CountingStore::new(Slow(store.clone()));
    let second = CountingStore::new(Slow(store.clone()));
    let mut b2 = b.reopen().unwrap();
    let (first_report, second_report) = std::thread::scope(|scope| {
        let one = scope.spawn(|| b.pull(handle(&first)).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        let two = scope.spawn(|| b2.pull(handle(&second)).unwrap());
        (one.join().unwrap(), two.join().unwrap())
    });
    assert_eq!(first_report.imported_ops, 3);
    assert_eq!((second_report.imported_ops, second_report.imported_segments), (0, 0));
    assert_eq!(second_report.deferred, vec![a.device_id().to_string()]);
    // Pulling again later reads the HEAD and finds the device up to date: no segment is read.
    let before = second.counts().reads;
    let again = b2.pull(handle(&second)).unwrap();
    assert!(again.deferred.is_empty() && again.imported_segments == 0);
    assert_eq!(second.counts().reads - before, 1, "one HEAD read, no segment");
}

//! Tests of the vault through its public API (and, for repair, by damaging its derived table).

use crate::*;
use serde_json::json;
use std::path::Path;

fn unlock(passphrase: &str) -> Unlock {
    Unlock { passphrase: Passphrase::new(passphrase), kdf_cost: KdfCost::WorkFactor(4) }
}

fn new_vault(dir: &Path) -> (Home, Vault) {
    let home = Home::new(dir.join("device"));
    let created = Vault::create(&home, CreateOptions { device_name: "laptop".into(), unlock: unlock("pw") }).unwrap();
    (home, created.vault)
}

/// Every live record as `(key, value)`, plus the op count: a full picture of the state.
fn snapshot(vault: &Vault, collection: &str) -> (Vec<(String, String, usize)>, u64) {
    let mut records: Vec<_> = vault
        .list(collection, &ListOptions::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value.as_str().to_owned(), r.heads))
        .collect();
    records.sort();
    (records, vault.status().unwrap().ops)
}

#[test]
fn put_get_delete_list() {
    let dir = tempfile::tempdir().unwrap();
    let (_home, mut vault) = new_vault(dir.path());
    vault.put("notes", "n1", &json!({"title": "hi", "body": "..."})).unwrap();
    vault.put("notes", "n2", &json!("second")).unwrap();
    vault.put("notes", "n1", &json!({"title": "edited"})).unwrap();

    let n1 = vault.get("notes", "n1").unwrap().unwrap();
    assert_eq!(n1.value.as_str(), r#"{"title":"edited"}"#);
    assert_eq!(n1.heads, 1);
    let keys: Vec<String> = vault.list("notes", &ListOptions::default()).unwrap().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["n1", "n2"], "newest first");
    assert_eq!(vault.list("notes", &ListOptions { limit: Some(1) }).unwrap().len(), 1);

    vault.delete("notes", "n1").unwrap();
    assert_eq!(vault.get("notes", "n1").unwrap(), None);
    assert!(matches!(vault.delete("notes", "n1"), Err(Error::NoSuchRecord { .. })));
    assert!(matches!(vault.delete("notes", "never"), Err(Error::NoSuchRecord { .. })));
    assert_eq!(vault.collections().unwrap(), vec![CollectionInfo { name: "notes".into(), records: 1, deleted: 1 }]);

    // A put revives a deleted record; its parent is the delete.
    let revived = vault.put("notes", "n1", &json!(1)).unwrap();
    let history = vault.history(&HistoryFilter { record: Some(("notes".into(), "n1".into())), limit: None }).unwrap();
    assert_eq!(history.iter().map(|op| op.kind.name()).collect::<Vec<_>>(), ["put", "delete", "put", "put"]);
    assert_eq!(history[0].id, revived);
    assert_eq!(history[0].parents, vec![history[1].id]);
    assert!(history.last().unwrap().parents.is_empty(), "a fresh record has no parents");
    assert!(history.windows(2).all(|w| w[0].hlc > w[1].hlc));
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_home, mut vault) = new_vault(dir.path());
    assert!(matches!(vault.put_json("notes", "n1", "{oops"), Err(Error::Value(_))));
    assert!(matches!(vault.put_json("_ferry", "n1", "1"), Err(Error::Name(ferry_format::NameError::Reserved(_)))));
    assert!(matches!(vault.put_json("notes", "", "1"), Err(Error::Name(_))));
    assert!(matches!(vault.get("_ferry", "x"), Err(Error::Name(_))));
    // A failing batch writes none of its ops.
    let result = vault.write(|w| {
        w.put_json("notes", "ok", "1")?;
        w.put_json("notes", "bad", "{")
    });
    assert!(result.is_err());
    assert_eq!(vault.status().unwrap().ops, 0);
    assert_eq!(vault.get("notes", "ok").unwrap(), None);
}

#[test]
fn reopens_with_the_passphrase_and_refuses_a_wrong_one_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (home, mut vault) = new_vault(dir.path());
    vault.put("notes", "n1", &json!("kept")).unwrap();
    drop(vault);

    let files = |home: &Home| {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(home.root())
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        all.sort();
        all
    };
    let before = files(&home);
    let err = Vault::open(&home, &unlock("wrong")).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Locked);
    assert_eq!(files(&home), before, "a failed unlock must not modify anything");

    let vault = Vault::open(&home, &unlock("pw")).unwrap();
    assert_eq!(vault.get("notes", "n1").unwrap().unwrap().value.as_str(), "\"kept\"");
}

#[test]
fn the_database_file_alone_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let (home, mut vault) = new_vault(dir.path());
    vault.put("notes", "n1", &json!({"secret": "plaintext-canary-4711"})).unwrap();
    drop(vault); // checkpoints the WAL into the database file

    let bytes = std::fs::read(home.database()).unwrap();
    assert!(!bytes.windows(21).any(|w| w == b"plaintext-canary-4711"));
    assert!(!bytes.starts_with(b"SQLite format 3"));

    // Copied elsewhere, without the key file and passphrase, SQLite cannot read it.
    let copy = dir.path().join("copy.db");
    std::fs::copy(home.database(), &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    assert!(conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)).is_err());
}

#[test]
fn create_refuses_an_existing_vault() {
    let dir = tempfile::tempdir().unwrap();
    let (home, vault) = new_vault(dir.path());
    let device = vault.device_id();
    drop(vault);
    let again = Vault::create(&home, CreateOptions { device_name: "other".into(), unlock: unlock("pw2") });
    assert!(matches!(again, Err(Error::AlreadyInitialized { .. })));
    assert_eq!(Vault::open(&home, &unlock("pw")).unwrap().device_id(), device);
}

#[test]
fn open_without_a_vault_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = Vault::open(&Home::new(dir.path().join("nothing")), &unlock("pw")).unwrap_err();
    assert!(matches!(err, Error::NoVault { .. }));
    assert_eq!(err.hint(), Some(crate::Hint::CreateOrPointAtVault), "it says what to do, as data");
}

#[test]
fn status_describes_the_device_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (_home, mut vault) = new_vault(dir.path());
    vault
        .write(|w| {
            w.put_json("notes", "a", "1")?;
            w.put_json("todos", "b", "2")?;
            w.delete("notes", "a")
        })
        .unwrap();
    let status = vault.status().unwrap();
    assert_eq!(status.device_name, "laptop");
    assert_eq!(status.device_id, vault.device_id().to_string());
    assert_eq!((status.records, status.deleted_records, status.collections, status.ops), (1, 1, 2, 3));
    assert_eq!(status.unpublished_ops, 3);
    assert_eq!(status.vault_key_fingerprint.len(), 24);
    let devices = vault.devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].this_device);
    assert_eq!(devices[0].fingerprint, status.device_fingerprint);
}

#[test]
fn two_handles_on_one_home_never_reuse_op_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (home, mut first) = new_vault(dir.path());
    let mut second = Vault::open(&home, &unlock("pw")).unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(first.put("notes", &format!("a{i}"), &json!(i)).unwrap());
        ids.push(second.put("notes", &format!("b{i}"), &json!(i)).unwrap());
    }
    let counters: Vec<u64> = ids.iter().map(|id| id.counter).collect();
    assert_eq!(counters, (1..=20).collect::<Vec<_>>());
}

#[test]
fn repair_rebuilds_a_damaged_derived_table_to_the_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_home, mut vault) = new_vault(dir.path());
    vault
        .write(|w| {
            for i in 0..50 {
                w.put("notes", &format!("n{i}"), &json!({"i": i}))?;
            }
            for i in 0..10 {
                w.delete("notes", &format!("n{i}"))?;
            }
            w.put("notes", "n3", &json!("revived"))?;
            Ok(())
        })
        .unwrap();
    let before = snapshot(&vault, "notes");
    let report = vault.repair().unwrap();
    assert_eq!((report.ops, report.records, report.corrected), (61, 50, 0));

    // Damage: a lost row, a wrong winner, a live record marked deleted, a phantom record.
    vault
        .conn
        .execute_batch(
            "DELETE FROM records WHERE key = 'n20';
             UPDATE records SET winner_counter = 1 WHERE key = 'n30';
             UPDATE records SET deleted = 1 WHERE key = 'n40';
             INSERT INTO records SELECT collection, 'ghost', winner_device, winner_counter, winner_hlc, deleted, heads, merged FROM records WHERE key = 'n41';",
        )
        .unwrap();
    assert_ne!(snapshot(&vault, "notes"), before);
    let report = vault.repair().unwrap();
    assert_eq!(report.records, 50);
    assert_eq!(report.corrected, 6, "2 altered rows count on both sides, the lost and the phantom row once");
    assert_eq!(snapshot(&vault, "notes"), before);
}

#[test]
fn watchers_see_committed_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_home, mut vault) = new_vault(dir.path());
    let changes = vault.watch();
    let id = vault.put("notes", "n1", &json!(1)).unwrap();
    let _ = vault.write(|w| {
        w.put_json("notes", "n2", "2")?;
        w.put_json("notes", "n3", "{")
    });
    vault.delete("notes", "n1").unwrap();
    let seen: Vec<Change> = changes.try_iter().collect();
    assert_eq!(seen.len(), 2, "the rolled-back batch is not announced: {seen:?}");
    assert_eq!(seen[0], Change { collection: "notes".into(), key: "n1".into(), op: id, deleted: false });
    assert!(seen[1].deleted);
}

/// Every test vector of docs/FORMAT.md is recomputed here; the document must state exactly these.
#[test]
fn format_document_vectors_hold() {
    use ferry_format::*;
    let format = include_str!("../../../docs/FORMAT.md");
    let check = |name: &str, computed: String| {
        let line = format!("{name}: `{computed}`");
        assert!(format.contains(&line), "docs/FORMAT.md must contain the line\n{line}");
    };
    let entropy: [u8; 32] = std::array::from_fn(|i| i as u8);
    let phrase = RecoveryPhrase::from_entropy(entropy);
    check("recovery phrase", phrase.to_words());
    check("recovery secret", hex::encode(phrase.recovery_secret().expose()));
    check("first vault key", hex::encode(phrase.first_vault_key().expose()));
    check("recovery recipient", crate::identity::recovery_identity(&phrase).unwrap().to_public().to_string());
    check("vault key fingerprint", MasterKey::new([0x42; 32]).fingerprint().to_string());
    check("device key fingerprint", Fingerprint::of_device_key(&[0x07; 32]).to_string());
    let id = OpId { device: DeviceId::from_bytes(std::array::from_fn(|i| 0xa0 + i as u8)), counter: 258 };
    check("op id text", id.to_string());
    check("op id bytes", hex::encode(id.to_bytes()));
    let hlc = Hlc::new(1_763_776_800_123, 5).unwrap();
    check("hlc", format!("{:#018x}", hlc.to_u64()));
    let canonical = [
        r#"{ "title": "hi", "body": "…", "n": 1.50, "tags": ["b","a"] }"#,
        "[123456789012345678901234, 1.2345678901234567e+23, 18446744073709551615, -9223372036854775808, \
         18446744073709551616, -0, 1e21, 1e20, 0.0000001, 5e-324]",
        r#"{"b":"\u00e9\n\u0001\/","a":{"z":1,"a":2},"a":null}"#,
    ];
    for (i, input) in canonical.iter().enumerate() {
        check(&format!("canonical {}", i + 1), JsonValue::parse(input).unwrap().as_str().to_owned());
    }
}

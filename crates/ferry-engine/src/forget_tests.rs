//! Search across devices, and `forget`: gone everywhere, never resurrected, erased.

use crate::sync_tests::{devices, sync};
use crate::*;
use ferry_format::Hlc;
use ferry_store::{MemoryStore, Store};
use serde_json::json;

fn keys(found: &[Found]) -> Vec<String> {
    found.iter().map(|f| format!("{}/{}", f.collection, f.key)).collect()
}

#[test]
fn search_finds_what_another_device_wrote_once_synced() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    b.put("notes", "n1", &json!({"title": "Café meeting", "body": "with Alice about the budget", "n": 7})).unwrap();
    b.put("notes", "n2", &json!({"title": "Groceries", "body": "milk, bread"})).unwrap();
    b.put("todo", "t1", &json!(["call alice"])).unwrap();
    assert!(a.find("alice", None, 10).unwrap().is_empty());
    sync(&mut b, &store);
    sync(&mut a, &store);
    let found = a.find("alice", None, 10).unwrap();
    assert_eq!(keys(&found).len(), 2, "{found:?}");
    assert!(keys(&found).contains(&"notes/n1".to_owned()) && keys(&found).contains(&"todo/t1".to_owned()));
    let n1 = found.iter().find(|f| f.key == "n1").unwrap();
    assert!(n1.snippet.contains("[Alice]"), "{}", n1.snippet);
    assert_eq!(
        keys(&a.find("cafe budget", Some("notes"), 10).unwrap()),
        ["notes/n1"],
        "diacritics folded, words ANDed"
    );
    assert_eq!(keys(&a.find("gro*", None, 10).unwrap()), ["notes/n2"], "prefix search");
    assert!(a.find("7", None, 10).unwrap().is_empty(), "numbers are not text");
    assert!(a.find("\"OR\" NEAR(", None, 10).unwrap().is_empty(), "FTS syntax in words is harmless");

    // An edit replaces the indexed text; a delete removes it.
    b.put("notes", "n2", &json!({"title": "Hardware store", "body": "screws"})).unwrap();
    b.delete("todo", "t1").unwrap();
    sync(&mut b, &store);
    sync(&mut a, &store);
    assert!(a.find("milk", None, 10).unwrap().is_empty());
    assert_eq!(keys(&a.find("screws", None, 10).unwrap()), ["notes/n2"]);
    assert_eq!(keys(&a.find("alice", None, 10).unwrap()), ["notes/n1"]);

    // Only the fields set for a collection are searched.
    a.set_search_fields("notes", Some(&["title".to_owned()])).unwrap();
    assert!(a.find("alice", None, 10).unwrap().is_empty());
    assert_eq!(keys(&a.find("cafe", None, 10).unwrap()), ["notes/n1"]);
    a.set_search_fields("notes", None).unwrap();
    assert_eq!(keys(&a.find("alice", None, 10).unwrap()), ["notes/n1"]);
    // Repair rebuilds the index too.
    a.repair().unwrap();
    assert_eq!(keys(&a.find("screws", None, 10).unwrap()), ["notes/n2"]);
}

/// Every live ops' and derived text of a device's database, as exported in plaintext by
/// SQLCipher, plus its raw files: the forgotten words must be in none of them.
fn database_contains(vault: &Vault, dir: &std::path::Path, needle: &str) -> bool {
    let plain = dir.join(format!("export-{}.db", vault.device_id()));
    // The vault's connection may not create files: give ATTACH an empty one (an empty database).
    std::fs::write(&plain, b"").unwrap();
    vault.conn.execute_batch(&format!("ATTACH DATABASE '{}' AS plaintext KEY '';", plain.display())).unwrap();
    vault.conn.query_row("SELECT sqlcipher_export('plaintext')", [], |_| Ok(())).unwrap();
    vault.conn.execute_batch("DETACH DATABASE plaintext;").unwrap();
    let exported = std::fs::read(&plain).unwrap();
    assert!(exported.len() > 4096 && exported.starts_with(b"SQLite format 3"), "a real plaintext export");
    // Case-insensitive: the search index keeps words lowercased.
    let needle = needle.to_lowercase();
    let found = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    let mut files = vec![exported];
    for entry in std::fs::read_dir(vault.home.root()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push(std::fs::read(path).unwrap());
        }
    }
    files.iter().any(|bytes| found(bytes))
}

/// Decrypts every sealed object of the store (with `reader`'s keys) and looks for `needle`.
fn store_contains(reader: &Vault, store: &MemoryStore, needle: &str) -> bool {
    use ferry_format::seal::{self, Expected};
    let keys = crate::identity::VaultKeys::load(&reader.conn).unwrap();
    let registry = crate::sync::registry::Registry::load(&reader.conn).unwrap();
    let mut opened = 0;
    for path in store.list("").unwrap() {
        let bytes = store.get(&path).unwrap().unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return true;
        }
        let Ok(header) = seal::Header::parse(&bytes) else { continue };
        let expected = Expected { kind: header.kind, vault_id: keys.vault_id, device_id: None, object_id: None };
        if let Ok((_, plain)) = seal::open(&bytes, &expected, |d| registry.key(d), |e| keys.key(e)) {
            opened += 1;
            if plain.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return true;
            }
        }
    }
    assert!(opened > 5, "the objects were really opened ({opened})");
    false
}

#[test]
fn a_forgotten_record_stays_gone_everywhere_even_after_an_offline_device_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b", "c"]);
    let [mut b, mut c]: [Vault; 2] = joined.try_into().unwrap();
    a.put("notes", "secret", &json!({"text": "TOPSECRET-A"})).unwrap();
    a.put("notes", "keep", &json!({"text": "ordinary"})).unwrap();
    for vault in [&mut a, &mut b, &mut c] {
        sync(vault, &store);
    }
    b.put("notes", "secret", &json!({"text": "TOPSECRET-B"})).unwrap();
    for vault in [&mut b, &mut c, &mut a] {
        sync(vault, &store);
    }
    // Every device has the words in its search index, and the checks below can see them.
    for vault in [&mut a, &mut b, &mut c] {
        assert_eq!(vault.find("topsecret", None, 10).unwrap().len(), 1);
    }
    assert!(database_contains(&a, dir.path(), "TOPSECRET") && store_contains(&a, &store, "TOPSECRET"));
    // c goes offline and edits the record; meanwhile a forgets it.
    c.put("notes", "secret", &json!({"text": "TOPSECRET-C"})).unwrap();
    let forgotten = a.forget("notes", &ForgetTarget::Record("secret".into()), None).unwrap();
    assert_eq!((forgotten.ops, forgotten.records), (2, 1));
    assert!(a.get("notes", "secret").unwrap().is_none());
    assert!(a.find("topsecret", None, 10).unwrap().is_empty());
    for _ in 0..2 {
        for vault in [&mut a, &mut b, &mut c] {
            sync(vault, &store);
        }
    }
    sync(&mut a, &store);
    for vault in [&mut a, &mut b, &mut c] {
        assert!(vault.get("notes", "secret").unwrap().is_none(), "gone on {}", vault.device_id());
        assert!(vault.get("notes", "keep").unwrap().is_some());
        let history =
            vault.history(&HistoryFilter { record: Some(("notes".into(), "secret".into())), limit: None }).unwrap();
        assert!(
            history.len() == 1 && matches!(history[0].kind, ferry_format::OpKind::Forget(_)),
            "only the forget itself is in the history: {history:?}"
        );
        assert!(vault.find("topsecret", None, 10).unwrap().is_empty());
        assert!(!database_contains(vault, dir.path(), "TOPSECRET"), "plaintext left in {}", vault.device_id());
    }
    assert!(!store_contains(&a, &store, "TOPSECRET"), "plaintext left in a store object");
    assert!(a.sync_status().unwrap().stores.iter().all(|s| s.pending_purge.is_none()));

    // A write after the forget, on a device that has applied it, is a new record that stays.
    c.put("notes", "secret", &json!({"text": "new and fine"})).unwrap();
    for vault in [&mut c, &mut a, &mut b] {
        sync(vault, &store);
    }
    for vault in [&a, &b, &c] {
        assert_eq!(vault.get("notes", "secret").unwrap().unwrap().value.as_str(), r#"{"text":"new and fine"}"#);
    }
}

#[test]
fn a_time_window_forget_reverts_a_record_to_its_last_version_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    a.put("notes", "n1", &json!("before the window")).unwrap();
    a.put("notes", "n2", &json!("only in the window, later forgotten")).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let start = Hlc::new(crate::write::now_ms(), 0).unwrap();
    b.put("notes", "n1", &json!("oops, pasted a password")).unwrap();
    b.put("notes", "n3", &json!("also in the window")).unwrap();
    let end = Hlc::new(crate::write::now_ms() + 1, 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    sync(&mut b, &store);
    sync(&mut a, &store);
    let report = a.forget("notes", &ForgetTarget::All, Some((start, end))).unwrap();
    assert_eq!(report.ops, 2);
    assert_eq!(a.get("notes", "n1").unwrap().unwrap().value.as_str(), "\"before the window\"");
    assert!(a.get("notes", "n3").unwrap().is_none());
    assert!(a.get("notes", "n2").unwrap().is_some(), "written before the window");
    sync(&mut a, &store);
    sync(&mut b, &store);
    sync(&mut b, &store);
    assert_eq!(b.get("notes", "n1").unwrap().unwrap().value.as_str(), "\"before the window\"");
    assert!(b.get("notes", "n3").unwrap().is_none());
    assert!(!store_contains(&a, &store, "password"));
}

#[test]
fn forgetting_a_prefix_leaves_later_records_under_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let (mut a, joined) = devices(dir.path(), &store, &["b"]);
    let [mut b]: [Vault; 1] = joined.try_into().unwrap();
    for key in ["2026-03-01", "2026-03-02", "2026-04-01"] {
        a.put("journal", key, &json!({"entry": format!("march-or-april {key}")})).unwrap();
    }
    sync(&mut a, &store);
    sync(&mut b, &store);
    let report = a.forget("journal", &ForgetTarget::Prefix("2026-03-".into()), None).unwrap();
    assert_eq!((report.ops, report.records), (2, 2));
    a.put("journal", "2026-03-15", &json!({"entry": "written after the forget"})).unwrap();
    sync(&mut a, &store);
    sync(&mut b, &store);
    let keys: Vec<String> = b.list("journal", &ListOptions::default()).unwrap().into_iter().map(|r| r.key).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"2026-03-15".to_owned()) && keys.contains(&"2026-04-01".to_owned()));
    assert!(matches!(a.forget("journal", &ForgetTarget::Prefix(String::new()), None), Err(Error::Name(_))));
}

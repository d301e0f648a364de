//! Search across devices, and `forget`: gone everywhere, never resurrected, erased.

use crate::sync_tests::{devices, sync};
use crate::*;
use ferry_store::MemoryStore;
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

//! One contract, checked against every backend.

use crate::*;

fn check_contract(store: &dyn Store) {
    assert_eq!(store.get("log/d/HEAD").unwrap(), None);
    assert_eq!(store.get_if_changed("log/d/HEAD", None).unwrap(), Fetched::Missing);
    assert_eq!(store.list("log/").unwrap(), Vec::<String>::new());

    assert_eq!(store.put_if_absent("log/d/0001.seg", b"one").unwrap(), Created::New);
    assert_eq!(store.put_if_absent("log/d/0001.seg", b"changed").unwrap(), Created::Exists);
    assert_eq!(store.get("log/d/0001.seg").unwrap().as_deref(), Some(&b"one"[..]));

    store.put("log/d/HEAD", b"v1").unwrap();
    let Fetched::Changed { bytes, etag } = store.get_if_changed("log/d/HEAD", None).unwrap() else { panic!() };
    assert_eq!(bytes, b"v1");
    assert_eq!(store.get_if_changed("log/d/HEAD", etag.as_deref()).unwrap(), Fetched::Unchanged);
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.put("log/d/HEAD", b"v2-longer").unwrap();
    assert!(
        matches!(store.get_if_changed("log/d/HEAD", etag.as_deref()).unwrap(), Fetched::Changed { bytes, .. } if bytes == b"v2-longer")
    );

    store.put_if_absent("devices/a.dev", b"a").unwrap();
    assert_eq!(store.list("log/").unwrap(), ["log/d/0001.seg", "log/d/HEAD"]);
    assert_eq!(store.list("devices/").unwrap(), ["devices/a.dev"]);
    let many = store.get_many(&["log/d/0001.seg".into(), "log/d/0002.seg".into(), "log/d/HEAD".into()]).unwrap();
    assert_eq!(many, [Some(b"one".to_vec()), None, Some(b"v2-longer".to_vec())]);
    let sized = store.list_sized("log/").unwrap();
    assert_eq!(sized.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(), ["log/d/0001.seg", "log/d/HEAD"]);
    assert_eq!(sized.iter().map(|l| l.size).collect::<Vec<_>>(), [Some(3), Some(9)], "sizes as written");

    store.delete("log/d/0001.seg").unwrap();
    store.delete("log/d/0001.seg").unwrap();
    assert_eq!(store.get("log/d/0001.seg").unwrap(), None);

    for bad in ["/abs", "../up", "a//b", "a/./b", "sp ace", "a\\b"] {
        assert_eq!(store.get(bad).unwrap_err().kind, StoreErrorKind::InvalidPath, "{bad}");
    }
}

#[test]
fn memory_store_keeps_the_contract() {
    check_contract(&MemoryStore::default());
}

#[test]
fn folder_store_keeps_the_contract_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderStore::new(dir.path().join("store"));
    std::fs::create_dir(dir.path().join("store")).unwrap();
    check_contract(&store);
    let leftovers = std::fs::read_dir(dir.path().join("store/.ferry-tmp")).unwrap().count();
    assert_eq!(leftovers, 0);
}

#[test]
fn folder_store_ignores_foreign_files_and_reports_a_missing_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir_all(root.join("devices")).unwrap();
    std::fs::write(root.join("devices/x.dev.sync-conflict-20260101 (1)"), b"").unwrap();
    std::fs::write(root.join("devices/a.dev"), b"").unwrap();
    let store = FolderStore::new(&root);
    assert_eq!(store.list("devices/").unwrap(), ["devices/a.dev"]);

    let unmounted = FolderStore::new(dir.path().join("not-mounted"));
    assert_eq!(unmounted.get("ferry-vault.json").unwrap_err().kind, StoreErrorKind::Unavailable);
    assert_eq!(unmounted.list("devices/").unwrap_err().kind, StoreErrorKind::Unavailable);
    assert_eq!(unmounted.put_if_absent("log/a/1.seg", b"x").unwrap_err().kind, StoreErrorKind::Unavailable);
    assert_eq!(unmounted.put("log/a/HEAD", b"x").unwrap_err().kind, StoreErrorKind::Unavailable);
    assert!(!dir.path().join("not-mounted").exists(), "writes must not create the missing root");
}

#[test]
fn decorators_count_and_fail() {
    let counting = CountingStore::new(MemoryStore::default());
    counting.put("a", b"1").unwrap();
    counting.get("a").unwrap();
    counting.list("").unwrap();
    assert_eq!(counting.counts(), CallCounts { reads: 1, lists: 1, writes: 1, deletes: 0, bytes_written: 1 });

    let faulty = FaultyStore::new(MemoryStore::default(), FaultPlan::CrashAt(1));
    faulty.put("a", b"1").unwrap();
    assert!(faulty.get("a").unwrap_err().is_transient());
    assert!(faulty.get("a").is_err(), "a crash is permanent");

    let offline = FaultyStore::new(MemoryStore::default(), FaultPlan::Offline);
    assert!(offline.put("a", b"1").is_err());
    offline.set_offline(false);
    offline.put("a", b"1").unwrap();
}

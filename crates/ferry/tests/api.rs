//! The embedding API end to end: facets, the change feed across processes, pairing, due
//! stores, and calls made from inside an async runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferry::{
    ChangeCursor, CreateOptions, Direction, DueBecause, Home, JoinOptions, JoinWith, KdfCost, Passphrase, SyncReason,
    Unlock, Vault, WaitBecause,
};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("vault passphrase"), kdf_cost: KdfCost::WorkFactor(4) }
}

fn store_in(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("store")).unwrap();
    format!("folder:{}", dir.join("store").display())
}

fn laptop(dir: &Path) -> Vault {
    let options = CreateOptions { device_name: "laptop".into(), unlock: unlock() };
    let mut vault = Vault::create_for_store(&Home::new(dir.join("laptop")), options, &store_in(dir)).unwrap().vault;
    assert!(vault.sync().all(Direction::Both).unwrap().iter().all(|o| o.result.is_ok()));
    vault
}

fn phone(dir: &Path) -> Vault {
    let options = JoinOptions { device_name: "phone".into(), unlock: unlock(), with: JoinWith::Passphrase };
    Vault::join(&Home::new(dir.join("phone")), options, &store_in(dir)).unwrap()
}

/// The child half of `a_subscriber_sees_what_another_process_writes_and_imports`: run by the
/// test binary itself in a second process.
#[test]
fn child_process_writes_and_imports() {
    let Ok(dir) = std::env::var("FERRY_TEST_CHILD_DIR") else { return };
    let dir = Path::new(&dir);
    let mut vault = Vault::open(&Home::new(dir.join("laptop")), &unlock()).unwrap();
    vault.records().put("notes", "from-child", &json!("written by another process")).unwrap();
    // The phone's write reaches the laptop's home through an import done here.
    let pulled = vault.sync().all(Direction::Pull).unwrap();
    assert_eq!(pulled[0].result.as_ref().unwrap().pull.as_ref().unwrap().imported_ops, 1);
}

#[test]
fn a_subscriber_sees_what_another_process_writes_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let mut laptop = laptop(dir.path());
    let mut phone = phone(dir.path());
    phone.records().put("notes", "from-phone", &json!("imported later")).unwrap();
    phone.sync().all(Direction::Both).unwrap();

    let feed = laptop.changes().subscribe().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_writes_and_imports", "--nocapture"])
        .env("FERRY_TEST_CHILD_DIR", dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child process failed");

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && Instant::now() < deadline {
        if let Some(item) = feed.recv_timeout(Duration::from_millis(200)).unwrap() {
            seen.push((item.change.key.clone(), item.cursor));
        }
    }
    let keys: Vec<&str> = seen.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys.len(), 2, "saw {keys:?}");
    assert!(keys.contains(&"from-child") && keys.contains(&"from-phone"), "saw {keys:?}");

    // The last cursor is the feed's end: nothing after it, and it survives as text.
    let cursor = ChangeCursor::parse(&seen[1].1.to_token()).unwrap();
    assert!(laptop.changes().since(&cursor, 10).unwrap().changes.is_empty());
    assert_eq!(cursor, laptop.changes().cursor().unwrap());
    // From the beginning, every change is there exactly once, paged.
    let first = laptop.changes().since(&ChangeCursor::beginning(), 1).unwrap();
    assert_eq!((first.changes.len(), first.more), (1, true));
    let rest = laptop.changes().since(&first.cursor, 10).unwrap();
    assert_eq!((rest.changes.len(), rest.more), (1, false));
    let _ = laptop.records().put("notes", "local", &json!(1)).unwrap();
}

#[test]
fn records_page_by_prefix_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault =
        Vault::create(&Home::new(dir.path().join("a")), CreateOptions { device_name: "a".into(), unlock: unlock() })
            .unwrap()
            .vault;
    vault
        .records()
        .batch(|w| {
            for key in ["a/3", "a/1", "b/1", "a/2", "a/4"] {
                w.put("notes", key, &json!(key))?;
            }
            w.delete("notes", "a/4")?;
            Ok(())
        })
        .unwrap();
    let records = vault.records();
    let first = records.page("notes", "a/", None, 2).unwrap();
    let keys: Vec<&str> = first.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!((keys, first.next.as_deref()), (vec!["a/1", "a/2"], Some("a/2")));
    let second = records.page("notes", "a/", first.next.as_deref(), 2).unwrap();
    let keys: Vec<&str> = second.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!((keys, second.next), (vec!["a/3"], None), "deleted a/4 and b/1 are not in the page");
}

#[test]
fn due_says_why_and_run_due_syncs_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = laptop(dir.path());
    let minute = Duration::from_secs(60);
    let now = ferry_engine_now();
    let due = vault.sync().due(SyncReason::Tick, minute, now).unwrap();
    assert!(matches!(due[0].verdict, Err(WaitBecause::Interval { .. })), "{due:?}");
    let due = vault.sync().due(SyncReason::LocalWrite, minute, now).unwrap();
    assert_eq!(due[0].verdict, Ok(DueBecause::LocalWrites));
    // A periodic round right after a sync does nothing; a local write syncs.
    vault.records().put("notes", "n", &json!(1)).unwrap();
    assert!(vault.sync().run_due(SyncReason::Tick, minute).unwrap().is_empty());
    let ran = vault.sync().run_due(SyncReason::LocalWrite, minute).unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].result.as_ref().unwrap().push.as_ref().unwrap().uploaded_ops, 1);
}

fn ferry_engine_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn a_wrong_code_enrolls_nothing_and_ends_the_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let mut laptop = laptop(dir.path());
    let mut invitation = laptop.devices().invite(Duration::from_secs(60)).unwrap();
    let token = invitation.token();
    let home = Home::new(dir.path().join("phone"));
    let (shown, seen) = std::sync::mpsc::channel();
    let joiner = std::thread::spawn(move || {
        let options = CreateOptions { device_name: "phone".into(), unlock: unlock() };
        let mut acceptance = ferry::accept(&home, &token, options).unwrap();
        let confirmation = acceptance.wait_for_confirmation(Duration::from_secs(10)).unwrap().unwrap();
        shown.send(confirmation.code).unwrap();
        // The inviter refuses: the approval never comes, and the exchange is gone.
        acceptance.wait_for_approval(Duration::from_secs(2))
    });
    let request = invitation.wait_for_request(Duration::from_secs(10)).unwrap().expect("a request");
    let code = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(code, request.code, "both sides compute the same code");
    let wrong = if code.starts_with('9') { "111 111" } else { "999 999" };
    let err = invitation.approve(&request, wrong).unwrap_err();
    assert!(matches!(err, ferry::Error::PairingCodeMismatch), "{err}");
    let answered = joiner.join().unwrap();
    assert!(answered.is_err() || answered.unwrap().is_none(), "the new device was not enrolled");
    assert_eq!(laptop.devices().list().unwrap().len(), 1);
    let left = files_under(&dir.path().join("store/pair"));
    assert!(left.is_empty(), "the exchange's objects are removed: {left:?}");
}

/// Calls that do network I/O, made from inside a tokio runtime (both flavours), neither panic
/// nor deadlock: a peer pull (blocking HTTP client) and a store sync.
#[test]
fn blocking_calls_are_safe_inside_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut laptop = laptop(dir.path());
    let mut phone = phone(dir.path());
    phone.sync().all(Direction::Both).unwrap();
    laptop.sync().all(Direction::Both).unwrap(); // the laptop learns the phone's key
    phone.records().put("notes", "over-the-lan", &json!("peer")).unwrap();

    // The phone serves what it holds on the loopback interface.
    let engine = phone.engine();
    engine.seal_local_writes().unwrap();
    let identity = ferry_net::TlsIdentity::new(&engine.device_signing_secret().unwrap()).unwrap();
    let pins = ferry_net::Pins::default();
    pins.set(engine.active_device_keys().unwrap());
    let server = ferry_net::serve(
        engine.reopen().unwrap(),
        &identity,
        pins,
        "127.0.0.1:0".parse().unwrap(),
        ferry_net::ServerEvents::default(),
    )
    .unwrap();
    let addr = server.addr().to_string();

    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pulled = current.block_on(async { laptop.sync().peer(&addr) }).unwrap();
    assert_eq!(pulled.report.imported_ops, 1);
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let synced = multi.block_on(async { laptop.sync().all(Direction::Both) }).unwrap();
    assert!(synced[0].result.is_ok(), "{:?}", synced[0].result);
    let doctor = current.block_on(async { laptop.doctor() }).unwrap();
    assert!(doctor.iter().any(|c| c.check.starts_with("store")));
    assert_eq!(laptop.records().get("notes", "over-the-lan").unwrap().unwrap().value.as_str(), r#""peer""#);
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() { files_under(&path) } else { vec![path] }
        })
        .collect()
}

/// The `watch` example, run as its own process, prints what this process writes.
#[test]
fn the_watch_example_prints_changes_made_by_another_process() {
    use std::io::{BufRead, BufReader};
    let example = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("examples/watch");
    assert!(example.exists(), "{} is built with the tests (cargo test builds examples)", example.display());
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("a"));
    let mut vault = Vault::create(&home, CreateOptions { device_name: "a".into(), unlock: unlock() }).unwrap().vault;
    let mut child = Command::new(&example)
        .args([home.root().to_str().unwrap(), "2"])
        .env("FERRY_PASSPHRASE", "vault passphrase")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "watching");
    vault.records().put("notes", "n1", &json!(1)).unwrap();
    vault.records().rm("notes", "n1").unwrap();
    let printed: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(printed.len(), 2, "{printed:?}");
    // Each line names the record and its state when the watcher read it: the put may already
    // read as deleted, the delete always does.
    assert!(printed[0].starts_with("notes/n1 "), "{printed:?}");
    assert!(printed[1].starts_with("notes/n1 deleted "), "{printed:?}");
    let last_cursor = printed[1].rsplit(' ').next().unwrap();
    assert_eq!(ChangeCursor::parse(last_cursor).unwrap(), vault.changes().cursor().unwrap());
}

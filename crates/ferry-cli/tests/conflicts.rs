//! Policies and conflicts through the binary: two devices edit the same record apart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Store, laptop_and_phone};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The edits both tests make: a title on the laptop, a body on the phone.
const BASE: &str = r#"{"title":"a","body":"b"}"#;
const LAPTOP_EDIT: &str = r#"{"title":"laptop","body":"b"}"#;
const PHONE_EDIT: &str = r#"{"title":"a","body":"phone"}"#;

/// Both devices edit `notes/n1` apart, then sync both ways.
fn edit_apart(laptop: &Device, phone: &Device, base: &str, on_laptop: &str, on_phone: &str) {
    laptop.ok(&["put", "notes", "n1", base]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    laptop.ok(&["put", "notes", "n1", on_laptop]);
    std::thread::sleep(std::time::Duration::from_millis(3));
    phone.ok(&["put", "notes", "n1", on_phone]);
    phone.ok(&["sync"]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
}

#[test]
fn manual_conflicts_are_listed_shown_and_resolved() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    laptop.ok(&["policy", "set", "notes", "manual"]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    assert!(phone.ok(&["policy", "ls"]).contains("manual"));
    edit_apart(&laptop, &phone, BASE, LAPTOP_EDIT, PHONE_EDIT);

    let listed = laptop.ok(&["conflicts"]);
    assert!(listed.contains("notes") && listed.contains("n1"), "{listed}");
    let run = laptop.run(&["get", "notes", "n1"]);
    run.expect_code(0, &laptop.home);
    assert!(run.stderr.contains("concurrent versions"), "{}", run.stderr);
    let shown = laptop.ok(&["conflicts", "show", "notes", "n1"]);
    assert!(shown.contains("laptop") && shown.contains("phone") && shown.contains("differences"), "{shown}");
    assert!(shown.contains("title:") && shown.contains("body:"), "{shown}");
    let heads = json(&laptop.ok(&["conflicts", "show", "notes", "n1", "--json"]));
    let laptop_head = heads.as_array().unwrap().iter().find(|h| h["device_name"] == "laptop").unwrap()["op"].clone();

    let err = laptop.fails(&["conflicts", "resolve", "notes", "n1", "--pick", "00000000000000000000000000000000.9"], 2);
    assert!(err.contains("not a head"), "{err}");
    laptop.ok(&["conflicts", "resolve", "notes", "n1", "--pick", laptop_head.as_str().unwrap()]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    let record = json(&phone.ok(&["get", "notes", "n1", "--json"]));
    assert_eq!(record["value"], serde_json::json!({"title": "laptop", "body": "b"}));
    assert_eq!((record["heads"].as_u64(), record["conflict"].as_bool()), (Some(1), Some(false)));
    assert!(phone.ok(&["conflicts"]).contains("no records wait"));
}

#[test]
fn fields_policy_keeps_both_edits() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    laptop.ok(&["policy", "set", "notes", "fields"]);
    edit_apart(&laptop, &phone, BASE, LAPTOP_EDIT, PHONE_EDIT);
    let merged = r#"{"body":"phone","title":"laptop"}"#;
    assert_eq!(laptop.ok(&["get", "notes", "n1"]).trim(), merged);
    assert_eq!(phone.ok(&["get", "notes", "n1"]).trim(), merged);
    let err = laptop.fails(&["policy", "set", "notes", "priority", "--order", "nobody"], 2);
    assert!(err.contains("no single device"), "{err}");
    laptop.ok(&["policy", "set", "notes", "priority", "--order", "phone,laptop"]);
    assert_eq!(laptop.ok(&["get", "notes", "n1"]).trim(), r#"{"body":"phone","title":"a"}"#);
    assert!(laptop.ok(&["policy", "ls"]).contains("priority (phone > laptop)"));
}

#[test]
fn find_then_forget_through_the_binary() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    laptop.ok(&["put", "notes", "n1", r#"{"title":"Budget with Alice","body":"secret numbers"}"#]);
    laptop.ok(&["put", "notes", "n2", r#"{"title":"Groceries"}"#]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    let found = phone.ok(&["find", "alice"]);
    assert!(found.contains("notes") && found.contains("n1") && found.contains("[Alice]"), "{found}");
    assert_eq!(json(&phone.ok(&["find", "groc*", "--json"])).as_array().unwrap().len(), 1);
    phone.ok(&["index", "notes", "--fields", "body"]);
    assert!(phone.ok(&["find", "alice"]).contains("nothing found"));
    phone.ok(&["index", "notes", "--all-fields"]);

    let refused = phone.run_stdin(&["forget", "notes", "n1"], "no\n");
    refused.expect_code(2, &phone.home);
    assert!(phone.ok(&["get", "notes", "n1"]).contains("Alice"));
    let out = phone.run_stdin(&["forget", "notes", "n1"], "forget\n");
    out.expect_code(0, &phone.home);
    assert!(out.stdout.contains("1 ops erased"), "{}", out.stdout);
    phone.fails(&["get", "notes", "n1"], 3);
    assert!(phone.ok(&["find", "alice"]).contains("nothing found"));
    phone.ok(&["sync"]);
    laptop.ok(&["sync"]);
    laptop.fails(&["get", "notes", "n1"], 3);
    let status = laptop.ok(&["sync", "status"]);
    assert!(status.contains("purge pending"), "the laptop rewrites its own segment next: {status}");
    laptop.ok(&["sync"]);
    assert!(!laptop.ok(&["sync", "status"]).contains("purge pending"));
    assert!(laptop.ok(&["log", "notes", "n1"]).contains("forget"));
    let err = laptop.fails(&["forget", "notes", "--all", "--from", "yesterday", "--to", "today", "--yes"], 2);
    assert!(err.contains("is not a time"), "{err}");
    laptop.ok(&["forget", "notes", "--all", "--from", "2020-01-01", "--to", "2020-01-02", "--yes"]);
    assert!(laptop.ok(&["get", "notes", "n2"]).contains("Groceries"), "outside the window");
}

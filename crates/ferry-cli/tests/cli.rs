//! Drives the real `ferry` binary in temporary device homes. A failing check prints the
//! command, its output and the home's files, so the failure explains itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use assert_cmd::Command;
use common::Device;

#[test]
fn init_prints_the_recovery_phrase_once_and_stores_it_nowhere() {
    let device = Device::new();
    let out = device.ok(&["init", "--name", "laptop"]);
    assert!(out.contains("RECOVERY PHRASE"), "{out}");
    assert!(out.contains("shown ONCE"), "{out}");
    let words: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("1.") || l.contains(" 7.") || l.contains("13.") || l.contains("19."))
        .flat_map(|l| l.split_whitespace().filter(|w| !w.ends_with('.')))
        .collect();
    assert_eq!(words.len(), 24, "{out}");
    for (_, bytes) in device.files() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&words[..4].join(" ")), "the phrase must not be stored");
    }
    // Never again: status does not show it, a second init refuses.
    let status = device.ok(&["status"]);
    assert!(!status.contains(&words[..4].join(" ")), "{status}");
    let err = device.fails(&["init", "--name", "again"], 5);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn init_json_reports_ids_and_phrase() {
    let device = Device::new();
    let out: serde_json::Value = serde_json::from_str(&device.ok(&["init", "--name", "desk", "--json"])).unwrap();
    assert_eq!(out["device_name"], "desk");
    assert_eq!(out["recovery_phrase"].as_str().unwrap().split(' ').count(), 24);
    let status: serde_json::Value = serde_json::from_str(&device.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["vault_id"], out["vault_id"]);
    assert_eq!(status["vault_key_fingerprint"], out["vault_key_fingerprint"]);
}

#[test]
fn put_get_ls_rm_log_status_repair() {
    let device = Device::initialised();
    assert!(device.ok(&["put", "notes", "n1", r#"{"title":"hi","body":"..."}"#]).starts_with("put notes/n1 (op "));
    device.ok(&["put", "notes", "n2", r#""second""#]);
    device.ok(&["put", "todos", "t1", "true"]);
    assert_eq!(device.ok(&["get", "notes", "n1"]), "{\"body\":\"...\",\"title\":\"hi\"}\n");

    let ls = device.ok(&["ls", "notes"]);
    let keys: Vec<&str> = ls.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(keys, ["n2", "n1"], "newest first:\n{ls}");
    assert!(ls.starts_with("KEY"), "{ls}");
    let listed: serde_json::Value = serde_json::from_str(&device.ok(&["ls", "notes", "--json"])).unwrap();
    assert_eq!(listed[1]["value"]["title"], "hi");
    assert_eq!(device.ok(&["ls", "notes", "--limit", "1"]).lines().count(), 2);
    let collections = device.ok(&["ls"]);
    assert!(collections.contains("notes") && collections.contains("todos"), "{collections}");

    assert!(device.ok(&["rm", "notes", "n1"]).starts_with("deleted notes/n1"));
    let err = device.fails(&["get", "notes", "n1"], 3);
    assert!(err.contains("was deleted at"), "{err}");

    let log = device.ok(&["log"]);
    assert_eq!(log.lines().count(), 5, "header + 4 ops:\n{log}");
    assert!(log.lines().nth(1).unwrap().contains("delete"), "newest first:\n{log}");
    let record_log: serde_json::Value = serde_json::from_str(&device.ok(&["log", "notes", "n1", "--json"])).unwrap();
    let kinds: Vec<&str> = record_log.as_array().unwrap().iter().map(|op| op["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["delete", "put"]);
    assert_eq!(record_log[0]["parents"][0], record_log[1]["op"]);
    assert_eq!(record_log[0]["device_name"], "laptop");

    let status: serde_json::Value = serde_json::from_str(&device.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        (status["records"].as_u64(), status["deleted_records"].as_u64(), status["ops"].as_u64()),
        (Some(2), Some(1), Some(4))
    );
    assert_eq!(status["unpublished_ops"], 4);
    let text = device.ok(&["status"]);
    for label in ["device:", "vault:", "vault key fingerprint:", "unpublished ops:"] {
        assert!(text.contains(label), "{label} missing:\n{text}");
    }
    let repair: serde_json::Value = serde_json::from_str(&device.ok(&["repair", "--json"])).unwrap();
    assert_eq!(
        (repair["records"].as_u64(), repair["ops"].as_u64(), repair["corrected"].as_u64()),
        (Some(3), Some(4), Some(0))
    );
}

#[test]
fn put_reads_the_value_from_stdin() {
    let device = Device::initialised();
    let mut cmd = device.command(&["put", "notes", "big", "-"]);
    cmd.write_stdin(r#"{"from":"stdin"}"#);
    device.run_with(cmd, &["put", "notes", "big", "-"]).expect_code(0, &device.home);
    assert_eq!(device.ok(&["get", "notes", "big"]), "{\"from\":\"stdin\"}\n");
}

#[test]
fn bad_input_gets_one_line_errors_with_documented_codes_and_writes_nothing() {
    let device = Device::initialised();
    device.ok(&["put", "notes", "n1", "1"]);
    let ops_before = device.ok(&["status", "--json"]);

    assert!(device.fails(&["put", "notes", "n2", "{title: hi}"], 2).contains("invalid JSON"));
    assert!(device.fails(&["put", "notes", "", "1"], 2).contains("record key is empty"));
    assert!(device.fails(&["put", "notes", &"k".repeat(600), "1"], 2).contains("the limit is 512 bytes"));
    assert!(device.fails(&["put", "_ferry", "policy", "1"], 2).contains("reserved"));
    assert!(device.fails(&["put", "bad name", "k", "1"], 2).contains("contains ' '"));
    let big = format!("\"{}\"", "x".repeat(1024 * 1024 + 1));
    let mut cmd = device.command(&["put", "notes", "huge", "-"]);
    cmd.write_stdin(big);
    let run = device.run_with(cmd, &["put", "notes", "huge", "-"]);
    run.expect_code(2, &device.home);
    assert!(run.stderr.contains("store large payloads as blobs"), "{}", run.stderr);

    let err = device.fails(&["get", "recipes", "r1"], 3);
    assert!(err.contains("no collection `recipes`") && err.contains("collections: notes"), "{err}");
    assert!(device.fails(&["get", "notes", "n9"], 3).contains("no record `n9` in collection `notes`"));
    assert!(device.fails(&["rm", "notes", "n9"], 3).contains("no record `n9`"));
    assert!(device.fails(&["get", "_ferry", "x"], 2).contains("reserved"));
    assert_eq!(device.ok(&["status", "--json"]), ops_before, "failed commands must write nothing");
}

#[test]
fn wrong_or_missing_passphrase_is_refused_and_changes_nothing() {
    let mut device = Device::initialised();
    device.ok(&["put", "notes", "n1", "1"]);
    let before = device.files();
    let right = std::mem::replace(&mut device.passphrase, "wrong".into());
    let err = device.fails(&["get", "notes", "n1"], 4);
    assert!(err.contains("wrong passphrase"), "{err}");
    device.fails(&["put", "notes", "n2", "2"], 4);
    assert_eq!(device.files(), before, "nothing may change after a wrong passphrase");

    // No source and no terminal: a clear error, not a hang.
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status"]).env("FERRY_HOME", &device.home).env_remove("FERRY_PASSPHRASE_COMMAND").write_stdin("");
    let run = device.run_with(cmd, &["status"]);
    run.expect_code(4, &device.home);
    assert!(run.stderr.contains("--passphrase-command"), "{}", run.stderr);

    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["--key-from-env", "FERRY_NOT_SET_ANYWHERE", "status"]).env("FERRY_HOME", &device.home);
    let run = device.run_with(cmd, &["status"]);
    run.expect_code(4, &device.home);
    assert!(run.stderr.contains("FERRY_NOT_SET_ANYWHERE is not set"), "{}", run.stderr);
    device.passphrase = right;
    device.ok(&["get", "notes", "n1"]);
}

#[test]
fn passphrase_command_is_run_through_the_shell() {
    let device = Device::initialised();
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["get", "notes", "n1"]).env("FERRY_HOME", &device.home);
    device.ok(&["put", "notes", "n1", "7"]);
    cmd.arg("--passphrase-command").arg(format!("printf '%s\\n' '{}'", device.passphrase));
    let run = device.run_with(cmd, &["get", "notes", "n1", "--passphrase-command", "…"]);
    run.expect_code(0, &device.home);
    assert_eq!(run.stdout, "7\n");

    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status", "--passphrase-command", "exit 3"]).env("FERRY_HOME", &device.home);
    let run = device.run_with(cmd, &["status", "--passphrase-command", "exit 3"]);
    run.expect_code(4, &device.home);
    assert!(run.stderr.contains("passphrase command `exit 3` failed"), "{}", run.stderr);

    // A command that prints nothing is named as such (not "choose a passphrase").
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status", "--passphrase-command", "true"]).env("FERRY_HOME", &device.home);
    let run = device.run_with(cmd, &["status", "--passphrase-command", "true"]);
    run.expect_code(4, &device.home);
    assert!(run.stderr.contains("passphrase command `true` printed nothing"), "{}", run.stderr);
}

#[test]
fn commands_without_a_vault_say_how_to_create_one() {
    let device = Device::new();
    for args in [&["status"][..], &["get", "notes", "n1"], &["log"], &["ls"]] {
        let err = device.fails(args, 5);
        assert!(err.contains("ferry init"), "{err}");
    }
    assert!(!device.home.exists(), "a failed command must not create the home");
}

#[test]
fn home_flag_overrides_the_environment_and_devices_are_independent() {
    let laptop = Device::initialised();
    let desktop = Device::new();
    desktop.ok(&["init", "--name", "desktop"]);
    laptop.ok(&["put", "notes", "n1", "\"laptop\""]);
    desktop.ok(&["put", "notes", "n1", "\"desktop\""]);
    let home = laptop.home.to_str().unwrap();
    let out = desktop.ok(&["--home", home, "get", "notes", "n1"]);
    assert_eq!(out, "\"laptop\"\n");
    assert_eq!(desktop.ok(&["get", "notes", "n1"]), "\"desktop\"\n");
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Device::new().ok(&["--help"]);
    for line in ["Exit codes:", "2  bad input", "3  not found", "4  locked", "5  setup"] {
        assert!(out.contains(line), "{line} missing from --help:\n{out}");
    }
}

/// With an OS keychain (a Secret Service in CI, which `.ci/run` starts), the device key is kept
/// there at init and commands need no passphrase; `--no-keychain` goes back to the passphrase.
#[test]
fn the_os_keychain_unlocks_without_a_passphrase() {
    let device = Device::new();
    let mut cmd = device.command(&["init", "--name", "laptop", "--json"]);
    cmd.env_remove("FERRY_NO_KEYCHAIN");
    let run = device.run_with(cmd, &["init"]);
    run.expect_code(0, &device.home);
    let init: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    if init["key_in_keychain"] != true {
        assert!(std::env::var_os("CI").is_none(), "CI must provide an OS keychain (a Secret Service): {}", run.stderr);
        eprintln!("SKIPPED: no OS keychain on this machine (no Secret Service); the keychain path is untested here");
        return;
    }
    // No passphrase source and no terminal: the keychain alone opens the vault.
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status", "--json"]).env("FERRY_HOME", &device.home).env_remove("FERRY_NO_KEYCHAIN").write_stdin("");
    let run = device.run_with(cmd, &["status"]);
    run.expect_code(0, &device.home);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["unlocked_with"], "keychain");
    // --no-keychain needs the passphrase again.
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status", "--no-keychain"]).env("FERRY_HOME", &device.home).write_stdin("");
    device.run_with(cmd, &["status", "--no-keychain"]).expect_code(4, &device.home);
    let status: serde_json::Value = serde_json::from_str(&device.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["unlocked_with"], "passphrase");
    assert_eq!(status["key_in_keychain"], true);

    // `ferry doctor` says the keychain is in use; `key keychain off` and `on` switch it.
    let keychain = |args: &[&str]| {
        let mut cmd = device.command(args);
        cmd.env_remove("FERRY_NO_KEYCHAIN");
        device.run_with(cmd, args)
    };
    let doctor = keychain(&["doctor"]);
    doctor.expect_code(0, &device.home);
    assert!(doctor.stdout.contains("the OS keychain holds this device's key"), "{}", doctor.stdout);
    keychain(&["key", "keychain", "off"]).expect_code(0, &device.home);
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status"]).env("FERRY_HOME", &device.home).env_remove("FERRY_NO_KEYCHAIN").write_stdin("");
    device.run_with(cmd, &["status"]).expect_code(4, &device.home);
    keychain(&["key", "keychain", "on"]).expect_code(0, &device.home);
    let mut cmd = Command::cargo_bin("ferry").unwrap();
    cmd.args(["status"]).env("FERRY_HOME", &device.home).env_remove("FERRY_NO_KEYCHAIN").write_stdin("");
    device.run_with(cmd, &["status"]).expect_code(0, &device.home);
    keychain(&["key", "keychain", "off"]).expect_code(0, &device.home);
}

#[test]
fn environment_settings_do_not_change_usage_lines() {
    let device = Device::new();
    // The test environment sets FERRY_NO_KEYCHAIN=1 (see `Device::process`); the usage line
    // shows what was typed, not a flag the environment stands for.
    let run = device.run(&["get"]);
    assert!(run.stderr.contains("Usage: ferry get"), "{}", run.stderr);
    assert!(!run.stderr.contains("--no-keychain"), "{}", run.stderr);
}

//! Two devices syncing directly: `ferry serve` on one, `ferry sync --peer` on the other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Running, Store, laptop_and_phone, spawn_with_first_line};
use std::process::Stdio;

#[test]
fn a_device_pulls_from_another_that_serves_without_any_store() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    laptop.ok(&["put", "notes", "lan", r#""only over the LAN""#]);

    let (server, addr) = serve(&laptop, "3600");
    assert!(addr.starts_with("127.0.0.1:"), "{addr:?}");

    let out = phone.ok(&["sync", "--peer", &addr]);
    assert!(out.contains("pulled 1 ops"), "{out}");
    assert_eq!(phone.ok(&["get", "notes", "lan"]), "\"only over the LAN\"\n");
    assert!(phone.ok(&["sync", "--peer", &addr]).contains("pulled 0 ops"));
    // The store never saw the write; the peer is not listed as a store.
    assert!(!phone.ok(&["store", "ls"]).contains("peer:"));

    // A device of another vault is refused by the server.
    let stranger = Device::new();
    stranger.ok(&["init", "--name", "stranger"]);
    let err = stranger.fails(&["sync", "--peer", &addr], 1);
    assert!(err.contains("not an active device") || err.contains("refused"), "{err}");
    drop(server);
    let err = phone.fails(&["sync", "--peer", &addr], 6);
    assert!(err.contains("cannot be reached"), "{err}");
}

/// Starts `ferry serve` on `device`; returns it and the address it listens on.
fn serve(device: &Device, interval: &str) -> (Running, String) {
    let (running, line) = spawn_with_first_line(serve_command(device, interval));
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    (running, addr)
}

/// `ferry serve` on loopback ports, without mDNS, syncing stores every `interval` seconds.
fn serve_command(device: &Device, interval: &str) -> std::process::Command {
    device.process(&["serve", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--no-mdns", "--interval", interval])
}

/// Two devices of one vault that sync only with each other (their store is removed).
fn two_peers_only(store: &Store) -> (Device, Device) {
    let (laptop, phone) = laptop_and_phone(store);
    laptop.ok(&["store", "rm", "1"]);
    phone.ok(&["store", "rm", "1"]);
    (laptop, phone)
}

fn device_id(device: &Device) -> String {
    let status: serde_json::Value = serde_json::from_str(&device.ok(&["status", "--json"])).unwrap();
    status["device_id"].as_str().unwrap().to_owned()
}

#[test]
fn two_serving_devices_that_know_each_other_converge_on_their_own() {
    let store = Store::new();
    let (laptop, phone) = two_peers_only(&store);
    let (_laptop_server, laptop_addr) = serve(&laptop, "1");
    let (_phone_server, phone_addr) = serve(&phone, "1");
    laptop.ok(&["peers", "add", &device_id(&phone)[..8], &phone_addr]);
    phone.ok(&["peers", "add", &device_id(&laptop)[..8], &laptop_addr]);
    let err = phone.fails(&["peers", "add", "00000000", "127.0.0.1:1"], 3);
    assert!(err.contains("no device"), "{err}");

    laptop.ok(&["put", "notes", "a", r#""from the laptop""#]);
    phone.ok(&["put", "notes", "b", r#""from the phone""#]);
    // Bounded wait: each daemon pulls once a second.
    let converged = (0..60).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(250));
        laptop.run(&["get", "notes", "b"]).code == 0 && phone.run(&["get", "notes", "a"]).code == 0
    });
    assert!(converged, "both records on both devices within 15 s");
    let peers = laptop.ok(&["peers"]);
    assert!(peers.contains(&phone_addr) && peers.contains("phone") && peers.contains("connected"), "{peers}");
    laptop.ok(&["peers", "forget-address", &phone_addr]);
    let peers: serde_json::Value = serde_json::from_str(&laptop.ok(&["peers", "--json"])).unwrap();
    assert_eq!(peers[0]["stored_addresses"], serde_json::json!([]), "{peers}");
}

#[test]
fn service_install_writes_a_user_unit_that_serves_this_home() {
    let device = Device::new();
    device.ok(&["init", "--name", "laptop"]);
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = device.command(args);
        cmd.env("XDG_CONFIG_HOME", config.path());
        device.run_with(cmd, args)
    };
    let status = run(&["service", "status"]);
    status.expect_code(0, &device.home);
    assert!(status.stdout.contains("not installed"), "{}", status.stdout);
    // Without the keychain the service needs a passphrase command.
    let refused = run(&["service", "install", "--no-enable"]);
    refused.expect_code(5, &device.home);
    assert!(refused.stderr.contains("--passphrase-command"), "{}", refused.stderr);
    // (Without the harness's --key-from-env, which excludes a passphrase command.)
    let args =
        ["service", "install", "--no-enable", "--passphrase-command", "pass show ferry", "--listen", "0.0.0.0:7421"];
    let mut cmd = assert_cmd::Command::cargo_bin("ferry").unwrap();
    cmd.args(args).env("FERRY_HOME", &device.home).env("FERRY_NO_KEYCHAIN", "1").env("XDG_CONFIG_HOME", config.path());
    device.run_with(cmd, &args).expect_code(0, &device.home);
    let unit = std::fs::read_to_string(config.path().join("systemd/user/ferry.service")).unwrap();
    let home = device.home.canonicalize().unwrap();
    assert!(
        unit.contains(&format!(
            "--home {} --passphrase-command \"pass show ferry\" serve --listen 0.0.0.0:7421",
            home.display()
        )),
        "{unit}"
    );
    assert!(unit.lines().any(|l| l.starts_with("ExecStart=/") && l.contains("ferry")), "{unit}");
}

/// The device's vault, opened in this process as the CLI opens it.
fn open(device: &Device) -> ferry_engine::Vault {
    let unlock = ferry_engine::Unlock {
        passphrase: ferry_engine::Passphrase::new(&device.passphrase),
        kdf_cost: ferry_engine::KdfCost::WorkFactor(10),
    };
    ferry_engine::Vault::open(&ferry_engine::Home::new(&device.home), &unlock).unwrap()
}

fn serve_on(device: &Device, listen: &str) -> Running {
    let child = device
        .process(&["serve", "--listen", listen, "--api", "127.0.0.1:0", "--no-mdns", "--interval", "3600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

#[test]
fn a_peer_killed_mid_transfer_and_restarted_is_caught_up_with() {
    // 40 segments of 10,000 ops: a pull fetches 32 at a time, so a kill while the first ones
    // are imported leaves the last 8 unfetched.
    const RECORDS: u64 = 400_000;
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    laptop.ok(&["store", "rm", "1"]);
    phone.ok(&["store", "rm", "1"]);
    let mut writer = open(&laptop);
    writer
        .write(|w| {
            for n in 0..RECORDS {
                w.put("notes", &format!("n{n:06}"), &serde_json::json!({ "text": format!("note {n}") }))?;
            }
            Ok(())
        })
        .unwrap();

    // The laptop serves; the phone follows it at the stored address.
    let (first, addr) = serve(&laptop, "3600");
    drop(first);
    let mut laptop_daemon = serve_on(&laptop, &addr);
    phone.ok(&["peers", "add", &device_id(&laptop)[..8], &addr]);
    let reader = open(&phone);
    let records = || reader.status().unwrap().records;
    let _phone_daemon = serve_on(&phone, "127.0.0.1:0");

    // Killed (SIGKILL, no goodbye) as soon as the phone has imported part of the data.
    let started = std::time::Instant::now();
    while records() == 0 && started.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    laptop_daemon.0.kill().unwrap();
    let _ = laptop_daemon.0.wait();
    let at_kill = records();
    assert!(at_kill > 0 && at_kill < RECORDS, "killed mid-transfer: {at_kill} of {RECORDS}");
    // Once it has imported what it fetched, the phone finds the laptop gone.
    let lost = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let peers: serde_json::Value = serde_json::from_str(&phone.ok(&["peers", "--json"])).unwrap();
        peers[0]["state"] != serde_json::json!("connected")
    });
    assert!(lost, "the phone notices the laptop is gone");
    assert!(records() < RECORDS, "the rest waits for the laptop");

    // Back on the same address: the phone retries (backoff, woken by the laptop's own link
    // connecting to it) and resumes from its cursor.
    let _laptop_daemon = serve_on(&laptop, &addr);
    let caught_up = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        records() == RECORDS
    });
    assert!(caught_up, "all {RECORDS} records within 120 s of the restart; has {}", records());
    assert_eq!(phone.ok(&["get", "notes", "n249999"]), "{\"text\":\"note 249999\"}\n");
    assert_eq!(reader.status().unwrap().ops, writer.status().unwrap().ops);
}

#[test]
fn sync_now_and_sync_peer_by_device_name_talk_to_what_is_running() {
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    // No daemon: `sync now` syncs once here, and says so.
    let run = phone.run(&["sync", "now"]);
    run.expect_code(0, &phone.home);
    assert!(run.stderr.contains("No daemon runs"), "{}", run.stderr);
    // A device with no known address cannot be dialled by name.
    let err = phone.fails(&["sync", "--peer", "laptop"], 3);
    assert!(err.contains("no known address") && err.contains("ferry peers add"), "{err}");

    let (_daemon, addr) = serve(&laptop, "3600");
    phone.ok(&["peers", "add", "laptop", &addr]);
    laptop.ok(&["put", "notes", "named", r#""dialled by name""#]);
    assert!(phone.ok(&["sync", "--peer", "laptop"]).contains("pulled 1 ops"));
    assert_eq!(phone.ok(&["get", "notes", "named"]), "\"dialled by name\"\n");
    // With the laptop's daemon running, `sync now` there asks it.
    let out = laptop.ok(&["sync", "now", "--json"]);
    assert!(out.contains("\"started\": true"), "{out}");
}

/// A peer frozen by the operating system (SIGSTOP: its sockets stay open, it answers nothing)
/// is shown as such within 5 s and followed again once it thaws; the daemon's log says so.
#[test]
fn a_frozen_peer_is_reported_within_5_s_and_the_daemon_logs_it() {
    use std::time::{Duration, Instant};
    let store = Store::new();
    let (laptop, phone) = two_peers_only(&store);
    let (phone_server, phone_addr) = serve(&phone, "3600");
    let log = laptop.home.with_extension("log");
    let mut command = serve_command(&laptop, "3600");
    command.env("FERRY_LOG", "info").stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
    let mut child = command.spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
    let laptop_server = Running(child);
    laptop.ok(&["peers", "add", &device_id(&phone)[..8], &phone_addr]);
    let state = || -> String {
        let peers: serde_json::Value = serde_json::from_str(&laptop.ok(&["peers", "--json"])).unwrap();
        peers[0]["state"].as_str().unwrap_or_default().to_owned()
    };
    let until = |limit: Duration, wanted: &dyn Fn(&str) -> bool| -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if wanted(&state()) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    };
    assert!(until(Duration::from_secs(15), &|s| s == "connected").is_some(), "the link connects");

    let pid = phone_server.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let lost = until(Duration::from_secs(15), &|s| s != "connected");
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let lost = lost.expect("the frozen peer is reported");
    assert!(lost <= Duration::from_secs(5) + Duration::from_millis(500), "shown connected for {lost:?}");
    assert!(until(Duration::from_secs(10), &|s| s == "connected").is_some(), "followed again after it thaws");

    drop(laptop_server);
    drop(phone_server);
    let logged = std::fs::read_to_string(&log).unwrap();
    for line in ["peer connected", "peer lost"] {
        assert!(logged.contains(line), "the log has `{line}`:\n{logged}");
    }
}

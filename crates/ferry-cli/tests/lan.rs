//! Two devices on a real (virtual) LAN find each other by mDNS and sync with no store and no
//! stored address: two network namespaces joined by a veth pair, each running `ferry serve`.
//!
//! Needs root and iproute2 (`ip netns`). Where they are missing the test says so loudly and
//! passes, except under CI (`CI` set), where it fails: CI must run it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Running, Store, ip, laptop_and_phone};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two namespaces and the link between them; removed when dropped.
struct Lan {
    names: [String; 2],
    subnet: String,
}

impl Lan {
    fn new() -> Option<Self> {
        let id = std::process::id() % 200 + 20;
        let names = [format!("ferry{id}a"), format!("ferry{id}b")];
        let subnet = format!("10.213.{id}");
        let lan = Self { names, subnet };
        let [a, b] = &lan.names;
        let (va, vb) = (format!("fv{id}a"), format!("fv{id}b"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), a.clone()],
            vec!["netns".into(), "add".into(), b.clone()],
            vec![
                "link".into(),
                "add".into(),
                va.clone(),
                "netns".into(),
                a.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                vb.clone(),
                "netns".into(),
                b.clone(),
            ],
        ];
        for step in steps {
            if !ip(&step) {
                return None;
            }
        }
        for (ns, dev, host) in [(a, &va, 1), (b, &vb, 2)] {
            let addr = format!("{}.{host}/24", lan.subnet);
            for step in [
                vec!["-n", ns, "link", "set", "lo", "up"],
                vec!["-n", ns, "addr", "add", &addr, "dev", dev],
                vec!["-n", ns, "link", "set", dev, "up", "multicast", "on"],
                vec!["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev],
            ] {
                if !ip(&step) {
                    return None;
                }
            }
        }
        Some(lan)
    }

    fn address(&self, host: u8) -> String {
        format!("{}.{host}", self.subnet)
    }

    /// `ferry ARGS` for `device`, inside namespace `ns`.
    fn ferry(&self, ns: usize, device: &Device, args: &[&str]) -> Command {
        common::in_netns(&self.names[ns], &device.process(args))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

#[test]
fn devices_on_one_lan_find_each_other_by_mdns_and_sync() {
    let Some(lan) = Lan::new() else {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to create network namespaces (root, iproute2)");
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and iproute2): mDNS is not tested");
        return;
    };
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    // No store from here on, and the only stored address is one where nothing answers: the
    // phone must find the laptop by mDNS (dialled first) and not be held up by it.
    laptop.ok(&["store", "rm", "1"]);
    phone.ok(&["store", "rm", "1"]);
    let laptop_id = laptop.ok(&["status", "--json"]);
    let laptop_id: serde_json::Value = serde_json::from_str(&laptop_id).unwrap();
    let laptop_id = laptop_id["device_id"].as_str().unwrap().to_owned();
    phone.ok(&["peers", "add", &laptop_id, &format!("{}:7420", lan.address(77))]);

    let serve = |ns: usize, device: &Device| {
        let mut cmd = lan.ferry(ns, device, &["serve", "--listen", "0.0.0.0:7420", "--interval", "3600"]);
        Running(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
    };
    let _laptop_daemon = serve(0, &laptop);
    let _phone_daemon = serve(1, &phone);
    laptop.ok(&["put", "notes", "lan", r#""found by mDNS""#]);

    let started = Instant::now();
    let mut synced = false;
    while started.elapsed() < Duration::from_secs(60) && !synced {
        std::thread::sleep(Duration::from_millis(200));
        synced = phone.run(&["get", "notes", "lan"]).code == 0;
    }
    assert!(synced, "the phone has the laptop's write within 60 s");
    eprintln!("found and synced over mDNS in {:?}", started.elapsed());

    // The phone's daemon (its API is on the namespace's loopback) says where it found the laptop.
    let out = lan.ferry(1, &phone, &["peers", "--json"]).output().unwrap();
    let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let laptop_address = format!("{}:7420", lan.address(1));
    assert_eq!(peers[0]["mdns_address"], serde_json::json!(laptop_address), "{peers}");
    assert_eq!(peers[0]["state"], serde_json::json!("connected"), "{peers}");
    // The mDNS address that worked is remembered (dialled first next time, after mDNS).
    assert_eq!(peers[0]["stored_addresses"][0], serde_json::json!(laptop_address), "{peers}");

    // And the other way, as both follow each other.
    phone.ok(&["put", "notes", "back", r#""from the phone""#]);
    let back = (0..150).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        laptop.run(&["get", "notes", "back"]).code == 0
    });
    assert!(back, "the laptop has the phone's write within 30 s");
}

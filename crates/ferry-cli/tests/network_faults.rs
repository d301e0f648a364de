//! Three devices on a line of two real (virtual) links, laptop — phone — tablet, each running
//! `ferry serve` in its own network namespace with no store: the laptop and the tablet cannot
//! reach each other, so everything between them is relayed by the phone. The links are then
//! slowed to a crawl (tc tbf), made to flap, cut and restored, and the phone's daemon is frozen
//! (SIGSTOP) and thawed; after each heal, writes must arrive. The times are printed (and kept in
//! docs/RELIABILITY.md against issue 23's goals); the assertions are ceilings. (tc netem, for
//! delay and random loss, is not in the kernels this runs on: a flapping link stands in for
//! loss, a bandwidth limit for delay.)
//!
//! Needs root and iproute2 (`ip netns`, `tc`). Where they are missing the test says so loudly
//! and passes, except under CI (`CI` set), where it fails: CI must run it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Device, Running, Store, ip, laptop_and_phone};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a write may take to cross after a link or a daemon came back (LAN backoff at most
/// 1.5 s, a long-poll at most 3 s, two hops, netem's delay): a generous ceiling, far below the
/// store interval of an hour.
const HEALED_WITHIN: Duration = Duration::from_secs(20);

/// Namespaces `l`, `p`, `t`; links l—p (10.214.N.0/24) and p—t (10.215.N.0/24). The phone does
/// not forward, so laptop and tablet never talk directly.
struct Line {
    ns: [String; 3],
    links: [(String, String); 2],
    n: u32,
}

impl Line {
    fn new() -> Option<Self> {
        let n = std::process::id() % 200 + 20;
        let ns = [format!("ferry{n}l"), format!("ferry{n}p"), format!("ferry{n}t")];
        let links = [(format!("fl{n}l"), format!("fl{n}pl")), (format!("fl{n}pt"), format!("fl{n}t"))];
        let line = Self { ns, links, n };
        let [l, p, t] = &line.ns;
        for name in &line.ns {
            if !ip(&["netns", "add", name]) || !ip(&["-n", name, "link", "set", "lo", "up"]) {
                return None;
            }
        }
        let ends = [(l, p, &line.links[0], format!("10.214.{n}")), (p, t, &line.links[1], format!("10.215.{n}"))];
        for (left_ns, right_ns, (left, right), subnet) in ends {
            let added =
                ip(&["link", "add", left, "netns", left_ns, "type", "veth", "peer", "name", right, "netns", right_ns]);
            let configured = [(left_ns, left, 1), (right_ns, right, 2)].into_iter().all(|(ns, dev, host)| {
                ip(&["-n", ns, "addr", "add", &format!("{subnet}.{host}/24"), "dev", dev])
                    && ip(&["-n", ns, "link", "set", dev, "up"])
            });
            if !added || !configured {
                return None;
            }
        }
        Some(line)
    }

    /// `ferry ARGS` for `device`, inside namespace `ns`.
    fn ferry(&self, ns: usize, device: &Device, args: &[&str]) -> Command {
        common::in_netns(&self.ns[ns], &device.process(args))
    }

    /// Sets (`Some`: `tc qdisc replace … root <spec>`) or clears the queueing discipline on
    /// both ends of a link: `link` 0 is laptop—phone, 1 phone—tablet.
    fn shape(&self, link: usize, spec: Option<&[&str]>) {
        let (left, right) = &self.links[link];
        for (ns, dev) in [(&self.ns[link], left), (&self.ns[link + 1], right)] {
            let mut args = vec!["netns", "exec", ns, "tc", "qdisc"];
            match spec {
                Some(spec) => {
                    args.extend(["replace", "dev", dev, "root"]);
                    args.extend_from_slice(spec);
                }
                None => args.extend(["del", "dev", dev, "root"]),
            }
            assert!(Command::new("ip").args(&args).status().unwrap().success(), "{args:?}");
        }
    }

    /// Takes a link down or up (both ends: a cable pulled, a Wi-Fi gone).
    fn link(&self, link: usize, up: bool) {
        let (left, right) = &self.links[link];
        for (ns, dev) in [(&self.ns[link], left), (&self.ns[link + 1], right)] {
            assert!(ip(&["-n", ns, "link", "set", dev, if up { "up" } else { "down" }]));
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn device_id(device: &Device) -> String {
    let status: serde_json::Value = serde_json::from_str(&device.ok(&["status", "--json"])).unwrap();
    status["device_id"].as_str().unwrap().to_owned()
}

/// How long until `device` has record `key`, or `None` after `within`.
fn arrives(device: &Device, key: &str, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if device.run(&["get", "notes", key]).code == 0 {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn signal(child: &Running, signal: &str) {
    let pid = child.0.id().to_string();
    // `ip netns exec` execs the program: the child's pid is ferry's.
    assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
}

#[test]
fn writes_cross_a_relaying_device_through_delay_loss_cuts_and_a_frozen_daemon() {
    let Some(line) = Line::new() else {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to create network namespaces (root, iproute2)");
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and iproute2): network faults untested");
        return;
    };
    let store = Store::new();
    let (laptop, phone) = laptop_and_phone(&store);
    let tablet = Device::new();
    tablet.ok(&["join", &store.url(), "--name", "tablet"]);
    phone.ok(&["sync"]);
    laptop.ok(&["sync"]);
    for device in [&laptop, &phone, &tablet] {
        device.ok(&["store", "rm", "1"]); // from here on, only the links carry data
    }
    let n = line.n;
    phone.ok(&["peers", "add", &device_id(&laptop), &format!("10.214.{n}.1:7420")]);
    phone.ok(&["peers", "add", &device_id(&tablet), &format!("10.215.{n}.2:7420")]);
    laptop.ok(&["peers", "add", &device_id(&phone), &format!("10.214.{n}.2:7420")]);
    tablet.ok(&["peers", "add", &device_id(&phone), &format!("10.215.{n}.1:7420")]);
    let logs = tempfile::tempdir().unwrap();
    let serve = |ns: usize, device: &Device| {
        // Each namespace has its own loopback: every daemon's local API can be 127.0.0.1:7421.
        let args = ["serve", "--listen", "0.0.0.0:7420", "--interval", "3600", "--no-mdns"];
        let log = std::fs::File::create(logs.path().join(format!("{ns}.log"))).unwrap();
        let mut command = line.ferry(ns, device, &args);
        command.env("FERRY_LOG", "info").stdout(Stdio::null()).stderr(log);
        Running(command.spawn().unwrap())
    };
    let log_of = |ns: usize| std::fs::read_to_string(logs.path().join(format!("{ns}.log"))).unwrap();
    // What the daemon in namespace `ns` says of the phone (the one peer both ends have).
    let phone_seen_by = |ns: usize, device: &Device| -> serde_json::Value {
        let out = line.ferry(ns, device, &["peers", "--json"]).output().unwrap();
        let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        peers.as_array().into_iter().flatten().find(|p| p["name"] == "phone").cloned().unwrap_or_default()
    };
    let _laptop_daemon = serve(0, &laptop);
    let phone_daemon = serve(1, &phone);
    let _tablet_daemon = serve(2, &tablet);

    // A healthy line: the laptop's write reaches the tablet through the phone.
    laptop.ok(&["put", "notes", "healthy", "1"]);
    let took = arrives(&tablet, "healthy", Duration::from_secs(30)).expect("relayed over a healthy line");
    eprintln!("healthy line, laptop to tablet over two hops: {took:?}");

    // Slow links (a bad Wi-Fi, a phone on one bar): 128 kbit/s each, and a 60 kB value. The
    // tablet shows how long it was behind the phone.
    let slow: &[&str] = &["tbf", "rate", "128kbit", "burst", "16kbit", "latency", "5s"];
    line.shape(0, Some(slow));
    line.shape(1, Some(slow));
    // Hex of a pseudo-random sequence: it does not compress below ~60 kB.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let noise: String = (0..120_000)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            char::from_digit(((state >> 60) & 0xf) as u32, 16).unwrap()
        })
        .collect();
    let big = format!("\"{noise}\"");
    laptop.run_stdin(&["put", "notes", "slow", "-"], &big).expect_code(0, &laptop.home);
    let took = arrives(&tablet, "slow", Duration::from_secs(90)).expect("relayed over slow links");
    eprintln!("128 kbit/s on both links, 60 kB value, laptop to tablet: {took:?}");
    let phone_as_seen = phone_seen_by(2, &tablet);
    let caught_up = phone_as_seen["last_catch_up_ms"].as_u64().unwrap_or(0);
    assert!(caught_up >= 2_000, "the tablet reports the slow catch-up: {phone_as_seen}");
    line.shape(0, None);
    line.shape(1, None);

    // A lossy link (20% of the time lost, in bursts): the tablet's goes down for 200 ms of every
    // second for 8 s while the laptop writes every 500 ms. Goal: writes arrive within 5 s (p95).
    let keys: Vec<String> = (0..10).map(|n| format!("lossy-{n}")).collect();
    let written = std::sync::Mutex::new(Vec::<(String, Instant)>::new());
    let mut lags: Vec<(String, Duration)> = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..8 {
                line.link(1, false);
                std::thread::sleep(Duration::from_millis(200));
                line.link(1, true);
                std::thread::sleep(Duration::from_millis(800));
            }
        });
        scope.spawn(|| {
            for (n, key) in keys.iter().enumerate() {
                std::thread::sleep(Duration::from_millis(500));
                laptop.ok(&["put", "notes", key, &n.to_string()]);
                written.lock().unwrap().push((key.clone(), Instant::now()));
            }
        });
        // The tablet is watched while the writes go on: each write's lag is from its put to the
        // first listing that shows it.
        let deadline = Instant::now() + Duration::from_secs(40);
        while lags.len() < keys.len() && Instant::now() < deadline {
            let held = tablet.ok(&["ls", "notes", "--json"]);
            for (key, at) in written.lock().unwrap().iter() {
                if held.contains(&format!("\"{key}\"")) && !lags.iter().any(|(k, _)| k == key) {
                    lags.push((key.clone(), at.elapsed()));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert_eq!(lags.len(), keys.len(), "every write arrives: {lags:?}");
    let mut sorted: Vec<Duration> = lags.iter().map(|(_, lag)| *lag).collect();
    sorted.sort();
    let p95 = sorted[(sorted.len() * 95).div_ceil(100) - 1];
    eprintln!("lossy link: catch-up lag p50 {:?}, p95 {p95:?}", sorted[sorted.len() / 2]);
    // The goal (5 s) is judged by the figures in docs/RELIABILITY.md; a test only catches a
    // link that does not recover (timed assertions here are ceilings, not goals).
    assert!(p95 <= Duration::from_secs(10), "catch-up lag p95 {p95:?} over a flapping link: {lags:?}");

    // The tablet's link is cut; the laptop writes meanwhile; the link comes back (goal: used
    // again within 2 s).
    line.link(1, false);
    laptop.ok(&["put", "notes", "while-cut", "3"]);
    assert!(arrives(&phone, "while-cut", Duration::from_secs(20)).is_some(), "the phone still gets it");
    std::thread::sleep(Duration::from_secs(8)); // long enough for the tablet's link to back off
    line.link(1, true);
    let took = arrives(&tablet, "while-cut", HEALED_WITHIN).expect("the tablet catches up once its link is back");
    eprintln!("link restored after 8 s down: tablet caught up in {took:?}");
    assert!(took <= Duration::from_secs(5), "a healed link is used again at once (goal 2 s), took {took:?}");

    // The relaying phone's daemon freezes (a laptop lid closed, a stopped container). Goal:
    // the laptop shows it as lost within 5 s (3 s long-poll + 2 s grace).
    signal(&phone_daemon, "-STOP");
    let frozen = Instant::now();
    laptop.ok(&["put", "notes", "while-frozen", "4"]);
    let mut noticed = None;
    while frozen.elapsed() < Duration::from_secs(15) && noticed.is_none() {
        if phone_seen_by(0, &laptop)["state"] != serde_json::json!("connected") {
            noticed = Some(frozen.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let noticed = noticed.expect("the laptop notices the frozen phone");
    eprintln!("frozen peer shown as lost after {noticed:?}");
    assert!(noticed <= Duration::from_secs(8), "a frozen peer is shown soon (goal 5 s), took {noticed:?}");
    std::thread::sleep(Duration::from_secs(8).saturating_sub(frozen.elapsed()));
    assert!(tablet.run(&["get", "notes", "while-frozen"]).code != 0, "nothing relays through a frozen daemon");
    signal(&phone_daemon, "-CONT");
    let took = arrives(&tablet, "while-frozen", HEALED_WITHIN).expect("writes flow again once the phone thaws");
    eprintln!("relay thawed after 8 s frozen: tablet caught up in {took:?}");

    // And the other way along the whole line.
    tablet.ok(&["put", "notes", "from-tablet", "5"]);
    let took = arrives(&laptop, "from-tablet", HEALED_WITHIN).expect("tablet to laptop");
    eprintln!("tablet to laptop: {took:?}");

    // What the daemons said: the laptop lost the frozen phone and found it again; the tablet
    // logged its imports.
    let laptop_log = log_of(0);
    assert!(laptop_log.contains("peer lost") && laptop_log.contains("peer connected"), "{laptop_log}");
    assert!(log_of(2).contains("imported from peer"), "{}", log_of(2));
    assert!(!laptop_log.contains(&laptop.passphrase), "no secret in the log");
}

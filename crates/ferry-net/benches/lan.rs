//! Peer-to-peer sync on loopback, measured in one run:
//!
//! 1. latency: a `put` on device A until the value is readable on device B, both running the
//!    daemon (long-poll followers, no store), over 200 writes a few tens of ms apart: p50, p95,
//!    max (goal: p50 ≤ 200 ms);
//! 2. initial sync of N records: a new device pulling them from a folder store, against
//!    another new device pulling the same records from a peer over mutual TLS — ratio peer/folder.
//!
//! Run: `cargo bench -p ferry-net --bench lan [-- --records N]` (default 1,000,000; `--quick`:
//! 20,000 records and 50 writes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;

use common::{daemon, join, open, quick, report, sync};
use ferry_engine::Vault;
use ferry_net::{PeerStore, Pins, ServerEvents, TlsIdentity, serve};
use serde_json::json;

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, store) = common::first_device(dir.path());
    let mut b = join(dir.path(), "b", &store);
    let mut folder_reader = join(dir.path(), "folder-reader", &store);
    let mut peer_reader = join(dir.path(), "peer-reader", &store);
    for vault in [&mut b, &mut folder_reader, &mut peer_reader] {
        sync(vault, &store);
    }
    sync(&mut a, &store);

    // 1. Latency between two daemons.
    let writes = if quick() { 50 } else { 200 };
    let daemons = [daemon(open(dir.path(), "a")), daemon(open(dir.path(), "b"))];
    a.add_peer(&b.device_id().to_string(), &daemons[1].peer_addr().unwrap().to_string()).unwrap();
    b.add_peer(&a.device_id().to_string(), &daemons[0].peer_addr().unwrap().to_string()).unwrap();
    a.put("warmup", "w", &json!(0)).unwrap();
    let started = Instant::now();
    while b.get("warmup", "w").unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the daemons never connected");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut latencies = Vec::with_capacity(writes);
    for n in 0..writes {
        let key = format!("k{n}");
        let written = Instant::now();
        a.put("latency", &key, &json!({ "n": n, "text": "a note typed on one device" })).unwrap();
        while b.get("latency", &key).unwrap().is_none() {
            assert!(written.elapsed() < Duration::from_secs(30), "write {n} never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(written.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(daemons);
    latencies.sort();
    let (p50, p95, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.95), latencies[writes - 1]);
    println!(
        "put on A → readable on B ({writes} writes, 2 daemons on loopback): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (goal p50 ≤ 200 ms: {})",
        ms(p50),
        ms(p95),
        ms(max),
        if p50 <= Duration::from_millis(200) { "met" } else { "MISSED" }
    );
    for (figure, value) in [("put on A → visible on B, p50", p50), ("put on A → visible on B, p95", p95)] {
        report::record(&report::Row {
            figure,
            value: ms(value),
            unit: "ms",
            reference: None,
            ratio: None,
            goal: report::Goal::AtMost(200.0),
            how: format!(
                "two daemons on loopback following each other (long-poll, no store); {writes} small writes 20 ms \
                 apart, each timed until readable on B; max {:.1} ms",
                ms(max)
            ),
        });
    }

    // 2. Initial sync: folder store against a peer.
    let records = common::record_count(1_000_000);
    for chunk in (0..records).collect::<Vec<_>>().chunks(100_000) {
        a.write(|w| {
            for &i in chunk {
                let value =
                    json!({ "title": format!("note {i}"), "body": "lorem ipsum dolor sit amet ".repeat(5), "n": i });
                w.put("bulk", &format!("{:016x}", (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)), &value)?;
            }
            Ok(())
        })
        .unwrap();
    }
    sync(&mut a, &store);
    let started = Instant::now();
    sync(&mut folder_reader, &store);
    let folder = started.elapsed();

    let identity = TlsIdentity::new(&a.device_signing_secret().unwrap()).unwrap();
    let pins = Pins::default();
    pins.set(a.active_device_keys().unwrap());
    let server =
        serve(open(dir.path(), "a"), &identity, pins.clone(), "127.0.0.1:0".parse().unwrap(), ServerEvents::default())
            .unwrap();
    let reader_identity = TlsIdentity::new(&peer_reader.device_signing_secret().unwrap()).unwrap();
    let peer = PeerStore::new(&server.addr().to_string(), &reader_identity, pins).unwrap();
    let started = Instant::now();
    peer_reader.pull_from_peer(&peer).unwrap();
    let over_peer = started.elapsed();
    let count = |v: &Vault| v.status().unwrap().records;
    assert_eq!(count(&folder_reader), count(&peer_reader));
    println!(
        "initial sync of {records} records: folder store {:.2} s, peer over mutual TLS {:.2} s (peer/folder time {:.2})",
        folder.as_secs_f64(),
        over_peer.as_secs_f64(),
        over_peer.as_secs_f64() / folder.as_secs_f64()
    );
}

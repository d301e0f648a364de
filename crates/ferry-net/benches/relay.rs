//! Three devices converging over peers, counted: device a holds S segments; the daemons of a, b
//! and c each follow the other two (b and c also serve each other what they imported); timed
//! until b and c hold everything. Every object each daemon served is counted, against the
//! minimum: each of a's segments crosses once to b and once to c.
//!
//! Rows: segment bytes served / minimum (goal ≤ 1.1: a segment is never fetched twice, from
//! either peer), and data requests (a pull asks for 32 segments at a time: goal ≤ 2 × ⌈S/32⌉
//! plus a few listings and HEAD reads per link).
//!
//! Run: `cargo bench -p ferry-net --bench relay [-- --segments S]` (default 1,000; `--quick`:
//! 100). Daemons listen on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;

use common::report::{Goal, Row, record};
use common::{first_device, join, number_arg, open, sync};
use ferry_net::{Daemon, DaemonConfig};
use std::time::{Duration, Instant};

const RECORDS_PER_SEGMENT: usize = 20;

fn main() {
    let segments = number_arg("--segments", 1_000, 100);
    let dir = tempfile::tempdir().unwrap();
    let (mut a, store) = first_device(dir.path());
    let (mut b, mut c) = (join(dir.path(), "b", &store), join(dir.path(), "c", &store));
    // Every device learns every other.
    sync(&mut b, &store);
    sync(&mut c, &store);
    sync(&mut a, &store);
    sync(&mut b, &store);
    for s in 0..segments {
        a.write(|w| {
            for r in 0..RECORDS_PER_SEGMENT {
                let body = format!(r#"{{"title":"note {s}-{r}","body":"{}"}}"#, "typed on a ".repeat(8));
                w.put_json("notes", &format!("{s:06}-{r:02}"), &body)?;
            }
            Ok(())
        })
        .unwrap();
        a.seal_local_writes().unwrap();
    }
    let a_log = format!("log/{}/", a.device_id());
    let segment_paths: Vec<String> =
        a.held_paths(&a_log).unwrap().into_iter().filter(|p| p.ends_with(".seg")).collect();
    assert_eq!(segment_paths.len(), segments);
    let segment_bytes: u64 = segment_paths.iter().map(|path| a.held_object(path).unwrap().unwrap().len() as u64).sum();

    // Each device knows where the other two listen, then all three start.
    let ports: Vec<u16> =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let ids = [a.device_id(), b.device_id(), c.device_id()];
    for (me, vault) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
        for other in (0..3).filter(|o| *o != me) {
            vault.add_peer(&ids[other].to_string(), &format!("127.0.0.1:{}", ports[other])).unwrap();
        }
    }
    let start = |name: &str, port: u16| {
        let config =
            DaemonConfig { listen: format!("127.0.0.1:{port}").parse().unwrap(), api: None, mdns: false, stores: None };
        Daemon::start(open(dir.path(), name), config).unwrap()
    };
    let daemons = [start("a", ports[0]), start("b", ports[1]), start("c", ports[2])];
    let started = Instant::now();
    let total = segments * RECORDS_PER_SEGMENT;
    while [&b, &c].iter().any(|v| (v.status().unwrap().records as usize) < total) {
        assert!(started.elapsed() < Duration::from_secs(600), "three devices did not converge");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let served: Vec<_> = daemons.iter().map(|d| d.served()).collect();
    let bytes: u64 = served.iter().map(|s| s.object_bytes).sum();
    let requests: u64 = served.iter().map(|s| s.data_requests).sum();
    let minimum = 2 * segment_bytes;
    println!(
        "3 devices, {segments} segments ({segment_bytes} B) from a: converged in {took:?}; served {bytes} B in \
         {requests} data requests (minimum {minimum} B); per daemon {served:?}"
    );
    record(&Row {
        figure: "3 devices converging over peers: bytes vs minimum",
        value: bytes as f64 / minimum as f64,
        unit: "× minimum",
        reference: None,
        ratio: None,
        goal: Goal::AtMost(1.1),
        how: format!(
            "a holds {segments} segments ({segment_bytes} B); b and c follow a and each other; every object the \
             three daemons served, over each segment once to b and once to c; converged in {took:.1?}"
        ),
    });
    // A pull asks for 32 segments at a time (`FETCH_AHEAD` in ferry-engine's pull).
    let batches = 2 * segments.div_ceil(32) as u64;
    record(&Row {
        figure: "3 devices converging over peers: data requests",
        value: requests as f64,
        unit: "requests",
        reference: None,
        ratio: None,
        goal: Goal::AtMost((batches + 40) as f64),
        how: format!(
            "{batches} batches of 32 segments is the floor; the rest are device listings and HEAD reads, \
             one each per link and change"
        ),
    });
}

//! Replication throughput against physical limits, measured in the same run:
//!
//! 1. seal: `ferry_format::seal` (zstd, XChaCha20-Poly1305, HKDF, Ed25519) of real segment
//!    payloads, against raw XChaCha20-Poly1305 of the same payload bytes, and against raw zstd +
//!    XChaCha20-Poly1305 (the same work minus key derivation and signature);
//! 2. pull + import: a device pulls N records (~200 B JSON, pseudo-random keys) that another
//!    device pushed to a folder store, against one raw INSERT per row into a plain SQLCipher
//!    table with the same pragmas;
//! 3. peak RSS of the pulling process (a child process, so nothing else counts).
//!
//! Run: `cargo bench -p ferry-engine --bench sync [-- --records N] [--time-ordered-keys]`
//! (default 1,000,000 records with pseudo-random keys; `--quick`: 20,000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;

use common::workload::{BATCH, Joined, child_args, join_child, join_in_child, key, raw_insert, unlock, value, walk};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ferry_engine::{CreateOptions, Direction, Home, StoreHandle, Vault};
use ferry_format::objects::{SegmentPayload, WireOp, encode};
use ferry_format::seal::{Expected, ObjectId, ObjectKind, SealKeys, open, seal};
use ferry_format::{Collection, DeviceId, Hlc, MasterKey, Op, OpId, OpKind, RecordKey, VaultId};
use ferry_store::FolderStore;
use std::time::Instant;

/// Median of `runs` timings of `f`, in seconds.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn bench_seal() {
    let device = DeviceId::from_bytes([2; 16]);
    let ops: Vec<WireOp> = (0..BATCH)
        .map(|i| {
            WireOp::from_op(&Op {
                id: OpId { device, counter: i as u64 + 1 },
                hlc: Hlc::from_u64(1 << 40 | i as u64),
                collection: Collection::new("notes").unwrap(),
                key: RecordKey::new(&key(i)).unwrap(),
                kind: OpKind::put_json(&value(i)).unwrap(),
                parents: vec![],
            })
        })
        .collect();
    let payload = encode(&SegmentPayload { seq: 1, prev: None, ops });
    let master = MasterKey::new([7; 32]);
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let keys = SealKeys { epoch: 0, master_key: &master, signing_key: &signing };
    let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
    let nonce = XNonce::from([3u8; 24]);
    let runs = 9;
    let mut sealed = Vec::new();
    let ferry = median(runs, || {
        sealed = seal(
            ObjectKind::Segment,
            VaultId::from_bytes([1; 16]),
            device,
            ObjectId::segment(1),
            [3; 24],
            &keys,
            &payload,
        )
        .unwrap();
    });
    let sealed_len = sealed.len();
    let aead = median(runs, || {
        cipher.encrypt(&nonce, Payload { msg: &payload, aad: b"header" }).unwrap();
    });
    let zstd_aead = median(runs, || {
        let compressed = zstd::bulk::compress(&payload, 1).unwrap();
        cipher.encrypt(&nonce, Payload { msg: &compressed, aad: b"header" }).unwrap();
    });
    let mib = payload.len() as f64 / (1024.0 * 1024.0);
    println!(
        "seal: one segment of {BATCH} ops, {mib:.1} MiB of CBOR payload (sealed: {:.1} MiB), median of {runs}",
        sealed_len as f64 / 1048576.0
    );
    println!("{:<28} {:>10} {:>12} {:>14}", "", "ms", "MiB/s", "ferry / this");
    for (name, seconds) in
        [("raw XChaCha20-Poly1305", aead), ("raw zstd + XChaCha20-Poly1305", zstd_aead), ("ferry seal", ferry)]
    {
        println!("{name:<28} {:>10.1} {:>12.0} {:>14.2}", seconds * 1e3, mib / seconds, seconds / ferry);
    }
    println!("ratio to raw AEAD: {:.2}; to raw zstd + AEAD: {:.2} (goal >= 0.85)", aead / ferry, zstd_aead / ferry);

    // Opening: ferry's checks (identity, Ed25519 signature, AEAD, zstd) against raw AEAD
    // decryption + zstd decompression of the same bytes.
    let expected = Expected {
        kind: ObjectKind::Segment,
        vault_id: VaultId::from_bytes([1; 16]),
        device_id: Some(device),
        object_id: Some(ObjectId::segment(1)),
    };
    let verifying = signing.verifying_key();
    let ferry_open = median(runs, || {
        let (_, opened) = open(&sealed, &expected, |_| Some(verifying), |_| Some(&master)).unwrap();
        assert_eq!(opened.len(), payload.len());
    });
    let compressed = zstd::bulk::compress(&payload, 1).unwrap();
    let encrypted = cipher.encrypt(&nonce, Payload { msg: &compressed, aad: b"header" }).unwrap();
    let raw_open = median(runs, || {
        let decrypted = cipher.decrypt(&nonce, Payload { msg: &encrypted, aad: b"header" }).unwrap();
        zstd::bulk::decompress(&decrypted, payload.len()).unwrap();
    });
    println!(
        "open: ferry {:.1} ms, raw XChaCha20-Poly1305 + zstd {:.1} ms, ratio {:.2} (goal >= 0.85)",
        ferry_open * 1e3,
        raw_open * 1e3,
        raw_open / ferry_open
    );
    let how = format!(
        "one segment of {BATCH} ops ({mib:.1} MiB of CBOR, deterministic records), zstd level 1; median of {runs} runs"
    );
    for (figure, ferry_seconds, reference, raw_seconds) in [
        ("seal throughput", ferry, "raw zstd + XChaCha20-Poly1305", zstd_aead),
        ("open throughput", ferry_open, "raw XChaCha20-Poly1305 + unzstd", raw_open),
    ] {
        common::report::record(&common::report::Row {
            figure,
            value: mib / ferry_seconds,
            unit: "MiB/s",
            reference: Some((reference, mib / raw_seconds)),
            ratio: Some(raw_seconds / ferry_seconds),
            goal: common::report::Goal::RatioAtLeast(0.85),
            how: how.clone(),
        });
    }
}

fn bench_pull(count: usize) {
    let dir = tempfile::tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = FolderStore::new(&store_dir);
    let home = Home::new(dir.path().join("writer"));
    let mut writer = Vault::create_for_store(
        &home,
        CreateOptions { device_name: "writer".into(), unlock: unlock() },
        "bench",
        &store,
    )
    .unwrap()
    .vault;
    let indices: Vec<usize> = (0..count).collect();
    for batch in indices.chunks(BATCH) {
        writer
            .write(|w| {
                for &i in batch {
                    w.put_json("notes", &key(i), &value(i))?;
                }
                Ok(())
            })
            .unwrap();
    }
    let push_start = Instant::now();
    let pushed = writer
        .sync(StoreHandle { id: writer.stores().unwrap()[0].id, store: &store }, Direction::Push)
        .unwrap()
        .push
        .unwrap();
    let push_seconds = push_start.elapsed().as_secs_f64();
    let store_bytes: u64 = walk(&store_dir);

    let raw = raw_insert(dir.path(), count);
    let Joined { seconds: pull_seconds, peak_kib, imported } = join_in_child(&dir.path().join("reader"), &store_dir);
    assert_eq!(imported, count as u64);

    let order = if std::env::args().any(|a| a == "--time-ordered-keys") { "time-ordered" } else { "pseudo-random" };
    println!("\npull + import: {count} records of ~200 B JSON, {order} keys, from a folder store");
    println!(
        "  push (seal + write {} segments, {:.1} MiB in the store): {push_seconds:.2} s",
        pushed.uploaded_segments,
        store_bytes as f64 / 1048576.0
    );
    println!("{:<32} {:>10} {:>14} {:>14}", "", "seconds", "records/s", "ferry / this");
    for (name, seconds) in [("raw insert (plain table)", raw), ("ferry join + pull + import", pull_seconds)] {
        println!("{name:<32} {seconds:>10.2} {:>14.0} {:>14.2}", count as f64 / seconds, seconds / pull_seconds);
    }
    println!("ratio to raw insert: {:.2} (goal >= 0.50)", raw / pull_seconds);
    println!("peak RSS of the pulling process: {:.0} MiB (goal <= 200 MiB)", peak_kib as f64 / 1024.0);
    let how = format!(
        "{count} records of ~200 B JSON, {order} keys (deterministic), pushed to a folder store in \
         {} segments; a new device (child process) joins, pulls and imports; one run; raw: one \
         prepared INSERT per row into a plain SQLCipher table, same pragmas",
        pushed.uploaded_segments
    );
    common::report::record(&common::report::Row {
        figure: "pull + import from a folder store",
        value: count as f64 / pull_seconds,
        unit: "records/s",
        reference: Some(("raw SQLite insert", count as f64 / raw)),
        ratio: Some(raw / pull_seconds),
        goal: common::report::Goal::RatioAtLeast(0.5),
        how: how.clone(),
    });
    common::report::record(&common::report::Row {
        figure: "peak RSS, import",
        value: peak_kib as f64 / 1024.0,
        unit: "MiB",
        reference: None,
        ratio: None,
        goal: common::report::Goal::AtMost(200.0),
        how: format!("VmHWM of the pulling child process; {how}"),
    });
}

fn main() {
    if let Some((home, store)) = child_args() {
        return join_child(&home, &store, |_| {});
    }
    let count = common::record_count();
    bench_seal();
    bench_pull(count);
}

//! Push and pull through a local S3-compatible server (`s3s-fs` on 127.0.0.1), with requests and
//! bytes per record, against `restic backup` of the same records (as files) to the same server,
//! in the same run.
//!
//! Run: `cargo bench -p ferry-engine --bench s3 [-- --records N]` (default 100,000; `--quick`
//! 20,000 as for every bench; needs `s3s-fs`, and `restic` for the comparison).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;
#[path = "../tests/support/s3_server.rs"]
mod s3_server;

use ferry_engine::{
    CreateOptions, Direction, Home, JoinOptions, JoinWith, KdfCost, Passphrase, StoreHandle, Unlock, Vault,
};
use ferry_store::CountingStore;
use s3_server::{BUCKET, CREDENTIALS_ENV, Kind, Server};
use std::time::Instant;

fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("bench"), kdf_cost: KdfCost::WorkFactor(10) }
}

fn value(i: usize) -> String {
    format!(
        r#"{{"body":"{}","n":{i},"tags":["bench","ferry"],"title":"note {i}"}}"#,
        "lorem ipsum dolor sit amet ".repeat(5)
    )
}

fn main() {
    let count =
        if std::env::args().any(|a| a == "--records" || a == "--quick") { common::record_count() } else { 100_000 };
    let Some(server) = Server::start(Kind::S3sFs) else {
        println!("s3 bench skipped: s3s-fs is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::new(server.store("ferry-bench"));
    let mut writer = Vault::create_for_store(
        &Home::new(dir.path().join("w")),
        CreateOptions { device_name: "w".into(), unlock: unlock() },
        "s3",
        &store,
    )
    .unwrap()
    .vault;
    writer.sync(StoreHandle { id: writer.stores().unwrap()[0].id, store: &store }, Direction::Push).unwrap();
    for batch in (0..count).collect::<Vec<_>>().chunks(10_000) {
        writer
            .write(|w| {
                for &i in batch {
                    w.put_json("notes", &format!("note-{i:08}"), &value(i))?;
                }
                Ok(())
            })
            .unwrap();
    }
    store.reset();
    let start = Instant::now();
    writer.sync(StoreHandle { id: writer.stores().unwrap()[0].id, store: &store }, Direction::Push).unwrap();
    let push = start.elapsed().as_secs_f64();
    let pushed = store.counts();

    store.reset();
    let start = Instant::now();
    let mut reader = Vault::join(
        &Home::new(dir.path().join("r")),
        JoinOptions { device_name: "r".into(), unlock: unlock(), with: JoinWith::Passphrase },
        "s3",
        &store,
    )
    .unwrap();
    reader.sync(StoreHandle { id: reader.stores().unwrap()[0].id, store: &store }, Direction::Pull).unwrap();
    let pull = start.elapsed().as_secs_f64();
    let pulled = store.counts();
    assert_eq!(reader.status().unwrap().records as usize, count);

    println!("S3 (s3s-fs on 127.0.0.1), {count} records of ~200 B JSON");
    println!("{:<34} {:>9} {:>12} {:>14} {:>16}", "", "seconds", "records/s", "requests", "bytes sent/rec");
    println!(
        "{:<34} {push:>9.2} {:>12.0} {:>14} {:>16.1}",
        "ferry push (seal + upload)",
        count as f64 / push,
        pushed.total(),
        pushed.bytes_written as f64 / count as f64
    );
    println!(
        "{:<34} {pull:>9.2} {:>12.0} {:>14} {:>16}",
        "ferry join + pull + import",
        count as f64 / pull,
        pulled.total(),
        "-"
    );

    // restic, the same records as files, to the same server.
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    for i in 0..count {
        std::fs::write(files.join(format!("note-{i:08}.json")), value(i)).unwrap();
    }
    let repository = format!("s3:http://127.0.0.1:{}/{BUCKET}/restic", server.port);
    let restic = |args: &[&str]| {
        std::process::Command::new("restic")
            .args(args)
            .args(["--repo", &repository, "--quiet", "--no-cache"])
            .envs(CREDENTIALS_ENV)
            .env("RESTIC_PASSWORD", "bench")
            .output()
    };
    match restic(&["init"]) {
        Ok(output) if output.status.success() => {
            let start = Instant::now();
            let output = restic(&["backup", files.to_str().unwrap()]).unwrap();
            let seconds = start.elapsed().as_secs_f64();
            assert!(output.status.success(), "restic backup failed: {}", String::from_utf8_lossy(&output.stderr));
            println!(
                "{:<34} {seconds:>9.2} {:>12.0} {:>14} {:>16}",
                "restic backup (same records as files)",
                count as f64 / seconds,
                "-",
                "-"
            );
            println!("ferry push is {:.1}x the speed of restic backup (goal: faster)", seconds / push);
            common::report::record(&common::report::Row {
                figure: "push to a local S3 server",
                value: count as f64 / push,
                unit: "records/s",
                reference: Some(("restic backup of the same records as files", count as f64 / seconds)),
                ratio: Some(seconds / push),
                goal: common::report::Goal::Faster,
                how: format!(
                    "{count} records of ~200 B JSON (deterministic), s3s-fs on 127.0.0.1; ferry: seal + upload \
                     ({} requests); restic: `backup` of one file per record to the same server; one run each",
                    pushed.total()
                ),
            });
        }
        Ok(output) => {
            println!("restic comparison skipped: restic init failed: {}", String::from_utf8_lossy(&output.stderr))
        }
        Err(err) => println!("restic comparison skipped: restic is not installed ({err})"),
    }
}

//! Two devices converging over the LAN, against Syncthing doing the same with the same data:
//!
//! - ferry: device A holds N records (~200 B of JSON each, deterministic); A's daemon runs; B's
//!   daemon starts knowing A's address (no store) and is timed until B holds all N records.
//! - Syncthing (the Debian package): instance A shares a folder of the same N records, one file
//!   each, and has finished scanning it; instance B starts with an empty folder and is timed
//!   until all N files are there. Both instances listen on loopback only, with discovery,
//!   relays and NAT off.
//!
//! Run: `cargo bench -p ferry-net --bench converge [-- --records N]` (default 10,000;
//! `--quick`: 2,000). Needs `syncthing` on the PATH for the comparison. The default is not the
//! 100,000 of the suite's issue because Syncthing's time grows faster than the file count here
//! (2,000 files: 4.5 s; 10,000: 43.5 s), so 100,000 would not fit the suite's 15 minutes.
//! `--records 100000` runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on failure

mod common;

use common::{daemon, join, open, quick, report, sync};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn value(i: usize) -> String {
    format!(
        r#"{{"body":"{}","n":{i},"tags":["bench","ferry"],"title":"note {i}"}}"#,
        "lorem ipsum dolor sit amet ".repeat(5)
    )
}

fn key(i: usize) -> String {
    format!("{:016x}", (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Waits until `done` holds, checking every `every`, for at most `limit`.
fn wait_until(limit: Duration, every: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        std::thread::sleep(every);
    }
    started.elapsed()
}

fn ferry_convergence(dir: &Path, count: usize) -> Duration {
    let (mut a, store) = common::first_device(dir);
    // b joins through the store (with nothing to pull yet), and a learns of b: each pins the other.
    let mut b = join(dir, "b", &store);
    sync(&mut b, &store);
    sync(&mut a, &store);
    drop(b);
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        a.write(|w| {
            for &i in chunk {
                w.put_json("notes", &key(i), &value(i))?;
            }
            Ok(())
        })
        .unwrap();
    }
    a.seal_local_writes().unwrap();
    let a_daemon = daemon(open(dir, "a"));
    let mut b = open(dir, "b");
    b.add_peer(&a.device_id().to_string(), &a_daemon.peer_addr().unwrap().to_string()).unwrap();
    let started = Instant::now();
    let _b_daemon = daemon(open(dir, "b"));
    wait_until(Duration::from_secs(900), Duration::from_millis(20), "ferry convergence", || {
        b.status().unwrap().records as usize >= count
    });
    started.elapsed()
}

/// A Syncthing instance, stopped when dropped. `syncthing serve` runs a monitor process and the
/// real one as its child, so each instance gets a process group of its own and the whole group
/// is stopped.
struct Syncthing(Child);

impl Drop for Syncthing {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Instance {
    home: PathBuf,
    folder: PathBuf,
    id: String,
    port: u16,
    gui: u16,
}

fn instance(dir: &Path, name: &str) -> Option<Instance> {
    let home = dir.join(format!("st-{name}"));
    let folder = dir.join(format!("st-{name}-folder"));
    std::fs::create_dir_all(folder.join(".stfolder")).unwrap();
    let generated = Command::new("syncthing")
        .args(["generate", "--no-default-folder", "--home"])
        .arg(&home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    assert!(generated.success(), "syncthing generate failed");
    let output = Command::new("syncthing").args(["serve", "--device-id", "--home"]).arg(&home).output().unwrap();
    let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    Some(Instance { home, folder, id, port: free_port(), gui: free_port() })
}

fn configure(me: &Instance, other: &Instance) {
    let device = |i: &Instance, name: &str| {
        format!(
            r#"<device id="{}" name="{name}" compression="metadata"><address>tcp://127.0.0.1:{}</address></device>"#,
            i.id, i.port
        )
    };
    let config = format!(
        r#"<configuration version="36">
  <folder id="bench" label="bench" path="{folder}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="false">
    <device id="{me_id}"></device>
    <device id="{other_id}"></device>
  </folder>
  {me_device}
  {other_device}
  <gui enabled="true" tls="false"><address>127.0.0.1:{gui}</address><apikey>bench</apikey></gui>
  <options>
    <listenAddress>tcp://127.0.0.1:{port}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>false</relaysEnabled>
    <natEnabled>false</natEnabled>
    <urAccepted>-1</urAccepted>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <startBrowser>false</startBrowser>
    <crashReportingEnabled>false</crashReportingEnabled>
    <reconnectionIntervalS>1</reconnectionIntervalS>
  </options>
</configuration>
"#,
        folder = me.folder.display(),
        me_id = me.id,
        other_id = other.id,
        me_device = device(me, "me"),
        other_device = device(other, "other"),
        gui = me.gui,
        port = me.port,
    );
    std::fs::write(me.home.join("config.xml"), config).unwrap();
}

fn start(instance: &Instance) -> Syncthing {
    let child = Command::new("syncthing")
        .args(["serve", "--no-browser", "--no-restart", "--home"])
        .arg(&instance.home)
        .env("STNOUPGRADE", "1")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Syncthing(child)
}

/// Whether instance `gui` has scanned `count` files of the folder and is idle (its REST API).
fn scanned(gui: u16, count: usize) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", gui)) else { return false };
    let request =
        format!("GET /rest/db/status?folder=bench HTTP/1.0\r\nHost: 127.0.0.1:{gui}\r\nX-API-Key: bench\r\n\r\n");
    if std::io::Write::write_all(&mut stream, request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    if std::io::Read::read_to_string(&mut stream, &mut answer).is_err() {
        return false;
    }
    let Some((_, body)) = answer.split_once("\r\n\r\n") else { return false };
    let Ok(status) = serde_json::from_str::<serde_json::Value>(body) else { return false };
    status["localFiles"].as_u64() == Some(count as u64) && status["state"] == "idle"
}

fn files_in(folder: &Path) -> usize {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count()
        })
        .unwrap_or(0)
}

fn syncthing_convergence(dir: &Path, count: usize) -> Option<Duration> {
    let a = instance(dir, "a")?;
    let b = instance(dir, "b")?;
    configure(&a, &b);
    configure(&b, &a);
    for i in 0..count {
        std::fs::write(a.folder.join(format!("{}.json", key(i))), value(i)).unwrap();
    }
    let _a = start(&a);
    wait_until(Duration::from_secs(900), Duration::from_millis(200), "syncthing's scan of A", || scanned(a.gui, count));
    let started = Instant::now();
    let _b = start(&b);
    wait_until(Duration::from_secs(1800), Duration::from_millis(100), "syncthing convergence", || {
        files_in(&b.folder) >= count
    });
    Some(started.elapsed())
}

fn main() {
    let count = if quick() { 2_000 } else { common::record_count(10_000) };
    let dir = tempfile::tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    let ferry = ferry_convergence(&dir.path().join("ferry"), count);
    println!("2-device convergence of {count} records over loopback: ferry {:.2} s", ferry.as_secs_f64());
    let Some(syncthing) = syncthing_convergence(&dir.path().join("syncthing"), count) else {
        println!("syncthing comparison skipped: syncthing is not installed (apt install syncthing)");
        return;
    };
    let ratio = syncthing.as_secs_f64() / ferry.as_secs_f64();
    println!(
        "syncthing {:.2} s for the same records as files: ferry is {ratio:.1}x the speed (goal: faster)",
        syncthing.as_secs_f64()
    );
    report::record(&report::Row {
        figure: "2-device convergence over LAN peers",
        value: count as f64 / ferry.as_secs_f64(),
        unit: "records/s",
        reference: Some(("syncthing, same records as files", count as f64 / syncthing.as_secs_f64())),
        ratio: Some(ratio),
        goal: report::Goal::Faster,
        how: format!(
            "{count} records of ~200 B JSON (deterministic); the source side ready (ferry: ops sealed, daemon \
             up; Syncthing: folder scanned, idle), timed from starting the receiving side until it holds \
             every record; loopback only; one run each"
        ),
    });
}

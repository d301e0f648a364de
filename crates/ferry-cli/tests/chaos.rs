//! The chaos harness: three devices of one vault share a store (a folder; a bucket of a real
//! S3 server); rounds of real `ferry` processes are killed at random instants (put, large put,
//! sync, blob put, forget, pairing, the daemon) and the store is damaged between rounds (objects
//! deleted, truncated, rolled back, duplicated under stray names). Then every device checks and syncs until quiet, and the
//! harness holds them to an append-only log of acknowledged writes (a `ferry put` that exited
//! 0): nothing acknowledged is lost, every device holds identical records, no object stays
//! skipped, no process panicked, no device is stuck.
//!
//! Size and seed from the environment (CI runs the default, small size):
//! `FERRY_CHAOS_KILLS=1000 FERRY_CHAOS_FAULTS=1000 FERRY_CHAOS_SEED=7 cargo test -p ferry-cli
//! --release --test chaos -- --nocapture` (docs/RELIABILITY.md has the figures).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;
#[path = "../../ferry-engine/tests/support/s3_server.rs"]
mod s3_server;

use common::{Device, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A device and the environment its commands need for the store (S3 credentials).
struct Node {
    device: Device,
    env: Vec<(&'static str, &'static str)>,
}

impl Node {
    fn process(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.device.process(args);
        command.envs(self.env.iter().copied());
        command
    }

    fn run(&self, args: &[&str]) -> common::Run {
        self.device.run_with(assert_cmd::Command::from_std(self.process(args)), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        run.expect_code(0, &self.device.home);
        run.stdout
    }
}

/// Where the store is: its location, the folder its objects are files in, what commands need.
struct Backend {
    url: String,
    root: PathBuf,
    env: Vec<(&'static str, &'static str)>,
}

/// A small deterministic generator (xorshift64*): a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What a process killed at a random instant did.
#[derive(Default, Debug)]
struct Tally {
    killed: u64,
    finished: u64,
    faults: u64,
    acknowledged: u64,
}

/// Runs `args` on `device` with `input` on stdin, killed after `after` if still running; its
/// exit code (None when killed) and stderr.
fn run_killed(
    device: &Node,
    args: &[&str],
    input: Option<String>,
    after: Duration,
    tally: &mut Tally,
) -> (Option<i32>, String) {
    let mut child =
        device.process(args).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A process killed while reading its input breaks the pipe: that is expected.
    let feeder = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, input.unwrap_or_default().as_bytes());
    });
    let outcome = wait_or_kill(&mut child, after, tally);
    let _ = feeder.join();
    outcome
}

fn wait_or_kill(child: &mut std::process::Child, after: Duration, tally: &mut Tally) -> (Option<i32>, String) {
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            tally.finished += 1;
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            tally.killed += 1;
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (None, stderr);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts `pair invite` on `inviter` and `pair accept` on `new`, and kills both after
/// `after` (the invite waits for a typed code that never comes: it never finishes alone).
fn pair_killed(inviter: &Node, new: &Node, after: Duration, tally: &mut Tally, panics: &mut Vec<String>) -> String {
    use std::io::BufRead;
    let mut invite = inviter
        .process(&["pair", "invite", "--expires", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(invite.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let Some(token) = line.trim().strip_prefix("ferry pair accept ").map(|t| t.trim_matches('\'').to_owned()) else {
        let _ = invite.kill();
        let (_, stderr) = wait_or_kill(&mut invite, Duration::ZERO, tally);
        return format!("no invite: {stderr}");
    };
    let mut accept = new
        .process(&["pair", "accept", &token, "--name", "new"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (accepted, accept_err) = wait_or_kill(&mut accept, after, tally);
    let (invited, invite_err) = wait_or_kill(&mut invite, Duration::ZERO, tally);
    for stderr in [&accept_err, &invite_err] {
        if stderr.contains("panicked") {
            panics.push(format!("ferry pair: {stderr}"));
        }
    }
    format!("accept {accepted:?}, invite {invited:?}")
}

fn store_objects(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Damages the store the way shares, disks and sync tools do; returns what it did.
fn damage(root: &Path, rng: &mut Rng, old_heads: &mut BTreeMap<PathBuf, Vec<u8>>) -> String {
    let objects: Vec<PathBuf> = store_objects(root)
        .into_iter()
        // The passphrase slot is the one object no device can write again (no device keeps
        // the passphrase): losing it is recovered with `ferry key passphrase`, not by sync.
        .filter(|p| !p.to_string_lossy().ends_with("passphrase.age") && !p.to_string_lossy().contains(".ferry-tmp"))
        .collect();
    if objects.is_empty() {
        return "nothing to damage".into();
    }
    let victim = rng.pick(&objects).clone();
    let name = victim.strip_prefix(root).unwrap().display().to_string();
    match rng.below(4) {
        0 => {
            std::fs::remove_file(&victim).unwrap();
            format!("deleted {name}")
        }
        1 => {
            let bytes = std::fs::read(&victim).unwrap();
            let keep = rng.below(bytes.len() as u64) as usize;
            std::fs::write(&victim, &bytes[..keep]).unwrap();
            format!("truncated {name} to {keep} of {} bytes", bytes.len())
        }
        2 => {
            let heads: Vec<(PathBuf, Vec<u8>)> =
                old_heads.iter().filter(|(p, _)| p.exists()).map(|(p, b)| (p.clone(), b.clone())).collect();
            if heads.is_empty() {
                return "no older HEAD to roll back to".into();
            }
            let (head, bytes) = rng.pick(&heads).clone();
            std::fs::write(&head, bytes).unwrap();
            format!("rolled back {}", head.strip_prefix(root).unwrap().display())
        }
        _ => {
            let file_name = victim.file_name().unwrap().to_string_lossy().into_owned();
            let original = file_name.split(".sync-conflict-").next().unwrap_or_default();
            let stray = victim.with_file_name(format!("{original}.sync-conflict-20261202-{}", rng.below(1_000_000)));
            std::fs::copy(&victim, &stray).unwrap();
            format!("duplicated {name} as a sync conflict")
        }
    }
}

fn remember_heads(root: &Path, old_heads: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for path in store_objects(root) {
        if path.file_name().is_some_and(|n| n == "HEAD") {
            old_heads.entry(path.clone()).or_insert_with(|| std::fs::read(&path).unwrap());
        }
    }
}

fn records(device: &Node) -> BTreeMap<String, String> {
    let listed: serde_json::Value = serde_json::from_str(&device.ok(&["ls", "notes", "--json"])).unwrap();
    listed.as_array().unwrap().iter().map(|r| (r["key"].as_str().unwrap().to_owned(), r["value"].to_string())).collect()
}

#[test]
fn killed_processes_and_a_damaged_folder_store_lose_nothing_acknowledged() {
    let store = Store::new();
    let root = store.dir.path().join("ferry");
    chaos(&Backend { url: store.url(), root, env: Vec::new() });
}

#[test]
fn killed_processes_and_a_damaged_bucket_lose_nothing_acknowledged() {
    // s3s-fs keeps each object as a file: the harness damages them there, behind the server.
    let Some(server) = s3_server::Server::start(s3_server::Kind::S3sFs) else { return };
    let env = s3_server::CREDENTIALS_ENV.to_vec();
    chaos(&Backend { url: server.url("chaos"), root: server.objects_dir("chaos"), env });
}

fn chaos(backend: &Backend) {
    let kills = env_number("FERRY_CHAOS_KILLS", 30);
    let faults = env_number("FERRY_CHAOS_FAULTS", 30);
    let seed = env_number("FERRY_CHAOS_SEED", u64::from(std::process::id()) | 1);
    eprintln!("chaos: {kills} kills, {faults} store faults, seed {seed} (FERRY_CHAOS_SEED replays it)");
    let mut rng = Rng(seed);
    let root = &backend.root;
    let node = || Node { device: Device::new(), env: backend.env.clone() };
    let (laptop, phone, tablet) = (node(), node(), node());
    laptop.ok(&["init", "--name", "laptop", "--store", &backend.url]);
    phone.ok(&["join", &backend.url, "--name", "phone"]);
    tablet.ok(&["join", &backend.url, "--name", "tablet"]);
    let devices = [&laptop, &phone, &tablet];
    let work = tempfile::tempdir().unwrap();
    let blob_file = work.path().join("blob.bin");
    std::fs::write(
        &blob_file,
        (0..1_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();

    let mut truth: BTreeMap<String, String> = BTreeMap::new(); // acknowledged: key -> value
    let mut tally = Tally::default();
    let mut old_heads = BTreeMap::new();
    let mut panics = Vec::new();
    let mut log = Vec::new();
    let rounds = kills.max(faults);
    for round in 0..rounds {
        let d = rng.below(3) as usize;
        let device = devices[d];
        if round < kills && rng.below(8) == 0 {
            // Pairing a new device, both halves killed at a random instant.
            let after = Duration::from_millis(rng.below(1_500));
            let what = pair_killed(device, &node(), after, &mut tally, &mut panics);
            log.push(format!("{round}: pairing from device {d}: {what}"));
        } else if round < kills {
            let key = format!("r{round}-d{d}");
            let mut input = None;
            let mut value = format!("{round}");
            let (args, after): (Vec<String>, u64) = match rng.below(6) {
                // Half the small writes run to the end: the ground truth grows.
                0 => (vec!["put".into(), "notes".into(), key.clone(), value.clone()], 30_000),
                1 => (vec!["put".into(), "notes".into(), key.clone(), value.clone()], rng.below(40)),
                2 => {
                    value = format!("\"{}\"", "x".repeat(300_000 + rng.below(200_000) as usize));
                    input = Some(value.clone());
                    (vec!["put".into(), "notes".into(), key.clone(), "-".into()], rng.below(80))
                }
                3 => (vec!["sync".into()], rng.below(80)),
                4 if rng.below(2) == 0 => {
                    (vec!["blob".into(), "put".into(), blob_file.display().to_string()], rng.below(60))
                }
                // A prune that keeps no history and deletes at once: compaction, a snapshot,
                // then deletes in the store, any of them cut short.
                4 => {
                    (["prune", "--keep", "0", "--grace", "0"].iter().map(|a| (*a).to_owned()).collect(), rng.below(120))
                }
                _ => {
                    if rng.below(2) == 0 {
                        (vec!["forget".into(), "scratch".into(), "--all".into()], rng.below(50))
                    } else {
                        (vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()], 50 + rng.below(600))
                    }
                }
            };
            if args[0] == "forget" {
                device.ok(&["put", "scratch", &key, "1"]);
                input = Some("forget\n".into()); // the confirmation it asks for
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, stderr) = run_killed(device, &args, input, Duration::from_millis(after), &mut tally);
            if stderr.contains("panicked") {
                panics.push(format!("ferry {}: {stderr}", args[0]));
            }
            if args[0] == "put" && code == Some(0) {
                truth.insert(key, value);
                tally.acknowledged += 1;
            }
            log.push(format!("{round}: {} on device {d}: {code:?}", args[0]));
        }
        if round < faults {
            remember_heads(root, &mut old_heads);
            let what = damage(root, &mut rng, &mut old_heads);
            tally.faults += 1;
            log.push(format!("{round}: {what}"));
        }
    }

    // Heal: each device checks the store and puts back what it holds, then all sync until
    // quiet (bounded: a device that never converges is stuck).
    for device in devices {
        let run = device.run(&["store", "check", "--repair"]);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let mut quiet = false;
    for _pass in 0..6 {
        for device in devices {
            let run = device.run(&["sync"]);
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        }
        let states: Vec<_> = devices.iter().map(|d| records(d)).collect();
        let skipped = devices.iter().any(|d| !d.ok(&["sync", "status"]).contains("skipped objects: none"));
        if states.windows(2).all(|w| w[0] == w[1]) && !skipped {
            quiet = true;
            break;
        }
    }
    let report = format!("seed {seed}; {tally:?}\n{}", log.join("\n"));
    assert!(panics.is_empty(), "panics: {panics:?}\n{report}");
    let statuses: Vec<String> = devices.iter().map(|d| d.ok(&["sync", "status"])).collect();
    for status in &statuses {
        assert!(status.contains("skipped objects: none"), "{}\n{report}", statuses.join("\n"));
    }
    assert!(quiet, "the devices did not converge\n{report}");
    for device in devices {
        device.ok(&["sync"]);
    }
    // The repaired store is whole: a device joining now gets everything.
    let late = node();
    late.ok(&["join", &backend.url, "--name", "late"]);
    let (joined, everyone) = (records(&late), records(&laptop));
    if joined != everyone {
        let missing: Vec<_> = everyone.keys().filter(|k| !joined.contains_key(*k)).collect();
        let status = late.run(&["sync", "status"]).stdout;
        panic!("a device joining the repaired store lacks {missing:?}\n{status}\n{report}");
    }
    let held = records(&laptop);
    for (key, value) in &truth {
        let found = held.get(key).unwrap_or_else(|| panic!("acknowledged {key} was lost\n{report}"));
        let expected = serde_json::to_string(&serde_json::from_str::<serde_json::Value>(value).unwrap()).unwrap();
        assert_eq!(found, &expected, "{key}\n{report}");
    }
    eprintln!(
        "chaos: {} killed mid-run, {} finished, {} store faults, {} acknowledged writes: 0 lost, 0 divergent, 0 panics, 0 stuck",
        tally.killed, tally.finished, tally.faults, tally.acknowledged
    );
}

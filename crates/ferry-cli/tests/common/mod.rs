//! The test harness shared by the CLI tests: a device is a temporary home driven through the
//! real binary. A failing check prints the command, its output and the home's files.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test code: a panic is the failure report

use assert_cmd::Command;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A folder store in a temporary directory.
pub struct Store {
    pub dir: tempfile::TempDir,
}

impl Store {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn url(&self) -> String {
        format!("folder:{}", self.dir.path().join("ferry").display())
    }

    pub fn files(&self) -> Vec<String> {
        let mut files = Vec::new();
        let mut pending = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path.strip_prefix(self.dir.path()).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        files
    }
}

/// Two devices of one vault through `store`: "laptop" created it, "phone" joined, both synced.
pub fn laptop_and_phone(store: &Store) -> (Device, Device) {
    let laptop = Device::new();
    laptop.ok(&["init", "--name", "laptop", "--store", &store.url()]);
    let phone = Device::new();
    phone.ok(&["join", &store.url(), "--name", "phone"]);
    laptop.ok(&["sync"]);
    (laptop, phone)
}

pub struct Device {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub passphrase: String,
}

pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Device {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        Self { _dir: dir, home, passphrase: "correct horse battery".into() }
    }

    pub fn initialised() -> Self {
        let device = Self::new();
        device.ok(&["init", "--name", "laptop"]);
        device
    }

    pub fn command(&self, args: &[&str]) -> Command {
        Command::from_std(self.process(args))
    }

    pub fn run_with(&self, mut cmd: Command, args: &[&str]) -> Run {
        let output = cmd.output().unwrap();
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The binary with this device's environment, for running several at once.
    pub fn process(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"));
        cmd.args(args)
            .env("FERRY_HOME", &self.home)
            .env("FERRY_TEST_PASSPHRASE", &self.passphrase)
            .env("FERRY_INSECURE_KDF_WORK_FACTOR", "10")
            .env("FERRY_NO_KEYCHAIN", "1")
            .env_remove("FERRY_PASSPHRASE_COMMAND")
            .arg("--key-from-env")
            .arg("FERRY_TEST_PASSPHRASE");
        cmd
    }

    /// Runs a command with `input` on its standard input (answers to its questions).
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut cmd = self.command(args);
        cmd.write_stdin(input.to_owned());
        self.run_with(cmd, args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args), args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        run.expect_code(0, &self.home);
        run.stdout
    }

    /// Runs a command that must fail with `code`; returns its error message.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let run = self.run(args);
        run.expect_code(code, &self.home);
        assert!(run.stderr.starts_with("ferry: "), "errors are one line prefixed `ferry: `: {:?}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "one-line error expected: {:?}", run.stderr);
        run.stderr
    }

    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(&self.home)
            .map(|dir| dir.map(|e| e.unwrap().path()).map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Run {
    pub fn expect_code(&self, code: i32, home: &Path) {
        if self.code != code {
            let listing: Vec<String> = std::fs::read_dir(home)
                .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            panic!(
                "`ferry {}` exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}\n--- files in {}: {listing:?}",
                self.args.join(" "),
                self.code,
                self.stdout,
                self.stderr,
                home.display()
            );
        }
    }
}

/// A child process killed when the test ends, whatever happens.
pub struct Running(pub std::process::Child);

/// Starts `command` (a long-running `ferry`), and returns it with the first line it printed.
pub fn spawn_with_first_line(mut command: std::process::Command) -> (Running, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (Running(child), line.trim().to_owned())
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ferry pair invite` on `inviter`; returns the process, its stdout after the first
/// line, and the invite token from that line.
pub fn start_invite(
    inviter: &Device,
    minutes: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>, String) {
    let mut invite = inviter
        .process(&["pair", "invite", "--expires", minutes])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(invite.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ferry pair accept 'ferry1:"), "one line to copy: {line:?}");
    let token = line.trim().trim_start_matches("ferry pair accept ").trim_matches('\'').to_owned();
    (invite, out, token)
}

/// Pairs `new` into `inviter`'s vault the way two people would: the invite line is copied to
/// the new device, the code it shows is typed on the inviter.
pub fn pair(inviter: &Device, new: &Device, name: &str) -> (String, String) {
    let (mut invite, mut invite_out, token) = start_invite(inviter, "2");

    let mut accept = new
        .process(&["pair", "accept", &token, "--name", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut accept_out = BufReader::new(accept.stdout.take().unwrap());
    let mut code_line = String::new();
    accept_out.read_line(&mut code_line).unwrap();
    let code =
        code_line.trim().strip_prefix("Confirmation code: ").unwrap_or_else(|| panic!("{code_line:?}")).to_owned();
    writeln!(invite.stdin.take().unwrap(), "{code}").unwrap();

    let invited = invite.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut invite_out, &mut rest).unwrap();
    assert!(invited.status.success(), "invite: {rest}\n{}", String::from_utf8_lossy(&invited.stderr));
    let accepted = accept.wait_with_output().unwrap();
    let mut accept_rest = String::new();
    std::io::Read::read_to_string(&mut accept_out, &mut accept_rest).unwrap();
    assert!(accepted.status.success(), "accept: {accept_rest}\n{}", String::from_utf8_lossy(&accepted.stderr));
    (rest, accept_rest)
}

/// `command` run inside network namespace `ns` (`ip netns exec`), with the same environment.
pub fn in_netns(ns: &str, command: &std::process::Command) -> std::process::Command {
    let mut wrapped = std::process::Command::new("ip");
    wrapped.args(["netns", "exec", ns]).arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

/// Runs `ip ARGS` quietly; whether it worked.
pub fn ip<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

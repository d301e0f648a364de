//! Real S3-compatible servers for tests: `moto_server` and `s3s-fs`, each a process on
//! 127.0.0.1 that the test starts and that is killed on drop. Shared by the engine's and the
//! CLI's S3 tests (included by path). Outside CI a missing server skips loudly; in CI it fails.

#![allow(dead_code)]

use ferry_store::{S3Credentials, S3Location, S3Store};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "ferry-test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

/// A server process on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Option<Child>,
    data: tempfile::TempDir,
}

fn on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(binary)).find(|p| p.is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// Starts a server, or `None` (with a loud message) when its binary is absent outside CI.
    pub fn start(kind: Kind) -> Option<Self> {
        let binary = match kind {
            Kind::Moto => "moto_server",
            Kind::S3sFs => "s3s-fs",
        };
        if on_path(binary).is_none() {
            assert!(std::env::var_os("CI").is_none(), "CI must provide `{binary}` (see .ci/run)");
            eprintln!(
                "SKIPPED: `{binary}` is not installed; this S3 test did not run against it (.ci/run installs it)"
            );
            return None;
        }
        let mut server = Self { kind, port: free_port(), child: None, data: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(server.data.path().join(BUCKET)).unwrap();
        server.spawn();
        if kind == Kind::Moto {
            server.create_moto_bucket();
        }
        Some(server)
    }

    pub fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut command = match self.kind {
            Kind::Moto => {
                let mut c = Command::new("moto_server");
                c.args(["-H", "127.0.0.1", "-p", &port]);
                c
            }
            Kind::S3sFs => {
                let mut c = Command::new("s3s-fs");
                c.args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--access-key",
                    "ferry-test",
                    "--secret-key",
                    "ferry-test-secret",
                ])
                .arg(self.data.path());
                c
            }
        };
        self.child = Some(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "{:?} did not start on port {}", self.kind, self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// moto keeps buckets in memory; one unsigned PUT creates it.
    fn create_moto_bucket(&self) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "cannot create the bucket: {response}");
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}?endpoint=http://127.0.0.1:{}&region=us-east-1&path_style=true", self.port)
    }

    /// Where s3s-fs keeps the objects under `prefix`, one file each (moto keeps them in memory).
    pub fn objects_dir(&self, prefix: &str) -> PathBuf {
        self.data.path().join(BUCKET).join(prefix)
    }

    pub fn store(&self, prefix: &str) -> S3Store {
        let credentials = S3Credentials {
            access_key_id: "ferry-test".into(),
            secret_access_key: "ferry-test-secret".into(),
            session_token: None,
        };
        S3Store::new(S3Location::parse(&self.url(prefix)).unwrap(), Some(credentials)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn servers() -> Vec<Server> {
    [Kind::Moto, Kind::S3sFs].into_iter().filter_map(Server::start).collect()
}

/// The credentials both servers accept, as AWS environment variables for a `ferry` process.
pub const CREDENTIALS_ENV: [(&str, &str); 2] =
    [("AWS_ACCESS_KEY_ID", "ferry-test"), ("AWS_SECRET_ACCESS_KEY", "ferry-test-secret")];

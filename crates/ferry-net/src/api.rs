//! The local HTTP API, for apps and the web viewer, on 127.0.0.1 only:
//!
//! ```text
//! GET  /api/sync/status              this device, the daemon, every store and peer in short
//! GET  /api/sync/peers               the vault's other devices as peers
//! GET  /api/sync/attempts?limit=N    recent connection attempts, newest first (N ≤ 500)
//! POST /api/sync/actions/sync-now    sync every store now and retry every peer now
//! ```
//! Every request needs the API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`), kept
//! in a file only the user can read (like Syncthing's), and a `Host` header naming the loopback
//! address the API listens on: a web page in a browser can neither read the key nor, through
//! DNS rebinding, pass for the API's own origin.

use crate::attempts::Attempts;
use crate::daemon::StoreTrigger;
use crate::peers::PeerTable;
use crate::server::{ServeError, Server, listen_on};
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_engine::Vault;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// The file, in the ferry home, that holds the API key.
pub const TOKEN_FILE: &str = "api-key";

/// What the status endpoint says about the daemon itself.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DaemonInfo {
    /// Where the peer API listens.
    pub listen: String,
    /// Whether mDNS discovery runs.
    pub mdns: bool,
    /// Why mDNS is off, when it was asked for and could not start.
    pub mdns_error: Option<String>,
    /// When the daemon started (ms since the Unix epoch).
    pub started_ms: u64,
    /// Its process id.
    pub pid: u32,
}

#[derive(Clone)]
pub(crate) struct ApiState {
    pub token: Arc<String>,
    pub vault: Arc<Mutex<Vault>>,
    pub peers: PeerTable,
    pub attempts: Attempts,
    pub info: DaemonInfo,
    pub stores: StoreTrigger,
}

/// Reads the API key from `path`, or makes one (32 random bytes, hex) readable only by the user.
///
/// # Errors
/// The file cannot be read or written.
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let token = text.trim().to_owned();
        if token.len() >= 32 {
            restrict(path)?;
            return Ok(token);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = hex::encode(bytes);
    write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Writes a file only its owner can read (mode 0600 from the moment it exists).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, bytes)?;
    restrict(path)
}

fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Serves the API on `listen`, which must be a loopback address.
pub(crate) fn serve_api(listen: SocketAddr, state: ApiState) -> Result<Server, ServeError> {
    if !listen.ip().is_loopback() {
        return Err(ServeError::Listen {
            addr: listen,
            source: std::io::Error::other("the local API listens on a loopback address only (127.0.0.1 or ::1)"),
        });
    }
    let (runtime, listener, addr) = listen_on(listen, "ferry-api")?;
    let allowed_hosts = Arc::new(vec![
        format!("127.0.0.1:{}", addr.port()),
        format!("localhost:{}", addr.port()),
        format!("[::1]:{}", addr.port()),
    ]);
    let app = Router::new()
        .route("/api/sync/status", get(status))
        .route("/api/sync/peers", get(peers))
        .route("/api/sync/attempts", get(attempts))
        .route("/api/sync/actions/sync-now", post(sync_now))
        .layer(axum::middleware::from_fn_with_state((state.token.clone(), allowed_hosts), guard))
        .with_state(state);
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server::new(addr, runtime))
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

async fn guard(
    State((token, hosts)): State<(Arc<String>, Arc<Vec<String>>)>,
    request: Request,
    next: Next,
) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the Host header must name the API's loopback address (e.g. 127.0.0.1:<port>): refused as possible DNS rebinding",
        );
    }
    let headers = request.headers();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .unwrap_or_default();
    if !bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key: send `Authorization: Bearer <key>` with the key from the file `api-key` in the ferry home",
        );
    }
    next.run(request).await
}

async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&mut Vault) -> ferry_engine::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let vault = state.vault.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut vault = vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut vault).map_err(|e| e.with_causes())
    })
    .await;
    match done {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, &error)),
        Err(error) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())),
    }
}

async fn status(State(state): State<ApiState>) -> Response {
    let local = blocking(&state, |vault| Ok((vault.status()?, vault.sync_status()?))).await;
    let (device, sync) = match local {
        Ok(found) => found,
        Err(response) => return response,
    };
    let peers = state.peers.snapshot();
    let connected = peers.iter().filter(|p| p.state == crate::peers::PeerState::Connected).count();
    axum::Json(json!({
        "device_id": device.device_id,
        "device_name": device.device_name,
        "device_fingerprint": device.device_fingerprint,
        "vault_id": device.vault_id,
        "unpublished_ops": sync.unpublished_ops,
        "records": device.records,
        "ops": device.ops,
        "daemon": state.info,
        "stores": sync.stores.iter().filter(|s| !s.peer).collect::<Vec<_>>(),
        "devices": sync.devices,
        "peers": { "known": peers.len(), "connected": connected },
        "skipped": sync.skipped,
    }))
    .into_response()
}

async fn peers(State(state): State<ApiState>) -> Response {
    let mut peers = state.peers.snapshot();
    let devices: Vec<Option<ferry_format::DeviceId>> = peers.iter().map(|p| p.device_id.parse().ok()).collect();
    let stored = blocking(&state, move |vault| {
        devices.iter().map(|d| d.map_or(Ok(Vec::new()), |d| vault.peer_addresses_of(d))).collect::<Result<Vec<_>, _>>()
    })
    .await;
    match stored {
        Ok(stored) => {
            for (peer, addresses) in peers.iter_mut().zip(stored) {
                peer.stored_addresses = addresses;
            }
            axum::Json(peers).into_response()
        }
        Err(response) => response,
    }
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn attempts(State(state): State<ApiState>, Query(query): Query<Limit>) -> Response {
    axum::Json(state.attempts.latest(query.limit.unwrap_or(50).min(500))).into_response()
}

async fn sync_now(State(state): State<ApiState>) -> Response {
    state.stores.now();
    state.peers.wake_all();
    (StatusCode::ACCEPTED, axum::Json(json!({ "started": true }))).into_response()
}

/// The file, in the ferry home, where a running daemon says where its local API listens.
pub const DAEMON_FILE: &str = "daemon.json";

/// What a running daemon writes to [`DAEMON_FILE`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DaemonFile {
    /// The daemon's process id.
    pub pid: u32,
    /// Where its local API listens.
    pub api: SocketAddr,
    /// Where its peer API listens.
    pub listen: String,
}

/// What a client of the local API can run into.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon runs for this home (or it was stopped without cleaning up).
    #[error("no ferry daemon is running for {home} (start one with `ferry serve` or `ferry service start`)")]
    NotRunning {
        /// The home.
        home: String,
    },
    /// The daemon answered with an error.
    #[error("the daemon answered {status}: {error}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its error text.
        error: String,
    },
    /// The daemon's files are unreadable.
    #[error("cannot read the daemon's {what}: {source}")]
    Files {
        /// Which file.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A client of the local API of the daemon running for a home (as the CLI uses it).
#[derive(Debug)]
pub struct LocalClient {
    base: String,
    token: String,
    client: reqwest::blocking::Client,
}

impl LocalClient {
    /// Finds the daemon of the home at `home`; [`ClientError::NotRunning`] if there is none.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn for_home(home: &Path) -> Result<Self, ClientError> {
        let not_running = || ClientError::NotRunning { home: home.display().to_string() };
        let Ok(text) = std::fs::read(home.join(DAEMON_FILE)) else { return Err(not_running()) };
        let file: DaemonFile = serde_json::from_slice(&text)
            .map_err(|e| ClientError::Files { what: DAEMON_FILE, source: std::io::Error::other(e) })?;
        let token = std::fs::read_to_string(home.join(TOKEN_FILE))
            .map_err(|source| ClientError::Files { what: TOKEN_FILE, source })?
            .trim()
            .to_owned();
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Files { what: "HTTP client", source: std::io::Error::other(e) })?;
        let this = Self { base: format!("http://{}", file.api), token, client };
        // A file left by a daemon that was killed: nobody listens there.
        if std::net::TcpStream::connect_timeout(&file.api, std::time::Duration::from_secs(1)).is_err() {
            return Err(not_running());
        }
        Ok(this)
    }

    /// `GET path`, as JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    /// `POST path`, as JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn post(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.client.post(format!("{}{path}", self.base)))
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<serde_json::Value, ClientError> {
        let gone = |e: reqwest::Error| ClientError::Refused { status: 0, error: e.to_string() };
        let response = request.bearer_auth(&self.token).send().map_err(gone)?;
        let status = response.status();
        let bytes = response.bytes().map_err(gone)?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Refused { status: status.as_u16(), error: format!("not JSON: {e}") })?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or_default().to_owned();
            return Err(ClientError::Refused { status: status.as_u16(), error });
        }
        Ok(body)
    }
}

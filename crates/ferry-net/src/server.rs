//! The peer API a device serves: the sealed objects it holds, read-only.
//!
//! ```text
//! GET /v1/objects/<store path>   the object; ETag = its BLAKE3; If-None-Match → 304; 404 if not held
//! GET /v1/list?prefix=<prefix>   JSON array of the paths held under the prefix
//! GET /v1/wait?seen=<v>&timeout_ms=<n>
//!                                {"device": <id>, "version": <v'>} as soon as what the device
//!                                serves differs from version <v> (at once if it already does),
//!                                or after the timeout (at most 60 s) with the same version
//! ```
//! Peers long-poll `/v1/wait` and pull when the version moves: a write reaches a LAN peer in
//! about the time of one pull, with no polling interval to wait out.
//! Only over TLS with a client certificate of an active device of the vault (`tls`): anything
//! else fails the handshake before a request is read.

use crate::attempts::{Attempts, Direction};
use crate::changes::Changes;
use crate::peers::PeerTable;
use crate::tls::{Pins, TlsError, TlsIdentity, ed25519_key_of, server_config};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_engine::Vault;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// The longest a `/v1/wait` is held.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// How long a client has to finish the TLS handshake, and to send a request's headers: a
/// connection that dawdles is closed instead of holding a slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog, then are closed.
const MAX_CONNECTIONS: usize = 256;

/// What every connection to a ferry server goes through before a request is read: a cap on
/// connections at once, and time limits on the handshake and on each request's headers.
#[derive(Clone)]
pub(crate) struct ConnectionLimits {
    slots: Arc<tokio::sync::Semaphore>,
}

impl ConnectionLimits {
    pub(crate) fn new() -> Self {
        Self { slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)) }
    }

    /// A slot for one more connection, or `None` when every slot is taken (drop the connection).
    pub(crate) fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Finishes the TLS handshake within [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn handshake(
        acceptor: &TlsAcceptor,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake took too long")),
        }
    }

    /// An HTTP/1 connection builder that closes connections whose headers do not arrive in time.
    pub(crate) fn http1() -> hyper::server::conn::http1::Builder {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
        builder
    }
}

/// What the server tells the rest of the daemon, and what it listens to. Each part is a
/// cheap handle; the defaults suit a server on its own.
#[derive(Clone, Debug, Default)]
pub struct ServerEvents {
    /// Bumped when what the device serves changes; `/v1/wait` answers on it.
    pub changes: Changes,
    /// Every connection attempt, refused ones with their reason.
    pub attempts: Attempts,
    /// Peers that connect are marked seen (and a link waiting to retry them wakes).
    pub peers: PeerTable,
    /// What was served, counted.
    pub served: Served,
}

/// What a device served its peers since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServedCounts {
    /// Requests for objects: single objects, batches, listings.
    pub data_requests: u64,
    /// Long-polls answered.
    pub waits: u64,
    /// Objects sent.
    pub objects: u64,
    /// Bytes of objects sent.
    pub object_bytes: u64,
}

/// Counters of what a server served (cheap to clone; shared).
#[derive(Clone, Debug, Default)]
pub struct Served(Arc<[AtomicU64; 4]>);

impl Served {
    /// The counts now.
    pub fn counts(&self) -> ServedCounts {
        let [data_requests, waits, objects, object_bytes] =
            self.0.as_ref().each_ref().map(|c| c.load(Ordering::Relaxed));
        ServedCounts { data_requests, waits, objects, object_bytes }
    }

    fn request(&self, objects: &[&[u8]]) {
        self.0[0].fetch_add(1, Ordering::Relaxed);
        self.0[2].fetch_add(objects.len() as u64, Ordering::Relaxed);
        self.0[3].fetch_add(objects.iter().map(|o| o.len() as u64).sum(), Ordering::Relaxed);
    }

    fn wait(&self) {
        self.0[1].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct AppState {
    vault: Arc<Mutex<Vault>>,
    changes: Changes,
    device: String,
    served: Served,
}

/// A running server (the peer API, or the local API); dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({})", self.addr)
    }
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What can stop a server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The address cannot be listened on, or the runtime not started.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Serves `vault`'s objects on `listen` (port 0: any free port) to the devices `pins` holds.
///
/// # Errors
/// [`ServeError`].
pub fn serve(
    vault: Vault,
    identity: &TlsIdentity,
    pins: Pins,
    listen: SocketAddr,
    events: ServerEvents,
) -> Result<Server, ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(identity, pins.clone())?));
    let (runtime, listener, addr) = listen_on(listen, "ferry-peer")?;
    let state = AppState {
        device: vault.device_id().to_string(),
        vault: Arc::new(Mutex::new(vault)),
        changes: events.changes.clone(),
        served: events.served.clone(),
    };
    let app = Router::new()
        .route("/v1/objects/{*path}", get(object))
        .route("/v1/list", get(list))
        .route("/v1/wait", get(wait))
        .route("/v1/batch", axum::routing::post(batch))
        .with_state(state);
    let limits = ConnectionLimits::new();
    runtime.spawn(async move {
        loop {
            let Ok((tcp, remote)) = listener.accept().await else { continue };
            let Some(slot) = limits.admit() else {
                let detail = "refused: too many connections at once".to_owned();
                events.attempts.record(Direction::Inbound, &remote.to_string(), None, false, detail);
                continue;
            };
            let (acceptor, app, events, pins) = (acceptor.clone(), app.clone(), events.clone(), pins.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let address = remote.to_string();
                // A refused or broken handshake ends here, recorded with its reason: nothing was read.
                let tls = match ConnectionLimits::handshake(&acceptor, tcp).await {
                    Ok(tls) => tls,
                    Err(err) => {
                        events.attempts.record(Direction::Inbound, &address, None, false, refusal(&err));
                        return;
                    }
                };
                let key = tls.get_ref().1.peer_certificates().and_then(|chain| ed25519_key_of(chain.first()?));
                let Some(key) = key else { return };
                let device = pins.device_with_key(&key);
                if let Some(device) = device {
                    events.peers.contacted_by(device);
                }
                let detail = "connected (mutual TLS)".to_owned();
                events.attempts.record(Direction::Inbound, &address, device.map(|d| d.to_string()), true, detail);
                // Pins are checked again on every request: a device revoked while its connection
                // is open gets nothing more on it.
                let app = app.layer(axum::middleware::from_fn(move |request, next| {
                    still_pinned(pins.clone(), key, address.clone(), events.attempts.clone(), request, next)
                }));
                let service = TowerToHyperService::new(app);
                let _ = ConnectionLimits::http1().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    Ok(Server { addr, runtime: Some(runtime) })
}

/// Answers a request only while the connection's key is still pinned (403 otherwise, recorded).
async fn still_pinned(
    pins: Pins,
    key: [u8; 32],
    address: String,
    attempts: Attempts,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if pins.device_with_key(&key).is_some() {
        return next.run(request).await;
    }
    let why = "this device is no longer an active device of the vault (revoked while connected)";
    attempts.record(Direction::Inbound, &address, None, false, format!("refused: {why}"));
    (StatusCode::FORBIDDEN, why).into_response()
}

/// A one-thread runtime and a listener on `listen` (port 0: any free port) inside it.
pub(crate) fn listen_on(
    listen: SocketAddr,
    thread_name: &str,
) -> Result<(tokio::runtime::Runtime, tokio::net::TcpListener, SocketAddr), ServeError> {
    let listen_error = |source| ServeError::Listen { addr: listen, source };
    let listener = std::net::TcpListener::bind(listen).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(thread_name)
        .enable_io()
        .enable_time()
        .build()
        .map_err(listen_error)?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(listen_error)?
    };
    Ok((runtime, listener, addr))
}

impl Server {
    pub(crate) fn new(addr: SocketAddr, runtime: tokio::runtime::Runtime) -> Self {
        Self { addr, runtime: Some(runtime) }
    }
}

/// Why a handshake failed, in words a user can act on.
pub(crate) fn refusal(err: &std::io::Error) -> String {
    let text = err.to_string();
    if text.contains("not an active device") {
        format!("refused: {text}")
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        format!("refused: not TLS (plain HTTP?): {text}")
    } else if text.contains("NoCertificatesPresented") || text.contains("peer sent no certificates") {
        format!("refused: no client certificate (not a ferry device): {text}")
    } else if text.contains("received fatal alert") {
        format!("the other side refused this device's certificate (a device of another vault?): {text}")
    } else {
        format!("handshake failed: {text}")
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct WaitQuery {
    #[serde(default)]
    pub(crate) seen: String,
    timeout_ms: Option<u64>,
}

impl WaitQuery {
    /// How long to hold the request: as asked, at most [`LONGEST_WAIT`].
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout_ms.map_or(LONGEST_WAIT, Duration::from_millis).min(LONGEST_WAIT)
    }
}

async fn wait(State(state): State<AppState>, Query(query): Query<WaitQuery>) -> Response {
    state.served.wait();
    let version = state.changes.wait_unlike(&query.seen, query.timeout()).await;
    axum::Json(serde_json::json!({ "device": state.device, "version": version })).into_response()
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", blake3::hash(bytes).to_hex())
}

async fn object(State(state): State<AppState>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    let vault = state.vault;
    let held = tokio::task::spawn_blocking(move || vault.lock().ok().map(|mut v| v.held_object(&path))).await;
    let bytes = match held {
        Ok(Some(Ok(Some(bytes)))) => bytes,
        Ok(Some(Ok(None))) => {
            state.served.request(&[]);
            return StatusCode::NOT_FOUND.into_response();
        }
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    state.served.request(&[&bytes]);
    object_response(bytes, &headers)
}

/// Many objects in one answer ([`crate::batch`]): what a pull asks for a run of segments.
async fn batch(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let Ok(paths) = serde_json::from_slice::<Vec<String>>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected a JSON array of store paths").into_response();
    };
    if paths.len() > ferry_format::batch::MAX_BATCH || paths.iter().any(|path| ferry_store::check_path(path).is_err()) {
        let why = format!("at most {} store paths", ferry_format::batch::MAX_BATCH);
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let (vault, served) = (state.vault, state.served);
    let held = tokio::task::spawn_blocking(move || {
        let mut vault = vault.lock().ok()?;
        paths.iter().map(|path| vault.held_object(path)).collect::<Result<Vec<_>, _>>().ok()
    })
    .await;
    match held {
        Ok(Some(objects)) => {
            served.request(&objects.iter().flatten().map(Vec::as_slice).collect::<Vec<_>>());
            ferry_format::batch::encode(&objects).into_response()
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An object with its ETag (its BLAKE3), or 304 when the request's `If-None-Match` names it.
pub(crate) fn object_response(bytes: Vec<u8>, headers: &HeaderMap) -> Response {
    let etag = etag_of(&bytes);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = bytes.into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[derive(serde::Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub(crate) prefix: String,
}

async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Response {
    state.served.request(&[]);
    let vault = state.vault;
    let held = tokio::task::spawn_blocking(move || vault.lock().ok().map(|mut v| v.held_paths(&query.prefix))).await;
    match held {
        Ok(Some(Ok(paths))) => axum::Json(paths).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

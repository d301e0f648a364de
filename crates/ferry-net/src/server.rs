//! The peer API a device serves: the sealed objects it holds, read-only.
//!
//! ```text
//! GET /v1/objects/<store path>   the object; ETag = its BLAKE3; If-None-Match → 304; 404 if not held
//! GET /v1/list?prefix=<prefix>   JSON array of the paths held under the prefix
//! ```
//! Only over TLS with a client certificate of an active device of the vault (`tls`): anything
//! else fails the handshake before a request is read.

use crate::tls::{Pins, TlsError, TlsIdentity, server_config};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_engine::Vault;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

type Shared = Arc<Mutex<Vault>>;

/// A running peer server; dropping it stops it.
pub struct PeerServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PeerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerServer({})", self.addr)
    }
}

impl PeerServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PeerServer {
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
pub fn serve(vault: Vault, identity: &TlsIdentity, pins: Pins, listen: SocketAddr) -> Result<PeerServer, ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(identity, pins)?));
    let listen_error = |source| ServeError::Listen { addr: listen, source };
    let listener = std::net::TcpListener::bind(listen).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ferry-peer")
        .enable_io()
        .enable_time()
        .build()
        .map_err(listen_error)?;
    let app = Router::new()
        .route("/v1/objects/{*path}", get(object))
        .route("/v1/list", get(list))
        .with_state(Arc::new(Mutex::new(vault)));
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(listen_error)?
    };
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A refused or broken handshake ends here: nothing was read.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    Ok(PeerServer { addr, runtime: Some(runtime) })
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", blake3::hash(bytes).to_hex())
}

async fn object(State(vault): State<Shared>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    let held = tokio::task::spawn_blocking(move || vault.lock().ok().map(|mut v| v.held_object(&path))).await;
    let bytes = match held {
        Ok(Some(Ok(Some(bytes)))) => bytes,
        Ok(Some(Ok(None))) => return StatusCode::NOT_FOUND.into_response(),
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
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
struct ListQuery {
    #[serde(default)]
    prefix: String,
}

async fn list(State(vault): State<Shared>, Query(query): Query<ListQuery>) -> Response {
    let held = tokio::task::spawn_blocking(move || vault.lock().ok().map(|mut v| v.held_paths(&query.prefix))).await;
    match held {
        Ok(Some(Ok(paths))) => axum::Json(paths).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

//! A hub (`ferry serve --hub`): an always-on store for one vault that cannot read what it stores.
//!
//! The peer API of `server`, plus writes, over TLS where every client proves an Ed25519 key:
//! ```text
//! GET    /v1/objects/<path>        as on a peer (pinned devices; `pair/…` and `ferry-vault.json`: anyone)
//! GET    /v1/list?prefix=…, /v1/wait?seen=…&timeout_ms=…   as on a peer (pinned devices)
//! PUT    /v1/objects/<path>        201 written, 204 replaced; with `If-None-Match: *` 412 if it exists
//! DELETE /v1/objects/pair/…        the end of a pairing exchange (nothing else is ever deleted)
//! POST   /v1/hub/claim             {"secret", "vault", "devices": [[id, key]]}: the first device
//! ```
//! A write is checked without decrypting (`hub_check`): a sealed object must be signed by a
//! pinned device and sit where its header says; unsealed objects (vault file, key slots) come
//! only from a pinned device's connection and are never replaced (but `keys/<n>/passphrase.age`,
//! which `ferry key passphrase` rewrites). A pairing exchange (`pair/<invite id>/…`) is open to
//! any key: the joining device is not pinned yet, the invite id is unguessable and the objects
//! are encrypted to the invite's secret; their size and number are capped. So is reading the
//! vault file (vault id, creation time, key fingerprint; no key), which a joining device checks
//! against its invite. Refusals answer 403
//! with the reason, and are recorded as attempts.

use crate::attempts::{Attempts, Direction};
use crate::changes::Changes;
use crate::hub_check::{Accepted, check_write};
use crate::hub_state::{HubState, HubStateError};
use crate::server::{ListQuery, ServeError, Server, WaitQuery, listen_on, object_response, refusal};
use crate::tls::{TlsIdentity, ed25519_key_of, hub_server_config};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_format::objects::paths::{self, StorePath};
use ferry_format::{DeviceId, VaultId};
use ferry_store::{Created, FolderStore, Store, StoreError};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

/// The largest object a hub takes (segments and blob chunks are far smaller).
const MAX_OBJECT: usize = 64 << 20;
/// The largest pairing object, and how many may wait at once: what a stranger can make a hub hold.
const MAX_PAIR_OBJECT: usize = 64 << 10;
const MAX_PAIR_OBJECTS: usize = 256;

/// What can stop a hub from starting.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Listening or TLS.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// `hub.json`.
    #[error(transparent)]
    State(#[from] HubStateError),
}

/// A running hub; dropping it stops it.
#[derive(Debug)]
pub struct Hub {
    server: Server,
    key: [u8; 32],
    claim_secret: Option<[u8; 32]>,
    state: Arc<Mutex<HubState>>,
    attempts: Attempts,
}

impl Hub {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Its TLS key, which devices pin.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// Where devices find it at `host_port`: with the one-time claim secret while nobody claimed it.
    pub fn location(&self, host_port: &str) -> ferry_store::HubLocation {
        let claim_secret = if self.vault().is_none() { self.claim_secret } else { None };
        ferry_store::HubLocation { address: host_port.to_owned(), key: self.key, claim_secret }
    }

    /// The vault it serves and how many devices it pins, once claimed.
    pub fn vault(&self) -> Option<(VaultId, usize)> {
        let state = self.state.lock().ok()?;
        Some((state.vault()?, state.pinned()))
    }

    /// Connections and refusals, newest last.
    pub fn attempts(&self) -> &Attempts {
        &self.attempts
    }
}

#[derive(Clone)]
struct HubApp {
    objects: Arc<FolderStore>,
    state: Arc<Mutex<HubState>>,
    changes: Changes,
    attempts: Attempts,
}

/// Who is asking: the key their certificate proved, and where from. The device a key is pinned
/// as is looked up per request, so a revocation takes effect on open connections too.
#[derive(Clone)]
struct Client {
    key: [u8; 32],
    address: String,
}

/// Serves the hub home at `root` (objects in `root/objects`, pins in `root/hub.json`) on
/// `listen` as `identity`. An unclaimed hub gets a fresh claim secret ([`Hub::location`]).
///
/// # Errors
/// [`HubError`].
pub fn serve_hub(root: &FsPath, identity: &TlsIdentity, listen: SocketAddr) -> Result<Hub, HubError> {
    let objects = objects_dir(root);
    std::fs::create_dir_all(&objects).map_err(|source| HubStateError::Io { path: objects.clone(), source })?;
    let mut state = HubState::load(root)?;
    let claim_secret = state.new_claim_secret()?;
    let key = identity.public_key().unwrap_or_default();
    let acceptor = TlsAcceptor::from(Arc::new(hub_server_config(identity).map_err(ServeError::from)?));
    let (runtime, listener, addr) = listen_on(listen, "ferry-hub")?;
    let attempts = Attempts::default();
    let state = Arc::new(Mutex::new(state));
    let app_state = HubApp {
        objects: Arc::new(FolderStore::new(objects)),
        state: state.clone(),
        changes: Changes::default(),
        attempts: attempts.clone(),
    };
    let app = Router::new()
        .route("/v1/objects/{*path}", get(read_object).put(write_object).delete(delete_object))
        .route("/v1/list", get(list))
        .route("/v1/wait", get(wait))
        .route("/v1/hub/claim", post(claim))
        .layer(DefaultBodyLimit::max(MAX_OBJECT))
        .with_state(app_state);
    let events = attempts.clone();
    runtime.spawn(async move {
        loop {
            let Ok((tcp, remote)) = listener.accept().await else { continue };
            let (acceptor, app, events) = (acceptor.clone(), app.clone(), events.clone());
            tokio::spawn(async move {
                let address = remote.to_string();
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(err) => {
                        record(&events, &address, None, false, refusal(&err));
                        return;
                    }
                };
                let Some(key) = tls.get_ref().1.peer_certificates().and_then(|chain| ed25519_key_of(chain.first()?))
                else {
                    return;
                };
                let app = app.layer(Extension(Client { key, address }));
                let service = TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    Ok(Hub { server: Server::new(addr, runtime), key, claim_secret, state, attempts })
}

/// Where a hub home keeps the objects.
pub fn objects_dir(root: &FsPath) -> PathBuf {
    root.join("objects")
}

fn record(attempts: &Attempts, address: &str, device: Option<DeviceId>, ok: bool, detail: String) {
    attempts.record(Direction::Inbound, address, device.map(|d| d.to_string()), ok, detail);
}

/// A request the hub does not carry out: the status, and the reason the client is told.
struct NotDone(StatusCode, String);

impl IntoResponse for NotDone {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn forbidden(app: &HubApp, client: &Client, device: Option<DeviceId>, why: String) -> NotDone {
    record(&app.attempts, &client.address, device, false, format!("refused: {why}"));
    NotDone(StatusCode::FORBIDDEN, why)
}

fn failed(why: impl ToString) -> NotDone {
    NotDone(StatusCode::INTERNAL_SERVER_ERROR, why.to_string())
}

impl HubApp {
    /// The device the client is pinned as, or the 403 that says why not.
    fn pinned(&self, client: &Client) -> Result<(DeviceId, VaultId), NotDone> {
        let found = self.state.lock().ok().map(|state| (state.vault(), state.device_with_key(&client.key)));
        match found {
            Some((Some(vault), Some(device))) => Ok((device, vault)),
            Some((None, _)) => Err(forbidden(
                self,
                client,
                None,
                "this hub serves no vault yet: add it from a device with the line `ferry serve --hub` printed".into(),
            )),
            _ => Err(forbidden(
                self,
                client,
                None,
                format!(
                    "key {} is not an active device of the vault this hub serves (a device of another vault, \
                     revoked, or paired before the hub learnt of it: sync from a device that knows it)",
                    hex::encode(&client.key[..8])
                ),
            )),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&FolderStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, NotDone> {
        let objects = self.objects.clone();
        match tokio::task::spawn_blocking(move || work(&objects)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(failed(err)),
            Err(err) => Err(failed(err)),
        }
    }
}

fn is_pairing(path: &str) -> bool {
    matches!(paths::parse(path), Some(StorePath::Pair(..)))
}

async fn read_object(
    State(app): State<HubApp>,
    Extension(client): Extension<Client>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_pairing(&path)
        && path != paths::VAULT_FILE
        && let Err(refused) = app.pinned(&client)
    {
        return refused.into_response();
    }
    let bytes = match app.blocking(move |objects| objects.get(&path)).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(not_done) => return not_done.into_response(),
    };
    object_response(bytes, &headers)
}

async fn list(
    State(app): State<HubApp>,
    Extension(client): Extension<Client>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(refused) = app.pinned(&client) {
        return refused.into_response();
    }
    match app.blocking(move |objects| objects.list(&query.prefix)).await {
        Ok(paths) => axum::Json(paths).into_response(),
        Err(not_done) => not_done.into_response(),
    }
}

async fn wait(
    State(app): State<HubApp>,
    Extension(client): Extension<Client>,
    Query(query): Query<WaitQuery>,
) -> Response {
    if let Err(refused) = app.pinned(&client) {
        return refused.into_response();
    }
    let version = app.changes.wait_unlike(&query.seen, query.timeout()).await;
    axum::Json(serde_json::json!({ "device": "hub", "version": version })).into_response()
}

/// May `client` write `bytes` at `path`? What the write means for the pins if so.
fn authorize_write(
    app: &HubApp,
    client: &Client,
    path: &str,
    bytes: &[u8],
    replace: bool,
) -> Result<Accepted, NotDone> {
    if is_pairing(path) {
        if bytes.len() > MAX_PAIR_OBJECT || replace {
            return Err(forbidden(app, client, None, format!("`{path}`: a pairing object is small and written once")));
        }
        return Ok(Accepted::Unsealed);
    }
    let (device, vault) = app.pinned(client)?;
    let checked = match app.state.lock() {
        Ok(state) => check_write(path, bytes, vault, &|d| state.key_of(d)),
        Err(_) => return Err(failed("the hub's state is poisoned")),
    };
    match checked {
        Ok(Accepted::Unsealed) if replace && !is_passphrase_slot(path) => Err(forbidden(
            app,
            client,
            Some(device),
            format!("`{path}` is written once: a hub never replaces a vault file or key slot"),
        )),
        Ok(accepted) => Ok(accepted),
        Err(refusal) => Err(forbidden(app, client, Some(device), refusal.to_string())),
    }
}

fn is_passphrase_slot(path: &str) -> bool {
    matches!(paths::parse(path), Some(StorePath::KeySlot(_, slot)) if slot == "passphrase")
}

async fn write_object(
    State(app): State<HubApp>,
    Extension(client): Extension<Client>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let create_only = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == b"*");
    let accepted = match authorize_write(&app, &client, &path, &body, !create_only) {
        Ok(accepted) => accepted,
        Err(not_done) => return not_done.into_response(),
    };
    if is_pairing(&path) {
        let pending = app.blocking(|objects| objects.list("pair/")).await.map(|all| all.len()).unwrap_or(0);
        if pending >= MAX_PAIR_OBJECTS {
            return forbidden(&app, &client, None, "too many pairings wait on this hub: try again later".into())
                .into_response();
        }
    }
    let written = app
        .blocking(move |objects| {
            if create_only {
                objects.put_if_absent(&path, &body).map(|created| match created {
                    Created::New => StatusCode::CREATED,
                    Created::Exists => StatusCode::PRECONDITION_FAILED,
                })
            } else {
                objects.put(&path, &body).map(|()| StatusCode::NO_CONTENT)
            }
        })
        .await;
    let status = match written {
        Ok(status) => status,
        Err(not_done) => return not_done.into_response(),
    };
    if status != StatusCode::PRECONDITION_FAILED {
        app.changes.bump();
    }
    let followed = app.state.lock().map(|mut state| state.follow(&accepted));
    match followed {
        Ok(Ok(())) => status.into_response(),
        Ok(Err(err)) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn delete_object(
    State(app): State<HubApp>,
    Extension(client): Extension<Client>,
    Path(path): Path<String>,
) -> Response {
    if !is_pairing(&path) {
        let device = app.pinned(&client).ok().map(|(device, _)| device);
        let why = format!("`{path}`: a hub deletes nothing but finished pairing exchanges");
        return forbidden(&app, &client, device, why).into_response();
    }
    match app.blocking(move |objects| objects.delete(&path)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(not_done) => not_done.into_response(),
    }
}

/// The first device's claim.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Claim {
    /// The one-time secret, hex.
    pub secret: String,
    /// The vault id.
    pub vault: String,
    /// The vault's active devices: `[device id, key hex]`.
    pub devices: Vec<(String, String)>,
}

/// A claim with its parts decoded.
struct ParsedClaim {
    secret: [u8; 32],
    vault: VaultId,
    devices: Vec<(DeviceId, [u8; 32])>,
}

fn parse_claim(claim: &Claim) -> Option<ParsedClaim> {
    let decode = |text: &str| -> Option<[u8; 32]> { hex::decode(text).ok()?.try_into().ok() };
    let devices =
        claim.devices.iter().map(|(id, key)| Some((id.parse().ok()?, decode(key)?))).collect::<Option<Vec<_>>>()?;
    Some(ParsedClaim { secret: decode(&claim.secret)?, vault: claim.vault.parse().ok()?, devices })
}

async fn claim(State(app): State<HubApp>, Extension(client): Extension<Client>, body: Bytes) -> Response {
    let Some(ParsedClaim { secret, vault, devices }) =
        serde_json::from_slice(&body).ok().as_ref().and_then(parse_claim)
    else {
        return (StatusCode::BAD_REQUEST, "not a hub claim").into_response();
    };
    let outcome = match app.state.lock() {
        Ok(mut state) => state.claim(&secret, vault, &devices, &client.key),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match outcome {
        Ok(Ok(())) => {
            let device = devices.iter().find(|(_, key)| *key == client.key).map(|(device, _)| *device);
            let detail = format!("claimed for vault {vault} with {} devices", devices.len());
            record(&app.attempts, &client.address, device, true, detail);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(refusal)) => forbidden(&app, &client, None, refusal.to_string()).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

//! A hub (`ferry serve --hub`): an always-on store for one vault that cannot read what it stores.
//!
//! The peer API of `server`, plus writes, over TLS where every client proves an Ed25519 key:
//! ```text
//! GET    /v1/objects/<path>        as on a peer (pinned devices; `pair/…` and `ferry-vault.json`: anyone)
//! GET    /v1/list?prefix=…, /v1/wait?seen=…&timeout_ms=…   as on a peer (pinned devices)
//! PUT    /v1/objects/<path>        201 written, 204 replaced; with `If-None-Match: *` 412 if it exists
//! DELETE /v1/objects/pair/…        the end of a pairing exchange
//! DELETE /v1/objects/log/<d>/<n>.seg, snapshots/<d>/…   device d pruning its own log (nothing else
//!                                  is ever deleted: never a HEAD, never another device's objects)
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
use crate::server::{ConnectionLimits, ListQuery, ServeError, Server, WaitQuery, listen_on, object_response, refusal};
use crate::tls::{TlsIdentity, ed25519_key_of, hub_server_config};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_format::objects::paths::{self, StorePath};
use ferry_format::seal::Header;
use ferry_format::{DeviceId, EpochRef, VaultId};
use ferry_store::{Created, FolderStore, Store, StoreError};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::TlsAcceptor;

/// The largest object a hub takes from a pinned device (segments and blob chunks are far
/// smaller). A body is read only after the request is authorised, never before.
const MAX_OBJECT: usize = 64 << 20;
/// What a stranger can make a hub hold: pairing objects this small, this many waiting at once,
/// this many per client key, each for this long.
const MAX_PAIR_OBJECT: usize = 64 << 10;
const MAX_PAIR_OBJECTS: usize = 256;
const MAX_PAIR_OBJECTS_PER_KEY: usize = 4;
const PAIR_OBJECT_LIFETIME: Duration = Duration::from_secs(60 * 60);

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
    pairing: Arc<Mutex<PairingBook>>,
}

/// The pairing objects waiting on the hub: who wrote each (only that key, or a pinned device,
/// may delete it) and when (it is deleted after [`PAIR_OBJECT_LIFETIME`]). Kept in memory: after
/// a restart, objects found on disk count as written then, by nobody.
#[derive(Default)]
struct PairingBook {
    waiting: HashMap<String, (Option<[u8; 32]>, Instant)>,
}

impl PairingBook {
    /// Forgets entries older than the lifetime; returns their paths (to delete).
    fn expire(&mut self, now: Instant) -> Vec<String> {
        let old: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) > PAIR_OBJECT_LIFETIME)
            .map(|(path, _)| path.clone())
            .collect();
        for path in &old {
            self.waiting.remove(path);
        }
        old
    }

    fn written_by(&self, key: &[u8; 32]) -> usize {
        self.waiting.values().filter(|(writer, _)| writer.as_ref() == Some(key)).count()
    }
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
    let store = FolderStore::new(objects);
    let mut book = PairingBook::default();
    for path in store.list(paths::PAIR).unwrap_or_default() {
        book.waiting.insert(path, (None, Instant::now()));
    }
    let app_state = HubApp {
        objects: Arc::new(store),
        state: state.clone(),
        changes: Changes::default(),
        attempts: attempts.clone(),
        pairing: Arc::new(Mutex::new(book)),
    };
    let app = Router::new()
        .route("/v1/objects/{*path}", get(read_object).put(write_object).delete(delete_object))
        .route("/v1/list", get(list))
        .route("/v1/wait", get(wait))
        .route("/v1/hub/claim", post(claim))
        .layer(DefaultBodyLimit::disable()) // bodies are read after authorisation, with a limit per client
        .with_state(app_state);
    let events = attempts.clone();
    let limits = ConnectionLimits::new();
    runtime.spawn(async move {
        loop {
            let Ok((tcp, remote)) = listener.accept().await else { continue };
            let Some(slot) = limits.admit() else {
                record(&events, &remote.to_string(), None, false, "refused: too many connections at once".into());
                continue;
            };
            let (acceptor, app, events) = (acceptor.clone(), app.clone(), events.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let address = remote.to_string();
                let tls = match ConnectionLimits::handshake(&acceptor, tcp).await {
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
                let _ = ConnectionLimits::http1().serve_connection(TokioIo::new(tls), service).await;
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

/// Whether `device` may delete `path` from the hub: a segment or snapshot object of its own
/// (never a HEAD, never another device's objects).
fn prunable_by(path: &str, device: DeviceId) -> bool {
    matches!(
        paths::parse(path),
        Some(StorePath::Segment(owner, _) | StorePath::Snapshot(owner, _) | StorePath::SnapshotPart(owner, ..))
            if owner == device
    )
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
    if paths::parse(&path).is_none() {
        return StatusCode::NOT_FOUND.into_response(); // no ferry object lives there
    }
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

/// May `client` write at `path`? Decided before the body is read, from the path and who asks:
/// the most bytes it may send, or the refusal.
fn admit_write(app: &HubApp, client: &Client, path: &str, replace: bool) -> Result<usize, NotDone> {
    if is_pairing(path) {
        if replace {
            return Err(forbidden(app, client, None, format!("`{path}`: a pairing object is written once")));
        }
        let pinned = app.pinned_quietly(client).is_some();
        let (total, mine) = match app.pairing.lock() {
            Ok(book) => (book.waiting.len(), book.written_by(&client.key)),
            Err(_) => return Err(failed("the hub's pairing book is poisoned")),
        };
        if total >= MAX_PAIR_OBJECTS || (!pinned && mine >= MAX_PAIR_OBJECTS_PER_KEY) {
            return Err(forbidden(app, client, None, "too many pairings wait on this hub: try again later".into()));
        }
        return Ok(MAX_PAIR_OBJECT);
    }
    if paths::parse(path).is_none() {
        return Err(forbidden(app, client, None, format!("`{path}` is not a ferry store path")));
    }
    app.pinned(client).map(|_| MAX_OBJECT)
}

/// May `client` store `bytes` at `path`, now that they are read? What the write means for the
/// pins if so. A device replaces only objects of its own log (its HEAD, its rewritten
/// segments) and the passphrase slot; everything else is written once. Registry objects are
/// taken only if devices would accept them (`HubState::judge`).
fn authorize_write(
    app: &HubApp,
    client: &Client,
    path: &str,
    bytes: &[u8],
    replace: bool,
) -> Result<Accepted, NotDone> {
    if is_pairing(path) {
        return Ok(Accepted::Unsealed);
    }
    let (device, vault) = app.pinned(client)?;
    let refuse = |why: String| forbidden(app, client, Some(device), why);
    let state = app.state.lock().map_err(|_| failed("the hub's state is poisoned"))?;
    let accepted =
        check_write(path, bytes, vault, &|d| state.key_of(d)).map_err(|refusal| refuse(refusal.to_string()))?;
    let replaceable = match &accepted {
        Accepted::Unsealed => is_passphrase_slot(path),
        Accepted::Sealed { owner } => *owner == Some(device),
        Accepted::Enrolls { .. } | Accepted::Revokes { .. } => false,
    };
    if replace && !replaceable {
        return Err(refuse(format!(
            "`{path}` is written once (a device replaces only its own HEAD and segments, and the passphrase slot)"
        )));
    }
    let epoch_writer = |epoch: &EpochRef| {
        let bytes = app.objects.get(&paths::key_epoch(epoch)).ok()??;
        Some(Header::parse(&bytes).ok()?.device_id)
    };
    state.judge(&accepted, epoch_writer).map_err(|refusal| refuse(refusal.to_string()))?;
    Ok(accepted)
}

fn is_passphrase_slot(path: &str) -> bool {
    matches!(paths::parse(path), Some(StorePath::KeySlot(_, slot)) if slot == "passphrase")
}

async fn write_object(
    State(app): State<HubApp>,
    Extension(client): Extension<Client>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let create_only = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == b"*");
    let limit = match admit_write(&app, &client, &path, !create_only) {
        Ok(limit) => limit,
        Err(not_done) => return not_done.into_response(),
    };
    let body: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            let why = format!("`{path}`: the body is larger than {limit} bytes, or was cut");
            return forbidden(&app, &client, None, why).into_response();
        }
    };
    if create_only && app.objects.get(&path).ok().flatten().is_some_and(|held| held == body) {
        return StatusCode::PRECONDITION_FAILED.into_response(); // a relay of what is here already
    }
    let accepted = match authorize_write(&app, &client, &path, &body, !create_only) {
        Ok(accepted) => accepted,
        Err(not_done) => return not_done.into_response(),
    };
    let pairing = is_pairing(&path);
    let written_path = path.clone();
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
        if pairing {
            app.note_pairing_object(written_path, client.key).await;
        }
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
    let device = app.pinned_quietly(&client);
    if device.is_some_and(|device| prunable_by(&path, device)) {
        // A device prunes its own log: segments a snapshot stands for, its old snapshots.
        return match app.blocking(move |objects| objects.delete(&path)).await {
            Ok(()) => {
                app.changes.bump();
                StatusCode::NO_CONTENT.into_response()
            }
            Err(not_done) => not_done.into_response(),
        };
    }
    if !is_pairing(&path) {
        let why = format!(
            "`{path}`: a hub deletes only finished pairing exchanges, and a device's own segments and snapshots \
             when that device prunes them"
        );
        return forbidden(&app, &client, device, why).into_response();
    }
    let writer = app.pairing.lock().ok().and_then(|book| book.waiting.get(&path).and_then(|(writer, _)| *writer));
    if device.is_none() && writer.is_some_and(|writer| writer != client.key) {
        let why = format!("`{path}`: only the key that wrote a pairing object (or a device of the vault) deletes it");
        return forbidden(&app, &client, None, why).into_response();
    }
    let removed = path.clone();
    match app.blocking(move |objects| objects.delete(&path)).await {
        Ok(()) => {
            if let Ok(mut book) = app.pairing.lock() {
                book.waiting.remove(&removed);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(not_done) => not_done.into_response(),
    }
}

impl HubApp {
    /// The device the client is pinned as, without recording a refusal.
    fn pinned_quietly(&self, client: &Client) -> Option<DeviceId> {
        self.state.lock().ok()?.device_with_key(&client.key)
    }

    /// Notes a new pairing object, and deletes the ones past their lifetime.
    async fn note_pairing_object(&self, path: String, key: [u8; 32]) {
        let expired = match self.pairing.lock() {
            Ok(mut book) => {
                let now = Instant::now();
                book.waiting.insert(path, (Some(key), now));
                book.expire(now)
            }
            Err(_) => return,
        };
        if !expired.is_empty() {
            let _ = self
                .blocking(move |objects| {
                    for path in &expired {
                        objects.delete(path)?;
                    }
                    Ok(())
                })
                .await;
        }
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
pub(crate) struct ParsedClaim {
    secret: [u8; 32],
    vault: VaultId,
    devices: Vec<(DeviceId, [u8; 32])>,
}

/// Reads a claim request's body: `None` for anything but a well-formed claim.
pub(crate) fn read_claim(body: &[u8]) -> Option<ParsedClaim> {
    serde_json::from_slice(body).ok().as_ref().and_then(parse_claim)
}

fn parse_claim(claim: &Claim) -> Option<ParsedClaim> {
    let decode = |text: &str| -> Option<[u8; 32]> { hex::decode(text).ok()?.try_into().ok() };
    let devices =
        claim.devices.iter().map(|(id, key)| Some((id.parse().ok()?, decode(key)?))).collect::<Option<Vec<_>>>()?;
    Some(ParsedClaim { secret: decode(&claim.secret)?, vault: claim.vault.parse().ok()?, devices })
}

async fn claim(State(app): State<HubApp>, Extension(client): Extension<Client>, body: Bytes) -> Response {
    let Some(ParsedClaim { secret, vault, devices }) = read_claim(&body) else {
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

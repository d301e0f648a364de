//! A peer or a hub as a store: the engine pulls from another device exactly as from a folder or
//! bucket. A peer is read-only (a device publishes by serving what it holds, so there is
//! nothing to push to it); a hub (`hub_server`) takes writes too, and checks each one.

use crate::tls::{Pins, TlsError, TlsIdentity, client_config};
use ferry_format::{DeviceId, VaultId};
use ferry_store::{Created, Fetched, HubLocation, Store, StoreError, StoreErrorKind, check_path};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use std::time::Duration;

/// Another device of the vault, or a hub, reached over mutual TLS.
pub struct PeerStore {
    base: String,
    label: String,
    client: Client,
    /// A hub: takes writes.
    hub: bool,
    /// The other side answered a batch with "no such route" (a hub, an older ferry): read
    /// objects one by one from then on.
    no_batch: std::sync::atomic::AtomicBool,
}

/// How long a connection may take to open (a LAN peer answers in milliseconds).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long past a long-poll's end its answer may take before the peer counts as lost.
pub(crate) const WAIT_GRACE: Duration = Duration::from_secs(2);

impl std::fmt::Debug for PeerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerStore({})", self.label)
    }
}

impl PeerStore {
    /// A peer at `addr` (`host:port`), accepted only if its certificate key is pinned.
    ///
    /// # Errors
    /// TLS or client setup.
    pub fn new(addr: &str, identity: &TlsIdentity, pins: Pins) -> Result<Self, TlsError> {
        let client = Client::builder()
            .tls_backend_preconfigured(client_config(identity, pins)?)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        // The peer is identified by its key, not its name: any name works for SNI.
        Ok(Self {
            base: format!("https://{addr}"),
            label: format!("peer:{addr}"),
            client,
            hub: false,
            no_batch: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The hub at `location`, accepted only if its certificate carries the key the location names.
    ///
    /// # Errors
    /// TLS or client setup.
    pub fn hub(location: &HubLocation, identity: &TlsIdentity) -> Result<Self, TlsError> {
        let pins = Pins::default();
        // A hub is no device: the id beside its pinned key is never shown or used.
        pins.set([(DeviceId::from_bytes([0; 16]), location.key)]);
        let mut store = Self::new(&location.address, identity, pins)?;
        store.label = location.to_text();
        store.hub = true;
        Ok(store)
    }

    /// Claims an unclaimed hub for `vault` with its active `devices` (this device among them),
    /// using the location's one-time secret. Claiming a hub this vault holds already is a no-op.
    ///
    /// # Errors
    /// The hub refuses (wrong secret, another vault's), or cannot be reached.
    pub fn claim(&self, secret: &[u8; 32], vault: VaultId, devices: &[(DeviceId, [u8; 32])]) -> Result<(), StoreError> {
        let claim = crate::hub_server::Claim {
            secret: hex::encode(secret),
            vault: vault.to_string(),
            devices: devices.iter().map(|(id, key)| (id.to_string(), hex::encode(key))).collect(),
        };
        let path = "v1/hub/claim";
        let response = self.post_json(path, &claim)?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(self.answer_error(path, response)),
        }
    }

    /// POSTs `body` as JSON to `path`.
    fn post_json(&self, path: &str, body: &impl serde::Serialize) -> Result<reqwest::blocking::Response, StoreError> {
        let body = serde_json::to_vec(body).map_err(|e| StoreError::new(StoreErrorKind::Other, path, e.to_string()))?;
        self.client
            .post(format!("{}/{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .map_err(|e| self.error(path, &e))
    }

    /// An unexpected answer, with the reason a hub gives in the body of a refusal.
    fn answer_error(&self, path: &str, response: reqwest::blocking::Response) -> StoreError {
        let status = response.status();
        if status == StatusCode::FORBIDDEN {
            let why = response.text().unwrap_or_default();
            return StoreError::new(StoreErrorKind::Denied, path, format!("{} refused: {why}", self.label));
        }
        self.status_error(path, status)
    }

    fn write(&self, path: &str, bytes: &[u8], create_only: bool) -> Result<StatusCode, StoreError> {
        check_path(path)?;
        if !self.hub {
            return Err(read_only(path));
        }
        let mut request = self.client.put(format!("{}/v1/objects/{path}", self.base)).body(bytes.to_vec());
        if create_only {
            request = request.header(reqwest::header::IF_NONE_MATCH, "*");
        }
        let response = request.send().map_err(|e| self.error(path, &e))?;
        match response.status() {
            status @ (StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::PRECONDITION_FAILED) => Ok(status),
            _ => Err(self.answer_error(path, response)),
        }
    }

    fn error(&self, path: &str, err: &reqwest::Error) -> StoreError {
        let text = error_chain(err);
        let kind = if text.contains("not an active device") || text.contains("certificate") || text.contains("alert") {
            StoreErrorKind::Denied
        } else {
            StoreErrorKind::Unavailable
        };
        let message = match kind {
            StoreErrorKind::Denied if self.hub => format!(
                "{} refused this device, or presented a key other than the one its location names: {text}",
                self.label
            ),
            StoreErrorKind::Denied => format!(
                "{} refused the connection, or is not an active device of this vault (mutual TLS): {text}",
                self.label
            ),
            _ => format!("{} cannot be reached: {text}", self.label),
        };
        StoreError::new(kind, path, message)
    }

    fn status_error(&self, path: &str, status: StatusCode) -> StoreError {
        let kind = if status.is_server_error() { StoreErrorKind::Unavailable } else { StoreErrorKind::Other };
        StoreError::new(kind, path, format!("{} answered {status}", self.label))
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read_only(path: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Denied,
        path,
        "a peer is read-only: it serves what it holds (sync with a peer pulls; push goes to stores and hubs)",
    )
}

/// The vault a device claims a hub for: its id and active devices' keys.
pub type ClaimAs = (VaultId, Vec<(DeviceId, [u8; 32])>);

/// Opens hubs as the device whose Ed25519 secret key is `device_key` (an ephemeral key serves
/// a device still joining: it only reaches `pair/`). A location with a claim secret is claimed
/// first, for `claim_as`.
pub fn hub_opener(device_key: ferry_format::SecretBytes, claim_as: Option<ClaimAs>) -> ferry_store::HubOpener {
    std::sync::Arc::new(move |location: &HubLocation| {
        let setup = |e: TlsError| StoreError::new(StoreErrorKind::Other, location.to_text(), e.to_string());
        let identity = TlsIdentity::new(&device_key).map_err(setup)?;
        let hub = PeerStore::hub(location, &identity).map_err(setup)?;
        if let (Some(secret), Some((vault, devices))) = (&location.claim_secret, &claim_as) {
            hub.claim(secret, *vault, devices)?;
        }
        Ok(std::sync::Arc::new(hub) as std::sync::Arc<dyn Store>)
    })
}

/// What a peer's `/v1/wait` answered.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Waited {
    /// The device that answered (as it says; its key was checked by TLS).
    pub device: String,
    /// The version of what it serves.
    pub version: String,
}

impl PeerStore {
    /// Waits (up to `timeout`) until what the peer serves differs from version `seen`; an empty
    /// `seen` answers at once.
    ///
    /// # Errors
    /// The peer is unreachable, refuses, or answers nonsense.
    pub fn wait_for_change(&self, seen: &str, timeout: Duration) -> Result<Waited, StoreError> {
        let path = "v1/wait";
        let request = self
            .client
            // Versions are hex digits and a dash (anything else is dropped): safe in a query.
            .get(format!(
                "{}/v1/wait?seen={}&timeout_ms={}",
                self.base,
                seen.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>(),
                timeout.as_millis()
            ))
            // A peer that is gone or frozen must be noticed soon after the wait should have
            // ended: allow the network a moment, no more.
            .timeout(timeout + WAIT_GRACE);
        ferry_store::outside_async(|| self.json(path, request))
    }

    /// Sends `request` and reads its JSON answer.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, StoreError> {
        let response = request.send().map_err(|e| self.error(path, &e))?;
        if response.status() != StatusCode::OK {
            return Err(self.answer_error(path, response));
        }
        let body = response.bytes().map_err(|e| self.error(path, &e))?;
        serde_json::from_slice(&body)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, path, format!("{}: bad answer: {e}", self.label)))
    }

    /// The address it was reached at.
    pub fn address(&self) -> &str {
        self.base.strip_prefix("https://").unwrap_or(&self.base)
    }
}

impl PeerStore {
    // The blocking HTTP calls behind the `Store` methods, which run them outside any async
    // runtime of the caller's (`ferry_store::outside_async`).

    fn get_if_changed_now(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        check_path(path)?;
        let mut request = self.client.get(format!("{}/v1/objects/{path}", self.base));
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().map_err(|e| self.error(path, &e))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Fetched::Unchanged),
            StatusCode::NOT_FOUND => Ok(Fetched::Missing),
            StatusCode::OK => {
                let etag =
                    response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let bytes = response.bytes().map_err(|e| self.error(path, &e))?.to_vec();
                Ok(Fetched::Changed { bytes, etag })
            }
            _ => Err(self.answer_error(path, response)),
        }
    }

    /// `paths` in batches of [`ferry_format::batch::MAX_BATCH`], one request each; `None` when the
    /// other side has no batch route (then the caller reads one by one).
    fn get_many_now(&self, paths: &[String]) -> Result<Option<Vec<Option<Vec<u8>>>>, StoreError> {
        let mut objects = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(ferry_format::batch::MAX_BATCH) {
            let path = "v1/batch";
            let response = self.post_json(path, &chunk)?;
            match response.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => return Ok(None),
                _ => return Err(self.answer_error(path, response)),
            }
            let answer = response.bytes().map_err(|e| self.error(path, &e))?;
            let decoded = ferry_format::batch::decode(&answer, chunk.len()).map_err(|why| {
                StoreError::new(StoreErrorKind::Other, path, format!("{}: bad batch answer: {why}", self.label))
            })?;
            objects.extend(decoded);
        }
        Ok(Some(objects))
    }

    fn list_now(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_path(prefix)?;
        let request = self
            .client
            // A checked path holds only letters, digits, `.`, `_`, `-` and `/`: safe in a query.
            .get(format!("{}/v1/list?prefix={prefix}", self.base));
        self.json(prefix, request)
    }

    fn delete_now(&self, path: &str) -> Result<(), StoreError> {
        check_path(path)?;
        if !self.hub {
            return Err(read_only(path));
        }
        let response =
            self.client.delete(format!("{}/v1/objects/{path}", self.base)).send().map_err(|e| self.error(path, &e))?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.answer_error(path, response)),
        }
    }
}

impl Store for PeerStore {
    fn location(&self) -> String {
        self.label.clone()
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get_if_changed(path, None)? {
            Fetched::Changed { bytes, .. } => Ok(Some(bytes)),
            Fetched::Missing | Fetched::Unchanged => Ok(None),
        }
    }

    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        ferry_store::outside_async(|| self.get_if_changed_now(path, etag))
    }

    fn get_many(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        use std::sync::atomic::Ordering;
        for path in paths {
            check_path(path)?;
        }
        if paths.len() > 1 && !self.no_batch.load(Ordering::Relaxed) {
            match ferry_store::outside_async(|| self.get_many_now(paths))? {
                Some(objects) => return Ok(objects),
                None => self.no_batch.store(true, Ordering::Relaxed),
            }
        }
        paths.iter().map(|path| self.get(path)).collect()
    }

    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        let status = ferry_store::outside_async(|| self.write(path, bytes, true))?;
        Ok(if status == StatusCode::PRECONDITION_FAILED { Created::Exists } else { Created::New })
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        ferry_store::outside_async(|| self.write(path, bytes, false)).map(|_| ())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        ferry_store::outside_async(|| self.list_now(prefix))
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        ferry_store::outside_async(|| self.delete_now(path))
    }
}

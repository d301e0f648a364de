//! A store in an S3-compatible bucket (AWS S3, Cloudflare R2, Backblaze B2, MinIO…), through
//! OpenDAL's S3 service.
//!
//! - Immutable objects are written with `If-None-Match: *`. Servers that ignore the header are
//!   detected once per store (a probe object written twice) and then get check-then-write, which
//!   is safe because each device writes only under its own prefix and retries identical bytes.
//! - HEAD reads are conditional (`If-None-Match: <etag>`): an unchanged HEAD costs one request.
//! - Credentials come from the standard places (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, AWS profile files) or from a credentials command printing AWS
//!   `credential_process` JSON. They are never part of the location shown to people. EC2
//!   instance metadata is not consulted.
//! - Requests time out, and transient failures are retried a few times with jittered backoff
//!   here; longer outages are the sync layer's business (recorded attempts, backoff).

use crate::{Created, Fetched, Store, StoreError, StoreErrorKind, check_path};
use opendal::{ErrorKind, Operator};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where a bucket is, parsed from `s3://bucket/prefix?endpoint=…&region=…&path_style=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside the bucket ("" for the whole bucket).
    pub prefix: String,
    /// A custom endpoint (R2, B2, MinIO, a local server); AWS when absent.
    pub endpoint: Option<String>,
    /// The region (`auto` for R2); `us-east-1` when absent.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-host style
    /// (`bucket.endpoint/key`). Default: path style with a custom endpoint, virtual host on AWS.
    pub path_style: Option<bool>,
}

impl S3Location {
    /// Parses an `s3://` URL.
    ///
    /// # Errors
    /// A malformed URL, credentials inside it, or an unknown parameter.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let bad = |why: String| {
            StoreError::new(
                StoreErrorKind::InvalidPath,
                redact(text),
                format!(
                    "{why}; an S3 store is written s3://bucket/prefix?endpoint=https://host&region=auto&path_style=true"
                ),
            )
        };
        let url = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in the store location (use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or --credentials-command)".into()));
        }
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| bad("no bucket".into()))?.to_owned();
        let prefix = url.path().trim_matches('/').to_owned();
        let mut location = Self { bucket, prefix, endpoint: None, region: None, path_style: None };
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "endpoint" => location.endpoint = Some(value.into_owned()),
                "region" => location.region = Some(value.into_owned()),
                "path_style" => {
                    location.path_style = Some(match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => return Err(bad(format!("path_style must be true or false, not `{other}`"))),
                    })
                }
                other => return Err(bad(format!("unknown parameter `{other}`"))),
            }
        }
        Ok(location)
    }

    /// The canonical text form (never with credentials).
    pub fn to_text(&self) -> String {
        let mut text = format!("s3://{}/{}", self.bucket, self.prefix);
        let mut params = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            params.push(format!("endpoint={endpoint}"));
        }
        if let Some(region) = &self.region {
            params.push(format!("region={region}"));
        }
        if let Some(path_style) = self.path_style {
            params.push(format!("path_style={path_style}"));
        }
        if !params.is_empty() {
            text.push('?');
            text.push_str(&params.join("&"));
        }
        text
    }
}

/// Drops anything that looks like credentials from a URL before it is shown.
fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(unparsable store URL)".to_owned(),
    }
}

/// Credentials given explicitly (from a credentials command); otherwise the standard places.
#[derive(Clone, Default)]
pub struct S3Credentials {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `SessionToken`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Credentials(<redacted>)")
    }
}

impl S3Credentials {
    /// Runs a credentials command (`sh -c`) that prints AWS `credential_process` JSON:
    /// `{"Version": 1, "AccessKeyId": …, "SecretAccessKey": …, "SessionToken": …}`.
    ///
    /// # Errors
    /// The command fails or prints something else. The output is never included in errors.
    pub fn from_command(command: &str) -> Result<Self, StoreError> {
        let fail = |why: String| {
            StoreError::new(StoreErrorKind::Denied, "credentials", format!("credentials command `{command}`: {why}"))
        };
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| fail(e.to_string()))?;
        if !output.status.success() {
            return Err(fail(format!("exited with {}", output.status)));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|_| fail("did not print credential_process JSON".into()))?;
        let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Self {
            access_key_id: field("AccessKeyId").ok_or_else(|| fail("printed no AccessKeyId".into()))?,
            secret_access_key: field("SecretAccessKey").ok_or_else(|| fail("printed no SecretAccessKey".into()))?,
            session_token: field("SessionToken"),
        })
    }
}

/// A bucket (or a prefix of one) as a store.
#[derive(Debug)]
pub struct S3Store {
    operator: Operator,
    /// Always `Some` until dropped (taken then, to shut down without blocking).
    runtime: Option<tokio::runtime::Runtime>,
    location: S3Location,
    /// Whether the server honours `If-None-Match: *` on writes (probed on first use).
    conditional_writes: OnceLock<bool>,
    /// Requests sent (one per operation; retries and listing pages beyond the first not counted).
    requests: AtomicU64,
}

impl Drop for S3Store {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an app's async runtime: let it go.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl S3Store {
    /// Runs one request to completion on the private runtime, safely from async code too.
    fn block_on<F>(&self, request: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        crate::outside_async(|| match &self.runtime {
            Some(runtime) => runtime.block_on(request),
            None => unreachable_runtime(),
        })
    }

    /// Prepares a store for a bucket location; no request is made yet.
    ///
    /// # Errors
    /// The configuration is refused by the S3 client.
    pub fn new(location: S3Location, credentials: Option<S3Credentials>) -> Result<Self, StoreError> {
        // Installs OpenDAL's HTTP transport (reqwest) once per process; later calls do nothing.
        opendal::install_default();
        let config_error =
            |e: opendal::Error| StoreError::new(StoreErrorKind::InvalidPath, location.to_text(), e.to_string());
        let mut builder = opendal::services::S3::default()
            .bucket(&location.bucket)
            .root(&format!("/{}", location.prefix))
            .region(location.region.as_deref().unwrap_or("us-east-1"))
            // No EC2 instance-metadata lookups: ferry runs on personal devices, where they only
            // time out (16 s per store) and send traffic to a link-local address.
            .disable_ec2_metadata();
        if let Some(endpoint) = &location.endpoint {
            builder = builder.endpoint(endpoint);
        }
        let path_style = location.path_style.unwrap_or(location.endpoint.is_some());
        if !path_style {
            builder = builder.enable_virtual_host_style();
        }
        if let Some(credentials) = credentials {
            builder = builder
                .disable_config_load()
                .access_key_id(&credentials.access_key_id)
                .secret_access_key(&credentials.secret_access_key);
            if let Some(token) = &credentials.session_token {
                builder = builder.session_token(token);
            }
        }
        let operator = Operator::new(builder)
            .map_err(config_error)?
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(30))
                    .with_io_timeout(Duration::from_secs(15)),
            )
            // A few quick retries for a dropped connection or a 5xx; longer outages belong to the
            // sync layer's recorded attempts and backoff, and must not stall a command.
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(3)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_jitter(),
            );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::new(StoreErrorKind::Other, location.to_text(), e.to_string()))?;
        Ok(Self {
            operator,
            runtime: Some(runtime),
            location,
            conditional_writes: OnceLock::new(),
            requests: AtomicU64::new(0),
        })
    }

    /// Requests sent to the server so far: one per operation (a listing of up to 1,000 keys is
    /// one request; retries of a failed request are not counted).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, path: &str, err: &opendal::Error) -> StoreError {
        // OpenDAL reports credentials it could not find as a failure to sign the request.
        let unsigned = err.message().contains("signing");
        let kind = match err.kind() {
            _ if unsigned => StoreErrorKind::Denied,
            ErrorKind::PermissionDenied => StoreErrorKind::Denied,
            ErrorKind::NotFound => StoreErrorKind::Missing,
            ErrorKind::ConfigInvalid | ErrorKind::Unsupported => StoreErrorKind::Other,
            ErrorKind::RateLimited => StoreErrorKind::Unavailable,
            _ if err.is_temporary() => StoreErrorKind::Unavailable,
            // Connection refused, DNS, TLS, 5xx after retries: the bucket is out of reach now.
            ErrorKind::Unexpected => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        };
        let hint = match kind {
            StoreErrorKind::Denied if unsigned => {
                ": no usable S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass --credentials-command; then check the credentials"
            }
            StoreErrorKind::Denied => {
                ": access denied; check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, the profile or --credentials-command) and the bucket's policy"
            }
            StoreErrorKind::Missing => ": check the bucket name, region and endpoint",
            StoreErrorKind::Unavailable => ": the bucket cannot be reached now; ferry will retry",
            _ => "",
        };
        StoreError::new(kind, format!("{}/{path}", self.location.to_text()), format!("{}{hint}", err.message()))
    }

    /// Whether the server refuses a second create-if-absent write of one name.
    fn supports_conditional_writes(&self) -> bool {
        *self.conditional_writes.get_or_init(|| {
            let mut name = [0u8; 8];
            let _ = getrandom::fill(&mut name);
            let probe = format!(".ferry-probe-{}", hex::encode(name));
            let write = |bytes: &'static [u8]| {
                self.block_on(self.operator.write_with(&probe, bytes).if_not_exists(true).into_future())
            };
            self.requests.fetch_add(3, Ordering::Relaxed);
            let supported =
                write(b"1").is_ok() && matches!(write(b"2"), Err(e) if e.kind() == ErrorKind::ConditionNotMatch);
            let _ = self.block_on(self.operator.delete(&probe));
            supported
        })
    }

    fn exists(&self, path: &str) -> Result<bool, StoreError> {
        self.count();
        match self.block_on(self.operator.stat(path)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(path, &e)),
        }
    }
}

impl Store for S3Store {
    fn location(&self) -> String {
        self.location.to_text()
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_path(path)?;
        self.count();
        match self.block_on(self.operator.read(path)) {
            Ok(buffer) => Ok(Some(buffer.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(path, &e)),
        }
    }

    fn get_many(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        for path in paths {
            check_path(path)?;
            self.count();
        }
        // All at once: a batch of segments costs one round trip, not one per segment.
        let (operator, asked) = (self.operator.clone(), paths.to_vec());
        let finished = self.block_on(async move {
            let mut reads = tokio::task::JoinSet::new();
            for (index, path) in asked.into_iter().enumerate() {
                let operator = operator.clone();
                reads.spawn(async move { (index, operator.read(&path).await) });
            }
            let mut finished = Vec::new();
            while let Some(read) = reads.join_next().await {
                finished.push(read);
            }
            finished
        });
        let mut out = vec![None; paths.len()];
        for read in finished {
            let (index, read) =
                read.map_err(|e| StoreError::new(StoreErrorKind::Other, "", format!("a read task failed: {e}")))?;
            match read {
                Ok(buffer) => out[index] = Some(buffer.to_vec()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.error(&paths[index], &e)),
            }
        }
        Ok(out)
    }

    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        check_path(path)?;
        let mut stat = self.operator.stat_with(path);
        if let Some(etag) = etag {
            stat = stat.if_none_match(etag);
        }
        self.count();
        let metadata = match self.block_on(stat.into_future()) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => return Ok(Fetched::Unchanged),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Fetched::Missing),
            Err(e) => return Err(self.error(path, &e)),
        };
        // Some servers (s3s-fs) ignore If-None-Match on HEAD: compare the etag here.
        if etag.is_some() && metadata.etag() == etag {
            return Ok(Fetched::Unchanged);
        }
        // Read the body; should the object change in between, the next pull sees a new etag.
        match self.get(path)? {
            Some(bytes) => Ok(Fetched::Changed { bytes, etag: metadata.etag().map(str::to_owned) }),
            None => Ok(Fetched::Missing),
        }
    }

    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        check_path(path)?;
        if !self.supports_conditional_writes() {
            if self.exists(path)? {
                return Ok(Created::Exists);
            }
            return self.put(path, bytes).map(|()| Created::New);
        }
        self.count();
        let write = self.operator.write_with(path, bytes.to_vec()).if_not_exists(true);
        match self.block_on(write.into_future()) {
            Ok(_) => Ok(Created::New),
            Err(e) if matches!(e.kind(), ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists) => {
                Ok(Created::Exists)
            }
            Err(e) => Err(self.error(path, &e)),
        }
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_path(path)?;
        self.count();
        self.block_on(self.operator.write(path, bytes.to_vec())).map(|_| ()).map_err(|e| self.error(path, &e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.list_sized(prefix)?.into_iter().map(|listed| listed.path).collect())
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<crate::Listed>, StoreError> {
        check_path(prefix)?;
        self.count();
        let entries = self
            .block_on(self.operator.list_with(prefix).recursive(true).into_future())
            .map_err(|e| self.error(prefix, &e))?;
        // ListObjectsV2 gives every object's size with its name.
        let mut listed: Vec<crate::Listed> = entries
            .into_iter()
            .map(|entry| crate::Listed {
                path: entry.path().trim_start_matches('/').to_owned(),
                size: Some(entry.metadata().content_length()),
            })
            .filter(|listed| !listed.path.ends_with('/') && check_path(&listed.path).is_ok())
            .collect();
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listed)
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        check_path(path)?;
        self.count();
        match self.block_on(self.operator.delete(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(path, &e)),
        }
    }
}

/// The runtime is taken only by `Drop`, after which no method can run.
#[cold]
fn unreachable_runtime() -> ! {
    unreachable!("S3Store used after drop")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls_and_refuses_credentials_in_them() {
        let location =
            S3Location::parse("s3://my-bucket/ferry/vault?endpoint=https://acct.r2.cloudflarestorage.com&region=auto")
                .unwrap();
        assert_eq!(location.bucket, "my-bucket");
        assert_eq!(location.prefix, "ferry/vault");
        assert_eq!(location.region.as_deref(), Some("auto"));
        assert_eq!(S3Location::parse(&location.to_text()).unwrap(), location);
        assert_eq!(S3Location::parse("s3://b?path_style=false").unwrap().path_style, Some(false));

        let err = S3Location::parse("s3://AKIAXXXX:secret@bucket/x").unwrap_err();
        assert!(err.message.contains("credentials do not belong"), "{err}");
        assert!(!err.to_string().contains("secret"), "credentials must not be echoed: {err}");
        assert!(S3Location::parse("s3:///nobucket").is_err());
        assert!(S3Location::parse("s3://b?pathstyle=1").unwrap_err().message.contains("unknown parameter"));
    }

    #[test]
    fn credentials_command_reads_credential_process_json_and_is_redacted() {
        let creds =
            S3Credentials::from_command(r#"printf '{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SK"}'"#).unwrap();
        assert_eq!((creds.access_key_id.as_str(), creds.secret_access_key.as_str()), ("AK", "SK"));
        assert_eq!(format!("{creds:?}"), "S3Credentials(<redacted>)");
        assert!(S3Credentials::from_command("echo not-json").is_err());
        assert!(S3Credentials::from_command("exit 2").unwrap_err().message.contains("exited"));
    }
}

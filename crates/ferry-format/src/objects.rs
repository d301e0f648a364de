//! The payloads inside sealed objects, and the public vault file. **This module and `seal`
//! define every byte ferry writes to a store.**
//!
//! Payloads are CBOR (RFC 8949) maps with short text keys, via serde; unknown keys are ignored
//! so later versions can add fields.

use crate::{Collection, DeviceId, Hlc, JsonValue, Op, OpId, OpKind, RecordKey, VaultId};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Encodes a payload as CBOR.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and our payload types always serialize.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

/// Decodes a CBOR payload.
///
/// # Errors
/// A description of what is malformed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}

/// Decodes the next CBOR item of a stream (an export file).
///
/// # Errors
/// A description of what is malformed or cut.
pub fn decode_from<T: DeserializeOwned>(reader: impl std::io::Read) -> Result<T, String> {
    ciborium::from_reader(reader).map_err(|e| e.to_string())
}

/// `ferry-vault.json`: the one plaintext object. Nothing in it is secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VaultFile {
    /// Always `"ferry-vault"`.
    pub format: String,
    /// The store format version (1).
    pub version: u32,
    /// The vault's id, in hexadecimal.
    pub vault_id: String,
    /// When the vault was created (ms since the Unix epoch).
    pub created_ms: u64,
    /// The vault key fingerprint (of the first key epoch, see [`crate::MasterKey::fingerprint`]):
    /// a device compares it with its own before writing anything, so a key mismatch is named
    /// before it can do harm. Public: it reveals nothing usable about the key.
    pub fingerprint: String,
}

impl VaultFile {
    /// The store format version this build writes.
    pub const VERSION: u32 = 2;
}

/// An op id inside a payload: `[device id bytes, counter]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireOpId(#[serde(with = "serde_bytes_16")] pub [u8; 16], pub u64);

/// An op inside a segment. The writing device is the segment's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireOp {
    /// Counter.
    pub n: u64,
    /// Hybrid logical clock.
    pub t: u64,
    /// Collection.
    pub c: String,
    /// Key.
    pub k: String,
    /// Kind: 1 put, 2 delete, 3 forget.
    pub o: u8,
    /// Value (JSON text) of a put; the selector (JSON) of a forget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Parents.
    #[serde(default)]
    pub p: Vec<WireOpId>,
}

impl WireOp {
    /// The wire form of an op.
    pub fn from_op(op: &Op) -> Self {
        let (kind, value) = match &op.kind {
            OpKind::Put(value) => (1, Some(value.as_str().to_owned())),
            OpKind::Delete => (2, None),
            OpKind::Forget(forget) => (3, Some(serde_json::to_string(forget).unwrap_or_default())),
        };
        Self {
            n: op.id.counter,
            t: op.hlc.to_u64(),
            c: op.collection.as_str().to_owned(),
            k: op.key.as_str().to_owned(),
            o: kind,
            v: value,
            p: op.parents.iter().map(|p| WireOpId(*p.device.as_bytes(), p.counter)).collect(),
        }
    }

    /// Validates a wire op written by `device` into an op.
    ///
    /// # Errors
    /// What is malformed: names, kind, or value.
    pub fn into_op(self, device: DeviceId) -> Result<Op, String> {
        let id = OpId { device, counter: self.n };
        let kind = match (self.o, self.v) {
            (1, Some(value)) => OpKind::Put(JsonValue::from_wire(value).map_err(|e| format!("op {id}: {e}"))?),
            (2, None) => OpKind::Delete,
            (3, Some(selector)) => {
                OpKind::Forget(serde_json::from_str(&selector).map_err(|e| format!("op {id}: forget selector: {e}"))?)
            }
            (kind, _) => return Err(format!("op {id}: unknown kind {kind}")),
        };
        Ok(Op {
            id,
            hlc: Hlc::from_u64(self.t),
            collection: Collection::any(&self.c).map_err(|e| format!("op {id}: {e}"))?,
            key: RecordKey::new(&self.k).map_err(|e| format!("op {id}: {e}"))?,
            kind,
            parents: self.p.into_iter().map(|p| OpId { device: DeviceId::from_bytes(p.0), counter: p.1 }).collect(),
        })
    }
}

/// A segment: a batch of one device's ops, chained to the device's previous segment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentPayload {
    /// This segment's sequence number (1, 2, …), equal to the number in its name.
    pub seq: u64,
    /// BLAKE3 of the previous segment's sealed bytes; absent for segment 1.
    #[serde(default, with = "serde_bytes_32_opt")]
    pub prev: Option<[u8; 32]>,
    /// The ops, in increasing counter order.
    pub ops: Vec<WireOp>,
}

/// A device's HEAD: its last segment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadPayload {
    /// The last segment's sequence number.
    pub seq: u64,
    /// BLAKE3 of that segment's sealed bytes.
    #[serde(with = "serde_bytes_32")]
    pub hash: [u8; 32],
    /// How many times the device rewrote its log to purge forgotten ops (0: never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// With a generation: the first segment that last rewrite changed; readers verify and
    /// import again from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten_from: Option<u64>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Where a snapshot's state ends for one device's log: the last segment it covers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CutEntry {
    /// The device.
    #[serde(with = "serde_bytes_16")]
    pub d: [u8; 16],
    /// Its last segment the snapshot covers (a reader continues the chain after it).
    pub seq: u64,
    /// BLAKE3 of that segment's sealed bytes (the `prev` of the next one).
    #[serde(with = "serde_bytes_32")]
    pub hash: [u8; 32],
    /// The log generation of that segment (see [`HeadPayload::generation`]).
    #[serde(default)]
    pub g: u32,
    /// The highest op counter of the device in segments up to `seq` (0: none). Every op of
    /// the device in the snapshot is numbered at or below it.
    pub c: u64,
}

/// A snapshot's manifest (`snapshots/<writer>/<n>.snap`): the merged state of the vault at a
/// cut (a version vector: per device, the last segment covered), stored as ops in parts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotPayload {
    /// The writer's snapshot number (1, 2, …), equal to the number in its name.
    pub n: u64,
    /// When it was written (ms since the Unix epoch, the writer's clock).
    pub created_ms: u64,
    /// The cut, one entry per device, sorted by device id.
    pub cut: Vec<CutEntry>,
    /// BLAKE3 of each part's sealed bytes, in order (part 0 first).
    pub parts: Vec<ByteArray32>,
    /// How many ops the parts hold in all.
    pub ops: u64,
}

/// An op inside a snapshot part: a [`WireOp`] with its writer (`d`) named.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotOp {
    /// The writer.
    #[serde(with = "serde_bytes_16")]
    pub d: [u8; 16],
    /// Counter.
    pub n: u64,
    /// Hybrid logical clock.
    pub t: u64,
    /// Collection.
    pub c: String,
    /// Key.
    pub k: String,
    /// Kind: 1 put, 2 delete, 3 forget.
    pub o: u8,
    /// Value (JSON text) of a put; the selector (JSON) of a forget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Parents.
    #[serde(default)]
    pub p: Vec<WireOpId>,
}

impl SnapshotOp {
    /// The snapshot form of an op.
    pub fn from_op(op: &Op) -> Self {
        let WireOp { n, t, c, k, o, v, p } = WireOp::from_op(op);
        Self { d: *op.id.device.as_bytes(), n, t, c, k, o, v, p }
    }

    /// Validates it into an op.
    ///
    /// # Errors
    /// What is malformed: names, kind, or value.
    pub fn into_op(self) -> Result<Op, String> {
        let Self { d, n, t, c, k, o, v, p } = self;
        WireOp { n, t, c, k, o, v, p }.into_op(DeviceId::from_bytes(d))
    }
}

/// A part of a snapshot (`snapshots/<writer>/<n>.<part>.part`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotPartPayload {
    /// The snapshot's number.
    pub n: u64,
    /// This part's index (0, 1, …), equal to the number in its name.
    pub part: u32,
    /// The ops, sorted by writer and counter.
    pub ops: Vec<SnapshotOp>,
}

/// A device's enrollment record (payload of `devices/<device>.dev`; the subject's signing key
/// is the object id, and the signer the header's device).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevicePayload {
    /// The enrolled device.
    #[serde(with = "serde_bytes_16")]
    pub device_id: [u8; 16],
    /// Its name.
    pub name: String,
    /// Its age X25519 recipient (`age1…`), to which vault keys are wrapped.
    pub recipient: String,
    /// When it was enrolled (ms since the Unix epoch).
    pub enrolled_ms: u64,
    /// The vault's recovery recipient, so every device can wrap new key epochs to it.
    pub recovery_recipient: String,
}

/// The start of a key epoch (payload of `keys/<epoch>/epoch`, sealed under the new epoch's key
/// and signed by the device that rotated). Holding epoch N's key thus gives every earlier key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyEpochPayload {
    /// The new epoch (previous + 1).
    pub epoch: u32,
    /// The previous epoch's master key.
    #[serde(with = "serde_bytes_32")]
    pub previous_key: [u8; 32],
    /// The previous epoch's tag (`None` when it is epoch 0): where its directory is, so the
    /// chain of keys can be walked down from the newest.
    pub previous_tag: Option<ByteArray16>,
    /// The devices the new key was wrapped to: the vault's members from this epoch on.
    pub members: Vec<ByteArray16>,
    /// When the epoch began (ms since the Unix epoch).
    pub created_ms: u64,
    /// The vault's recovery recipient (`age1…`), signed here so a device joining at this epoch
    /// takes it from a member's signature, not from any record that happens to open.
    pub recovery_recipient: String,
}

/// A device's revocation (payload of `devices/<device>.revoked`, sealed under the key epoch it
/// ends, so every device of that epoch, the revoked one included, can read it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevocationPayload {
    /// The revoked device.
    #[serde(with = "serde_bytes_16")]
    pub device_id: [u8; 16],
    /// When (ms since the Unix epoch).
    pub revoked_ms: u64,
    /// The key epoch that began with the revocation; the revoked device does not hold it.
    pub new_epoch: u32,
    /// The revoked device's last segment the revoker had imported (0: none). Its later
    /// segments are rejected.
    pub last_seq: u64,
}

/// The start of an export file (`ferry export`): what it holds and the key to open it. The
/// whole file is age-encrypted (to the recovery key or a passphrase), so the key inside is
/// never in plaintext. Then come [`ExportItem`]s, each a CBOR item, ending with
/// [`ExportItem::End`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportHeader {
    /// Always `"ferry-export"`.
    pub format: String,
    /// The export format version (1).
    pub version: u32,
    /// The vault.
    pub vault_id: String,
    /// The newest key epoch.
    pub epoch: u32,
    /// Its tag (`None` for epoch 0).
    pub epoch_tag: Option<ByteArray16>,
    /// Its master key (older keys are in the key epoch objects).
    #[serde(with = "serde_bytes_32")]
    pub key: [u8; 32],
    /// The vault's recovery recipient.
    pub recovery_recipient: String,
    /// When the export was made (ms since the Unix epoch).
    pub exported_ms: u64,
    /// The device that made it.
    pub device: String,
}

impl ExportHeader {
    /// The newest key epoch, as stores name it.
    pub fn epoch_ref(&self) -> crate::EpochRef {
        crate::EpochRef { number: self.epoch, tag: self.epoch_tag.map(|tag| tag.0) }
    }

    /// The export format version this build writes.
    pub const VERSION: u32 = 1;
}

/// One item of an export after its header: a store object exactly as it is stored (sealed), or
/// the end.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ExportItem {
    /// A store object: its path and sealed bytes.
    Object {
        /// The path in a store.
        path: String,
        /// The bytes.
        #[serde(with = "serde_byte_vec")]
        bytes: Vec<u8>,
    },
    /// The end, with the number of objects before it (a cut file is told apart).
    End {
        /// How many objects.
        objects: u64,
    },
}

/// Serde for `Vec<u8>` as one CBOR byte string (not an array of numbers).
pub(crate) mod serde_byte_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let value: ciborium::value::Value = Deserialize::deserialize(deserializer)?;
        value.into_bytes().map_err(|_| D::Error::custom("expected a byte string"))
    }
}

/// 16 bytes encoded as a CBOR byte string.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteArray16(#[serde(with = "serde_bytes_16")] pub [u8; 16]);

/// The list of a blob's chunks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobManifest {
    /// Total size in bytes.
    pub size: u64,
    /// Chunk ids, in order.
    pub chunks: Vec<ByteArray32>,
}

/// 32 bytes encoded as a CBOR byte string.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ByteArray32(#[serde(with = "serde_bytes_32")] pub [u8; 32]);

/// Store paths of every object (DESIGN §4).
pub mod paths {
    use crate::{DeviceId, EpochRef};

    /// The public vault file.
    pub const VAULT_FILE: &str = "ferry-vault.json";
    /// Prefix of device records.
    pub const DEVICES: &str = "devices/";

    /// A key slot: the epoch's master key wrapped to a device (`slot` = device id), the
    /// passphrase or the recovery key.
    pub fn key_slot(epoch: &EpochRef, slot: &str) -> String {
        format!("keys/{epoch}/{slot}.age")
    }

    /// A device's enrollment record.
    pub fn device_record(device: DeviceId) -> String {
        format!("devices/{device}.dev")
    }

    /// Reads the device id from a name listed under [`DEVICES`]; `None` for other files.
    pub fn parse_device_record(name: &str) -> Option<DeviceId> {
        name.strip_prefix(DEVICES).unwrap_or(name).strip_suffix(".dev")?.parse().ok()
    }

    /// A device's revocation; `tag` is the tag of the key epoch it starts, so the name is
    /// unguessable before the revocation is published.
    pub fn revocation(device: DeviceId, tag: &[u8; 16]) -> String {
        format!("devices/{device}.{}.revoked", hex::encode(tag))
    }

    /// Reads the device id and epoch tag from a revocation's name; `None` for other files.
    pub fn parse_revocation(name: &str) -> Option<(DeviceId, [u8; 16])> {
        let stem = name.strip_prefix(DEVICES).unwrap_or(name).strip_suffix(".revoked")?;
        let (device, tag) = stem.split_once('.')?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(tag, &mut bytes).ok()?;
        Some((device.parse().ok()?, bytes))
    }

    /// The object that starts key epoch `epoch` (epoch 0 has none).
    pub fn key_epoch(epoch: &EpochRef) -> String {
        format!("keys/{epoch}/epoch")
    }

    /// Every key epoch directory named in a listing of `keys/`, each once, newest number
    /// first (several may share a number: only one of them was started by a real rotation).
    pub fn key_epochs_listed<'a>(listed: impl IntoIterator<Item = &'a String>) -> Vec<EpochRef> {
        let mut epochs: Vec<EpochRef> = listed
            .into_iter()
            .filter_map(|path| EpochRef::parse(path.strip_prefix("keys/")?.split('/').next()?))
            .collect();
        epochs.sort_by(|a, b| b.cmp(a));
        epochs.dedup();
        epochs
    }

    /// Prefix of pairing exchanges.
    pub const PAIR: &str = "pair/";

    /// A pairing request (written by the new device) or response (by the inviting device).
    pub fn pair(invite_id: &[u8; 16], part: &str) -> String {
        format!("pair/{}/{part}", hex::encode(invite_id))
    }

    /// A device's segment `seq`.
    pub fn segment(device: DeviceId, seq: u64) -> String {
        format!("log/{device}/{seq:016}.seg")
    }

    /// A device's HEAD.
    pub fn head(device: DeviceId) -> String {
        format!("log/{device}/HEAD")
    }

    /// Prefix of snapshots.
    pub const SNAPSHOTS: &str = "snapshots/";

    /// A writer's snapshot `n` (its manifest).
    pub fn snapshot(writer: DeviceId, n: u64) -> String {
        format!("snapshots/{writer}/{n:016}.snap")
    }

    /// Part `part` of a writer's snapshot `n`.
    pub fn snapshot_part(writer: DeviceId, n: u64, part: u32) -> String {
        format!("snapshots/{writer}/{n:016}.{part:06}.part")
    }

    /// A blob object (chunk or manifest).
    pub fn blob(id: &[u8; 32]) -> String {
        let hex = hex::encode(id);
        format!("blobs/{}/{hex}", &hex[..2])
    }

    /// What a store path names: the inverse of the functions above, for exactly the paths
    /// they make (anything else is `None`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum StorePath {
        /// [`VAULT_FILE`].
        VaultFile,
        /// [`key_slot`]: the epoch and the slot name.
        KeySlot(EpochRef, String),
        /// [`key_epoch`].
        KeyEpoch(EpochRef),
        /// [`device_record`].
        DeviceRecord(DeviceId),
        /// [`revocation`]: the subject and the tag of the epoch it starts.
        Revocation(DeviceId, [u8; 16]),
        /// [`pair`]: the invite id and the part.
        Pair([u8; 16], String),
        /// [`segment`].
        Segment(DeviceId, u64),
        /// [`head`].
        Head(DeviceId),
        /// [`blob`].
        Blob([u8; 32]),
        /// [`snapshot`]: the writer and the number.
        Snapshot(DeviceId, u64),
        /// [`snapshot_part`]: the writer, the number and the part.
        SnapshotPart(DeviceId, u64, u32),
    }

    /// Parses a store path; see [`StorePath`].
    pub fn parse(path: &str) -> Option<StorePath> {
        let parsed = parse_loosely(path)?;
        // Only canonical spellings: `log/x/007.seg` or upper-case hex name nothing.
        let canonical = match &parsed {
            StorePath::VaultFile => VAULT_FILE.to_owned(),
            StorePath::KeySlot(epoch, slot) => key_slot(epoch, slot),
            StorePath::KeyEpoch(epoch) => key_epoch(epoch),
            StorePath::DeviceRecord(device) => device_record(*device),
            StorePath::Revocation(device, tag) => revocation(*device, tag),
            StorePath::Pair(invite, part) => pair(invite, part),
            StorePath::Segment(device, seq) => segment(*device, *seq),
            StorePath::Head(device) => head(*device),
            StorePath::Blob(id) => blob(id),
            StorePath::Snapshot(writer, n) => snapshot(*writer, *n),
            StorePath::SnapshotPart(writer, n, part) => snapshot_part(*writer, *n, *part),
        };
        (canonical == path).then_some(parsed)
    }

    /// A key slot's name: a device id, `passphrase` or `recovery` (nothing that could climb
    /// out of the directory or name a file elsewhere).
    fn slot_name(name: &str) -> Option<&str> {
        (matches!(name, "passphrase" | "recovery") || name.parse::<DeviceId>().is_ok()).then_some(name)
    }

    fn parse_loosely(path: &str) -> Option<StorePath> {
        if path == VAULT_FILE {
            return Some(StorePath::VaultFile);
        }
        if let Some(name) = path.strip_prefix(DEVICES) {
            return parse_device_record(name)
                .map(StorePath::DeviceRecord)
                .or_else(|| parse_revocation(name).map(|(device, tag)| StorePath::Revocation(device, tag)));
        }
        if let Some(rest) = path.strip_prefix("keys/") {
            let (epoch, name) = rest.split_once('/')?;
            let epoch = EpochRef::parse(epoch)?;
            return match name {
                "epoch" if epoch.tag.is_some() => Some(StorePath::KeyEpoch(epoch)),
                _ => Some(StorePath::KeySlot(epoch, slot_name(name.strip_suffix(".age")?)?.to_owned())),
            };
        }
        if let Some(rest) = path.strip_prefix(PAIR) {
            let (invite, part) = rest.split_once('/')?;
            let mut id = [0u8; 16];
            hex::decode_to_slice(invite, &mut id).ok()?;
            return matches!(part, "request" | "response" | "reveal").then(|| StorePath::Pair(id, part.to_owned()));
        }
        if let Some(rest) = path.strip_prefix("log/") {
            let (device, name) = rest.split_once('/')?;
            let device: DeviceId = device.parse().ok()?;
            if name == "HEAD" {
                return Some(StorePath::Head(device));
            }
            return Some(StorePath::Segment(device, name.strip_suffix(".seg")?.parse().ok()?));
        }
        if let Some(rest) = path.strip_prefix(SNAPSHOTS) {
            let (writer, name) = rest.split_once('/')?;
            let writer: DeviceId = writer.parse().ok()?;
            if let Some(n) = name.strip_suffix(".snap") {
                return Some(StorePath::Snapshot(writer, n.parse().ok()?));
            }
            let (n, part) = name.strip_suffix(".part")?.split_once('.')?;
            return Some(StorePath::SnapshotPart(writer, n.parse().ok()?, part.parse().ok()?));
        }
        let (_, hex) = path.strip_prefix("blobs/")?.split_once('/')?;
        let mut id = [0u8; 32];
        hex::decode_to_slice(hex, &mut id).ok()?;
        Some(StorePath::Blob(id))
    }
}

macro_rules! serde_fixed_bytes {
    ($module:ident, $len:literal) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer, de::Error};

            pub fn serialize<S: Serializer>(bytes: &[u8; $len], serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(bytes)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; $len], D::Error> {
                let bytes: ciborium::value::Value = Deserialize::deserialize(deserializer)?;
                let bytes = bytes.into_bytes().map_err(|_| D::Error::custom("expected a byte string"))?;
                bytes.try_into().map_err(|_| D::Error::custom(concat!("expected ", $len, " bytes")))
            }
        }
    };
}
serde_fixed_bytes!(serde_bytes_16, 16);
serde_fixed_bytes!(serde_bytes_32, 32);

mod serde_bytes_32_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &Option<[u8; 32]>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_bytes(bytes),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<[u8; 32]>, D::Error> {
        let value: Option<ciborium::value::Value> = Deserialize::deserialize(deserializer)?;
        value
            .map(|v| {
                let bytes = v.into_bytes().map_err(|_| D::Error::custom("expected a byte string"))?;
                bytes.try_into().map_err(|_| D::Error::custom("expected 32 bytes"))
            })
            .transpose()
    }
}

/// Checks that a vault file names the vault a device expects.
pub fn vault_id_of(file: &VaultFile) -> Result<VaultId, String> {
    if file.format != "ferry-vault" {
        return Err(format!("not a ferry vault file (format {:?})", file.format));
    }
    if file.version > VaultFile::VERSION {
        return Err(format!(
            "store format version {} is newer than this ferry understands: upgrade ferry",
            file.version
        ));
    }
    if file.version < VaultFile::VERSION {
        return Err(format!(
            "store format version {} is older than this ferry reads (version {}: tagged key epochs); \
             export the vault with the ferry that wrote it and import it into a new store",
            file.version,
            VaultFile::VERSION
        ));
    }
    file.vault_id.parse().map_err(|e: crate::IdError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpochRef;

    #[test]
    fn every_store_path_parses_back_to_what_made_it_and_nothing_else_does() {
        use paths::StorePath;
        let device = DeviceId::from_bytes([0xab; 16]);
        let cases = [
            (paths::VAULT_FILE.to_owned(), StorePath::VaultFile),
            (
                paths::key_slot(&EpochRef::tagged(2, [5; 16]), "recovery"),
                StorePath::KeySlot(EpochRef::tagged(2, [5; 16]), "recovery".into()),
            ),
            (
                paths::key_slot(&EpochRef::FIRST, &device.to_string()),
                StorePath::KeySlot(EpochRef::FIRST, device.to_string()),
            ),
            (paths::key_epoch(&EpochRef::tagged(3, [6; 16])), StorePath::KeyEpoch(EpochRef::tagged(3, [6; 16]))),
            (paths::device_record(device), StorePath::DeviceRecord(device)),
            (paths::revocation(device, &[4; 16]), StorePath::Revocation(device, [4; 16])),
            (paths::pair(&[7; 16], "request"), StorePath::Pair([7; 16], "request".into())),
            (paths::segment(device, 42), StorePath::Segment(device, 42)),
            (paths::head(device), StorePath::Head(device)),
            (paths::blob(&[9; 32]), StorePath::Blob([9; 32])),
            (paths::snapshot(device, 3), StorePath::Snapshot(device, 3)),
            (paths::snapshot_part(device, 3, 12), StorePath::SnapshotPart(device, 3, 12)),
        ];
        for (path, expected) in cases {
            assert_eq!(paths::parse(&path), Some(expected), "{path}");
        }
        let hex = "ab".repeat(16);
        for path in [
            format!("log/{hex}/42.seg"),                // not zero-padded
            format!("log/{}/HEAD", hex.to_uppercase()), // not lower-case
            format!("devices/{hex}.txt"),
            "keys/x/epoch".to_owned(),
            format!("blobs/00/{}", "09".repeat(32)), // wrong fan-out folder
            format!("snapshots/{hex}/3.snap"),       // not zero-padded
            format!("snapshots/{hex}/0000000000000003.12.part"),
            "ferry-vault.json.bak".to_owned(),
            String::new(),
        ] {
            assert_eq!(paths::parse(&path), None, "{path}");
        }
    }

    #[test]
    fn segment_payload_roundtrips_and_validates_ops() {
        let device = DeviceId::from_bytes([1; 16]);
        let op = Op {
            id: OpId { device, counter: 3 },
            hlc: Hlc::from_u64(99),
            collection: Collection::new("notes").unwrap(),
            key: RecordKey::new("n1").unwrap(),
            kind: OpKind::put_json(r#"{"a":1}"#).unwrap(),
            parents: vec![OpId { device: DeviceId::from_bytes([2; 16]), counter: 1 }],
        };
        let payload = SegmentPayload { seq: 2, prev: Some([7; 32]), ops: vec![WireOp::from_op(&op)] };
        let decoded: SegmentPayload = decode(&encode(&payload)).unwrap();
        assert_eq!(decoded, payload);
        assert_eq!(decoded.ops[0].clone().into_op(device).unwrap(), op);

        let mut bad = WireOp::from_op(&op);
        bad.v = Some("{not json".into());
        assert!(bad.into_op(device).unwrap_err().contains("invalid JSON"));
        let mut bad = WireOp::from_op(&op);
        bad.k = String::new();
        assert!(bad.into_op(device).is_err());
        assert!(decode::<SegmentPayload>(b"\xff\x00garbage").is_err());
    }

    #[test]
    fn format_document_states_the_registry_payload_vectors() {
        use crate::format_document::check;
        let epoch = KeyEpochPayload {
            epoch: 1,
            previous_key: [0x42; 32],
            previous_tag: None,
            members: vec![ByteArray16([0x22; 16])],
            created_ms: 1_763_776_800_123,
            recovery_recipient: "age1zu3v2tg9y0q2w5mmcvyzs8xpvf35g2nwaust6pf9sy6zla25rqvswndakm".into(),
        };
        check("key epoch payload", hex::encode(encode(&epoch)));
        let revocation =
            RevocationPayload { device_id: [0x55; 16], revoked_ms: 1_763_776_800_123, new_epoch: 1, last_seq: 3 };
        check("revocation payload", hex::encode(encode(&revocation)));
        let head = HeadPayload { seq: 3, hash: [0x44; 32], generation: 1, rewritten_from: Some(2) };
        check("head payload", hex::encode(encode(&head)));
        let device = DevicePayload {
            device_id: [0x55; 16],
            name: "phone".into(),
            recipient: "age1x".into(),
            enrolled_ms: 1_763_776_800_123,
            recovery_recipient: "age1y".into(),
        };
        check("device record payload", hex::encode(encode(&device)));
        let manifest = BlobManifest { size: 5, chunks: vec![ByteArray32([0x66; 32])] };
        check("blob manifest payload", hex::encode(encode(&manifest)));
    }

    #[test]
    fn format_document_states_the_snapshot_vectors() {
        use crate::format_document::check;
        let writer = DeviceId::from_bytes([0x22; 16]);
        let snapshot = SnapshotPayload {
            n: 2,
            created_ms: 1_763_776_800_123,
            cut: vec![CutEntry { d: [0x22; 16], seq: 7, hash: [0x44; 32], g: 0, c: 12 }],
            parts: vec![ByteArray32([0x66; 32])],
            ops: 1,
        };
        check("snapshot payload", hex::encode(encode(&snapshot)));
        let op = Op {
            id: OpId { device: writer, counter: 12 },
            hlc: Hlc::from_u64(0x019a_a94a_257b_0000),
            collection: Collection::new("notes").unwrap(),
            key: RecordKey::new("n1").unwrap(),
            kind: OpKind::put_json(r#"{"title":"hi"}"#).unwrap(),
            parents: vec![],
        };
        let part = SnapshotPartPayload { n: 2, part: 0, ops: vec![SnapshotOp::from_op(&op)] };
        check("snapshot part payload", hex::encode(encode(&part)));
        check("snapshot path", paths::snapshot(writer, 2));
        check("snapshot part path", paths::snapshot_part(writer, 2, 0));
        let decoded: SnapshotPartPayload = decode(&encode(&part)).unwrap();
        assert_eq!(decoded.ops[0].clone().into_op().unwrap(), op);
    }

    #[test]
    fn paths_match_the_layout() {
        let device = DeviceId::from_bytes([0xab; 16]);
        assert_eq!(paths::segment(device, 12), "log/abababababababababababababababab/0000000000000012.seg");
        assert_eq!(paths::head(device), "log/abababababababababababababababab/HEAD");
        assert_eq!(paths::parse_device_record(&paths::device_record(device)), Some(device));
        assert_eq!(paths::parse_device_record("devices/abab.revoked"), None);
        assert_eq!(paths::blob(&[0x3c; 32]), format!("blobs/3c/{}", "3c".repeat(32)));
        assert_eq!(paths::key_slot(&EpochRef::FIRST, "passphrase"), "keys/0/passphrase.age");
        let third = EpochRef::tagged(3, [0xc1; 16]);
        assert_eq!(paths::key_epoch(&third), format!("keys/3.{}/epoch", "c1".repeat(16)));
        assert_eq!(paths::parse(&paths::key_epoch(&third)), Some(paths::StorePath::KeyEpoch(third)));
        assert_eq!(paths::parse_revocation(&paths::revocation(device, &[7; 16])), Some((device, [7; 16])));
        // Epoch 0 has no tag and no epoch object; later epochs always have a tag.
        for bad in ["keys/0/epoch", "keys/3/epoch", "keys/3/recovery.age", "keys/0.0707/recovery.age", "keys/00/x.age"]
        {
            assert_eq!(paths::parse(bad), None, "{bad}");
        }
        // Slot names and pairing parts are closed sets: nothing like `..` reaches a store.
        for bad in [
            "keys/0/...age",
            "keys/0/../x.age",
            "pair/07070707070707070707070707070707/..",
            "pair/07070707070707070707070707070707/x",
        ] {
            assert_eq!(paths::parse(bad), None, "{bad}");
        }
        assert_eq!(paths::parse_revocation(&paths::device_record(device)), None);
        assert_eq!(paths::pair(&[1; 16], "request"), format!("pair/{}/request", "01".repeat(16)));
    }
}

//! Ops: the unit of change and of replication.
//!
//! The replicated state of a vault is the grow-only set of its ops; a record's value is a
//! pure fold of the record's ops (see the engine's `merge` module and `docs/CONFLICTS.md`).

use crate::{Collection, Hlc, OpId, RecordKey};

/// Largest JSON value of one record, in bytes of its compact encoding. Larger payloads
/// belong in blobs.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// A JSON value that ferry accepts: valid JSON, at most [`MAX_VALUE_BYTES`], in the canonical
/// text its writer made (`crate::canonical`). Every device holds and shows these exact bytes;
/// serialized into JSON output, they are written verbatim.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JsonValue(String);

/// A value that is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// Not JSON at all.
    #[error("invalid JSON value ({0}): quote strings ('\"text\"') and object keys ('{{\"title\":\"hi\"}}')")]
    Invalid(String),
    /// Larger than [`MAX_VALUE_BYTES`].
    #[error("JSON value is {len} bytes: the limit is {max} bytes; store large payloads as blobs", max = MAX_VALUE_BYTES)]
    TooLarge {
        /// The compact length.
        len: usize,
    },
}

impl JsonValue {
    /// Parses JSON text and canonicalises it: what a writer does, once.
    ///
    /// # Errors
    /// [`ValueError`] when the text is not JSON or is too large.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let canonical = crate::canonical::canonical_json_text(text).map_err(|e| {
            let mut why = e.to_string();
            if why.contains("hex escape") || why.contains("surrogate") {
                why.push_str(
                    "; a \\uD800–\\uDFFF escape must be half of a pair (a high one then a low one): alone it is no character",
                );
            }
            ValueError::Invalid(why)
        })?;
        Self::checked(canonical)
    }

    /// Canonicalises a parsed JSON value: what a writer does, once.
    ///
    /// # Errors
    /// [`ValueError::TooLarge`] when the canonical text exceeds [`MAX_VALUE_BYTES`].
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ValueError> {
        Self::checked(crate::canonical::canonical_json(value))
    }

    /// Takes a value as another device wrote it (from a segment): checked to be JSON within the
    /// size limit, and kept byte for byte, never canonicalised again, so every device shows the
    /// writer's bytes.
    ///
    /// # Errors
    /// [`ValueError`] when the text is not JSON or is too large.
    pub fn from_wire(text: String) -> Result<Self, ValueError> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| ValueError::Invalid(e.to_string()))?;
        Self::checked(text)
    }

    fn checked(text: String) -> Result<Self, ValueError> {
        if text.len() > MAX_VALUE_BYTES {
            return Err(ValueError::TooLarge { len: text.len() });
        }
        Ok(Self(text))
    }

    /// Wraps text already normalised by this type (read back from local storage).
    pub fn from_normalised(text: String) -> Self {
        Self(text)
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a `serde_json::Value`.
    ///
    /// # Errors
    /// Only if the text was not produced by this type.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl serde::Serialize for JsonValue {
    /// Writes the value's bytes verbatim into JSON output (not re-formatted).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// What an op does to its record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpKind {
    /// Sets the record's whole value.
    Put(JsonValue),
    /// Deletes the record. A delete is an op like any other: a later put revives the record.
    Delete,
    /// Erases records of the op's collection everywhere: the ops it selects are removed from
    /// every device and never imported again (see [`Forget`]).
    Forget(Forget),
}

/// Which records of its collection a forget erases, and which of their ops.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Forget {
    /// `record`: the op's key; `prefix`: every key that starts with the op's key; `all`.
    pub scope: ForgetScope,
    /// With a window, only the ops whose hlc is in `from ..= to` (as `u64`); without, every op
    /// of the selected records that was written without having seen the forget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<(u64, u64)>,
}

/// See [`Forget::scope`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgetScope {
    /// One record: the forget op's key.
    Record,
    /// The records whose key starts with the forget op's key.
    Prefix,
    /// Every record of the collection (the op's key is `*`, unused).
    All,
}

impl Forget {
    /// Whether the forget (written with key `forget_key`) selects the record `key`.
    pub fn selects(&self, forget_key: &str, key: &str) -> bool {
        match self.scope {
            ForgetScope::Record => key == forget_key,
            ForgetScope::Prefix => key.starts_with(forget_key),
            ForgetScope::All => true,
        }
    }

    /// Whether an op stamped `hlc` falls in the window (always, without one). A window ends at
    /// the forget's own clock `forget_hlc` at the latest: a forget erases what was written, never
    /// what is written after it, whatever end its window names.
    pub fn in_window(&self, hlc: Hlc, forget_hlc: Hlc) -> bool {
        self.window.is_none_or(|(from, to)| (from..=to.min(forget_hlc.to_u64())).contains(&hlc.to_u64()))
    }
}

impl OpKind {
    /// A put of JSON text.
    ///
    /// # Errors
    /// [`ValueError`] when the text is not acceptable JSON.
    pub fn put_json(text: &str) -> Result<Self, ValueError> {
        JsonValue::parse(text).map(Self::Put)
    }

    /// A short lowercase name for logs: `put`, `delete`, `forget`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Put(_) => "put",
            Self::Delete => "delete",
            Self::Forget(_) => "forget",
        }
    }
}

/// One change to one record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Op {
    /// Who wrote it, and that device's counter.
    pub id: OpId,
    /// When, on the writer's hybrid logical clock.
    pub hlc: Hlc,
    /// The record's collection.
    pub collection: Collection,
    /// The record's key.
    pub key: RecordKey,
    /// What it does.
    pub kind: OpKind,
    /// The ops of the record versions the writer saw (its heads); empty for a fresh record.
    pub parents: Vec<OpId>,
}

impl Op {
    /// The order in which ops win under last-writer-wins: greatest `(hlc, device_id)` wins;
    /// the counter makes the order total even if a faulty device repeats an hlc.
    pub fn lww_rank(&self) -> (Hlc, crate::DeviceId, u64) {
        (self.hlc, self.id.device, self.id.counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_normalised_to_compact_sorted_form() {
        let value = JsonValue::parse(r#"{ "b": 1,  "a": [true, null] }"#).unwrap();
        assert_eq!(value.as_str(), r#"{"a":[true,null],"b":1}"#);
        assert_eq!(JsonValue::parse("\"text\"").unwrap().as_str(), "\"text\"");
    }

    #[test]
    fn bad_json_is_refused_with_guidance() {
        let err = JsonValue::parse("{title: hi}").unwrap_err().to_string();
        assert!(err.starts_with("invalid JSON value (key must be a string at line 1 column 2)"), "{err}");
        assert!(JsonValue::parse("hello").is_err());
        let big = format!("\"{}\"", "x".repeat(MAX_VALUE_BYTES));
        assert!(matches!(JsonValue::parse(&big), Err(ValueError::TooLarge { .. })));
    }
}

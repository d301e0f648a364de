//! Collection names and record keys, validated once at the edge.

use std::fmt;

/// A collection name or record key that ferry refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    #[error("{what} is empty: give a name of 1 to {max} bytes")]
    Empty {
        /// "collection name" or "record key".
        what: &'static str,
        /// The largest length allowed.
        max: usize,
    },
    /// The name is longer than allowed.
    #[error("{what} is {len} bytes long: the limit is {max} bytes")]
    TooLong {
        /// "collection name" or "record key".
        what: &'static str,
        /// The length given.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// The name contains a character that is not allowed.
    #[error("{what} `{name}` contains {found:?}: {allowed}")]
    BadCharacter {
        /// "collection name" or "record key".
        what: &'static str,
        /// The name as given (control characters escaped by `Debug`).
        name: String,
        /// The first offending character.
        found: char,
        /// What is allowed instead.
        allowed: &'static str,
    },
    /// The collection name belongs to ferry itself.
    #[error(
        "collection name `{0}` is reserved: names starting with `_` belong to ferry (`_ferry` holds the vault's settings); choose a name starting with a letter or digit"
    )]
    Reserved(String),
}

/// A validated collection name: 1 to 64 ASCII letters, digits, `_`, `-` or `.`, starting
/// with a letter or digit. Names starting with `_` are reserved for ferry ([`Collection::FERRY`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Collection(String);

impl Collection {
    /// Longest collection name, in bytes.
    pub const MAX_LEN: usize = 64;
    /// The reserved collection holding the vault's own settings (policies, later issues).
    pub const FERRY: &'static str = "_ferry";
    const ALLOWED: &'static str = "use ASCII letters, digits, `_`, `-` and `.`";

    /// Validates a user-chosen collection name; reserved names are refused.
    ///
    /// # Errors
    /// [`NameError`] saying what is wrong with the name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let collection = Self::any(name)?;
        if name.starts_with('_') {
            return Err(NameError::Reserved(name.to_owned()));
        }
        Ok(collection)
    }

    /// Validates a name including ferry's reserved ones (for ops that arrive from the vault).
    ///
    /// # Errors
    /// [`NameError`] saying what is wrong with the name.
    pub fn any(name: &str) -> Result<Self, NameError> {
        const WHAT: &str = "collection name";
        check_length(WHAT, name, Self::MAX_LEN)?;
        if let Some(found) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
            return Err(NameError::BadCharacter { what: WHAT, name: name.to_owned(), found, allowed: Self::ALLOWED });
        }
        if let Some(found) = name.chars().next().filter(|c| matches!(c, '-' | '.')) {
            return Err(NameError::BadCharacter {
                what: WHAT,
                name: name.to_owned(),
                found,
                allowed: "start with a letter or digit",
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated record key: 1 to 512 bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RecordKey(String);

impl RecordKey {
    /// Longest record key, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Validates a record key.
    ///
    /// # Errors
    /// [`NameError`] saying what is wrong with the key.
    pub fn new(key: &str) -> Result<Self, NameError> {
        const WHAT: &str = "record key";
        check_length(WHAT, key, Self::MAX_LEN)?;
        if let Some(found) = key.chars().find(|c| c.is_control()) {
            return Err(NameError::BadCharacter {
                what: WHAT,
                name: key.to_owned(),
                found,
                allowed: "control characters (newlines, tabs, NUL…) are not allowed in keys",
            });
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_length(what: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    match name.len() {
        0 => Err(NameError::Empty { what, max }),
        len if len > max => Err(NameError::TooLong { what, len, max }),
        _ => Ok(()),
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_collection(name: &str, expect: Result<(), &str>) {
        let got = Collection::new(name).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "collection {name:?}");
    }

    #[test]
    fn collection_names() {
        check_collection("notes", Ok(()));
        check_collection("2026.Notes_x-y", Ok(()));
        check_collection("", Err("collection name is empty: give a name of 1 to 64 bytes"));
        check_collection(&"a".repeat(65), Err("collection name is 65 bytes long: the limit is 64 bytes"));
        check_collection("a b", Err("collection name `a b` contains ' ': use ASCII letters, digits, `_`, `-` and `.`"));
        check_collection(".hidden", Err("collection name `.hidden` contains '.': start with a letter or digit"));
        check_collection(
            "_ferry",
            Err(
                "collection name `_ferry` is reserved: names starting with `_` belong to ferry (`_ferry` holds the vault's settings); choose a name starting with a letter or digit",
            ),
        );
        assert!(Collection::any("_ferry").is_ok());
    }

    #[test]
    fn record_keys() {
        assert!(RecordKey::new("n1").is_ok());
        assert!(RecordKey::new("2026-03-01/ünïcode key with spaces").is_ok());
        assert_eq!(RecordKey::new(""), Err(NameError::Empty { what: "record key", max: 512 }));
        assert!(matches!(RecordKey::new(&"k".repeat(513)), Err(NameError::TooLong { len: 513, .. })));
        assert!(matches!(RecordKey::new("a\nb"), Err(NameError::BadCharacter { found: '\n', .. })));
    }
}

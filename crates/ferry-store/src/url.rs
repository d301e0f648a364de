//! Store locations as users type them: `folder:/mnt/nas/ferry`.

use crate::{FolderStore, HubLocation, S3Credentials, S3Location, S3Store, Store, StoreError, StoreErrorKind};
use std::path::PathBuf;
use std::sync::Arc;

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A directory.
    Folder(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Location),
    /// A hub (`ferry serve --hub`), opened through [`OpenOptions::hub`].
    Hub(HubLocation),
}

impl StoreUrl {
    /// Parses `folder:PATH`, `s3://bucket/prefix?endpoint=…&region=…&path_style=…` or
    /// `hub://HOST:PORT#<hub key>[.<claim secret>]` (a relative PATH is made absolute against the
    /// current directory, so the stored location does not depend on where later commands run).
    ///
    /// # Errors
    /// An unknown scheme or an empty path, with the accepted forms.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| {
            StoreError::new(
                StoreErrorKind::InvalidPath,
                text,
                format!(
                    "{why}; a store is written folder:/path/to/dir, s3://bucket/prefix?endpoint=… or hub://HOST:PORT#KEY"
                ),
            )
        };
        let (scheme, rest) = text.split_once(':').ok_or_else(|| bad("no scheme"))?;
        match scheme {
            "folder" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(bad("empty folder path"));
                }
                let path = PathBuf::from(path);
                let path = if path.is_absolute() {
                    path
                } else {
                    std::env::current_dir().map_err(|e| StoreError::from_io(text, &e))?.join(path)
                };
                Ok(Self::Folder(path))
            }
            "s3" => S3Location::parse(text).map(Self::S3),
            "hub" => HubLocation::parse(text).map(Self::Hub),
            other => Err(bad(&format!("unknown store scheme `{other}`"))),
        }
    }

    /// The canonical text form (never with credentials or a hub's claim secret).
    pub fn to_text(&self) -> String {
        match self {
            Self::Folder(path) => format!("folder:{}", path.display()),
            Self::S3(location) => location.to_text(),
            Self::Hub(location) => location.to_text(),
        }
    }
}

/// Makes sure a new store's location exists: a folder store's directory is created if its
/// parent exists (a missing parent is more likely an unmounted disk than a wish for new
/// directories).
///
/// # Errors
/// The parent is missing, or the directory cannot be created.
pub fn prepare(url: &StoreUrl) -> Result<(), StoreError> {
    match url {
        StoreUrl::S3(_) | StoreUrl::Hub(_) => Ok(()),
        StoreUrl::Folder(path) if path.is_dir() => Ok(()),
        StoreUrl::Folder(path) => {
            let text = path.display().to_string();
            match path.parent() {
                Some(parent) if parent.is_dir() => {
                    std::fs::create_dir(path).map_err(|e| StoreError::from_io(&text, &e))
                }
                _ => Err(StoreError::new(
                    StoreErrorKind::Missing,
                    text,
                    "its parent directory does not exist (is the disk mounted?)",
                )),
            }
        }
    }
}

/// Opens a hub: a hub client needs the device's identity, which this crate does not hold, so
/// whoever has it (the CLI, with `ferry-net`) supplies the opener.
pub type HubOpener = Arc<dyn Fn(&HubLocation) -> Result<Arc<dyn Store>, StoreError> + Send + Sync>;

/// How to open stores.
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// A command printing AWS `credential_process` JSON, for S3 stores; without it the standard
    /// places (environment, profile files) are used.
    pub credentials_command: Option<String>,
    /// How to open `hub://` stores; without it they cannot be opened.
    pub hub: Option<HubOpener>,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("credentials_command", &self.credentials_command)
            .field("hub", &self.hub.as_ref().map(|_| "<opener>"))
            .finish()
    }
}

/// Opens the store at a location.
///
/// # Errors
/// The location is malformed, or the credentials command fails.
pub fn open(url: &StoreUrl, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Folder(path) => Arc::new(FolderStore::new(path)),
        StoreUrl::S3(location) => {
            let credentials = options.credentials_command.as_deref().map(S3Credentials::from_command).transpose()?;
            Arc::new(S3Store::new(location.clone(), credentials)?)
        }
        StoreUrl::Hub(location) => match &options.hub {
            Some(open_hub) => open_hub(location)?,
            None => {
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    location.to_text(),
                    "a hub is opened with a device's identity, and none was given",
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folder_urls() {
        assert_eq!(StoreUrl::parse("folder:/mnt/nas").unwrap(), StoreUrl::Folder("/mnt/nas".into()));
        assert_eq!(StoreUrl::parse("folder:///mnt/nas").unwrap(), StoreUrl::Folder("/mnt/nas".into()));
        assert!(StoreUrl::parse("folder:rel").unwrap().to_text().ends_with("/rel"));
        assert!(StoreUrl::parse("/mnt/nas").is_err());
        assert!(StoreUrl::parse("folder:").is_err());
        assert!(StoreUrl::parse("ftp://x").unwrap_err().to_string().contains("unknown store scheme"));
        let s3 = StoreUrl::parse("s3://bucket/prefix?endpoint=http://127.0.0.1:9000&path_style=true").unwrap();
        assert_eq!(s3.to_text(), "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&path_style=true");
    }
}

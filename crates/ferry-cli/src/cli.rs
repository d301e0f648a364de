//! The command line: every subcommand, flag and help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (I/O, a damaged database, the operating system)
  2  bad input: usage, invalid JSON, a bad or reserved name, an oversized key or value
  3  not found: no such record or collection
  4  locked: wrong or missing passphrase, a key that does not fit
  5  setup: no vault in this home (run `ferry init`), or one already exists; a store that is
     missing or holds another vault
  6  unavailable: a store cannot be reached now; the attempt is recorded, try again later

Environment:
  FERRY_HOME                  the device home directory (like --home)
  FERRY_PASSPHRASE_COMMAND    a command that prints the passphrase (like --passphrase-command)
  FERRY_NO_KEYCHAIN           set to 1 to never use the OS keychain (like --no-keychain)
  FERRY_CREDENTIALS_COMMAND   S3 credentials command (like --credentials-command)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE
                              S3 credentials, as for the AWS tools";

/// ferry: your app's data on all your devices, end-to-end encrypted, through storage you own.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// This device's state directory [default: the user's data directory, e.g. ~/.local/share/ferry]
    #[arg(long, global = true, env = "FERRY_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Run this shell command and use its output (first line) as the passphrase
    #[arg(long, global = true, env = "FERRY_PASSPHRASE_COMMAND", value_name = "CMD")]
    pub passphrase_command: Option<String>,

    /// Read the passphrase from the environment variable named VAR
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "passphrase_command")]
    pub key_from_env: Option<String>,

    /// For S3 stores: a command printing AWS credential_process JSON (instead of AWS_* variables
    /// or profile files). Credentials are never stored by ferry
    #[arg(long, global = true, env = "FERRY_CREDENTIALS_COMMAND", value_name = "CMD")]
    pub credentials_command: Option<String>,

    /// Never use the OS keychain: always unlock with the passphrase, and keep no key there
    #[arg(long, global = true, env = "FERRY_NO_KEYCHAIN", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_keychain: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a vault with this device as its first member; prints the recovery phrase once
    Init(InitArgs),
    /// Join the vault in a store as a new device (unlocks with the vault passphrase)
    Join(JoinArgs),
    /// Sync with every store: push local changes, then pull others' (or: push | pull | status)
    Sync(SyncArgs),
    /// The stores this device syncs with: add, ls, rm
    #[command(subcommand)]
    Store(StoreAction),
    /// Large payloads: store a file as a blob (put), or write a blob out (get)
    #[command(subcommand)]
    Blob(BlobAction),
    /// Set a record's value: ferry put notes n1 '{"title":"hi"}' (use - to read the JSON from stdin)
    Put(PutArgs),
    /// Print a record's value as JSON
    Get(RecordArgs),
    /// List a collection's records, newest first; without a collection, list the collections
    Ls(LsArgs),
    /// Delete a record (a later put revives it)
    Rm(RecordArgs),
    /// Show the op history, newest first: of the vault, or of one record
    Log(LogArgs),
    /// Show this device, the vault, key fingerprints and counts
    Status(JsonArg),
    /// Rebuild the current values from the op log (after damage, or to check)
    Repair(JsonArg),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// A name to recognise this device by [default: the host name]
    #[arg(long)]
    pub name: Option<String>,
    /// Put the new vault in this store, e.g. folder:/mnt/nas/ferry (it must hold no vault yet)
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The store that holds the vault, e.g. folder:/mnt/nas/ferry
    pub store: String,
    /// A name to recognise this device by [default: the host name]
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub action: Option<SyncAction>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Also sync with STORE (folder:/path or s3://bucket/prefix?endpoint=…). A new, empty store
    /// receives the vault (asks for the vault passphrase); this device carries all the data it
    /// holds there
    Add {
        /// The store's location
        store: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// List the stores, with their sync state
    Ls(JsonArg),
    /// Stop syncing with a store (by id or location); nothing in the store is deleted
    Rm {
        /// The store's id (from `ferry store ls`) or location
        store: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BlobAction {
    /// Store FILE (or - for stdin) as a blob; prints its id, to put in a record. Sync publishes it
    Put {
        /// The file to store
        file: std::path::PathBuf,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Write blob ID to OUT (or - for stdout), fetching it from the stores if needed
    Get {
        /// The blob id printed by `ferry blob put`
        id: String,
        /// Where to write it (written in full and verified before it appears)
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncAction {
    /// Seal and publish local changes only
    Push(JsonArg),
    /// Fetch, verify and import others' changes only
    Pull(JsonArg),
    /// Per store: state, last sync, pending ops, skipped objects with reasons; per device: cursors
    Status(JsonArg),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The collection, e.g. notes
    pub collection: String,
    /// The record's key, e.g. n1
    pub key: String,
    /// The value as JSON text, or - to read it from stdin
    pub value: String,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The collection
    pub collection: String,
    /// The record's key
    pub key: String,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The collection to list
    pub collection: Option<String>,
    /// Show at most N records
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this collection's record (give the key too)
    #[arg(requires = "key")]
    pub collection: Option<String>,
    /// The record's key
    pub key: Option<String>,
    /// Show at most N ops
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print machine-readable JSON
    #[arg(long)]
    pub json: bool,
}

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

Other secrets (a recovery phrase, a new passphrase, a pairing code) are asked on the terminal;
when standard input is not a terminal, they are read from it, one per line.
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
    /// (`FERRY_NO_KEYCHAIN=1` does the same; read after parsing, so usage lines stay as typed)
    #[arg(long, global = true)]
    pub no_keychain: bool,
}

impl GlobalArgs {
    /// Applies the settings that come from the environment rather than from flags.
    pub fn with_environment(mut self) -> Self {
        let truthy =
            |value: &str| matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on" | "y");
        self.no_keychain |= std::env::var("FERRY_NO_KEYCHAIN").is_ok_and(|value| truthy(&value));
        self
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a vault with this device as its first member; prints the recovery phrase once
    Init(InitArgs),
    /// Join the vault in a store as a new device, with the vault passphrase or --recovery
    Join(JoinArgs),
    /// Pair a new device: `ferry pair invite` here, `ferry pair accept …` there
    #[command(subcommand)]
    Pair(PairAction),
    /// List the vault's devices (or: revoke ID)
    Devices(DevicesArgs),
    /// Keys: fingerprint, passphrase, verify, keychain on|off
    #[command(subcommand)]
    Key(KeyAction),
    /// Write the whole vault to one encrypted file (to the recovery key, or --passphrase)
    Export(ExportArgs),
    /// Merge an export into this device, or restore a lost vault from one into a new home
    Import(ImportArgs),
    /// Check this device: unlock, keychain, keys, stores, sync; says what to do about problems
    Doctor(JsonArg),
    /// Serve this device's data to the vault's other devices (mutual TLS) and sync the stores
    /// and known peers on an interval, until stopped
    Serve(ServeArgs),
    /// Devices this one pulls from directly: ls, add ID ADDR, forget-address ADDR
    Peers(PeersArgs),
    /// Run `ferry serve` as a user service (systemd --user on Linux, a LaunchAgent on macOS)
    #[command(subcommand)]
    Service(ServiceAction),
    /// How concurrent writes to a collection merge: set, ls (see docs/CONFLICTS.md)
    #[command(subcommand)]
    Policy(PolicyAction),
    /// Records waiting for a person (manual collections) and concurrent-write counts; show, resolve
    Conflicts(ConflictsArgs),
    /// Full-text search across every record on this device, from every device: ferry find 'alice budget'
    Find(FindArgs),
    /// Erase records on every device, for good: ferry forget notes n1 | --prefix P | --all [--from T --to T]
    Forget(ForgetArgs),
    /// Which fields of a collection are searched: ferry index notes --fields title,body (or --all-fields)
    Index(IndexArgs),
    /// Sync with every store: push local changes, then pull others' (or: push | pull | status)
    Sync(SyncArgs),
    /// Drop superseded history older than the retention, here and in every store (a snapshot
    /// stands for what stores delete): ferry prune [--keep 30d] [--dry-run]
    Prune(PruneArgs),
    /// The stores this device syncs with: add, ls, check, rm
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
    /// Replace the vault the store holds: it is moved to previous/<vault id>/ in the store, after
    /// you type its id and its recovery phrase (the only way to open it afterwards)
    #[arg(long, requires = "store")]
    pub force: bool,
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
    /// Open the vault with its recovery phrase (every device lost); then choose this device's
    /// passphrase
    #[arg(long)]
    pub recovery: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum PairAction {
    /// On a device of the vault: print a one-time invite line and wait for the new device
    Invite {
        /// The store the devices meet in (id or location, see `ferry store ls`) [default: the first]
        #[arg(long)]
        store: Option<String>,
        /// How long the invite stays valid, in minutes
        #[arg(long, value_name = "MINUTES", default_value_t = 10)]
        expires: u64,
    },
    /// On the new device: answer an invite; shows the code to type on the inviting device
    Accept {
        /// The invite printed by `ferry pair invite` (ferry1:…)
        token: String,
        /// A name to recognise this device by [default: the host name]
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    pub action: Option<DevicesAction>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum DevicesAction {
    /// Revoke a device (lost, sold, compromised): the vault key rotates to the other devices,
    /// and nothing the device writes from now on is accepted
    Revoke {
        /// The device's id, or the start of it (see `ferry devices`)
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Show the vault key fingerprint (equal on every device of the vault) and this device's
    Fingerprint(JsonArg),
    /// Change this device's passphrase and the vault passphrase used to join (in every store)
    Passphrase,
    /// Check that every store's key objects match this device's keys; --recovery also checks
    /// your written-down recovery phrase
    Verify {
        /// Also ask for the recovery phrase and check it
        #[arg(long)]
        recovery: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Keep this device's key in the OS keychain (on) or remove it (off)
    Keychain {
        /// on or off
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Set a collection's policy: lww (default), fields, priority --order DEV,DEV, manual
    Set {
        /// The collection
        collection: String,
        /// lww | fields | priority | manual
        #[arg(value_parser = ["lww", "fields", "priority", "manual"])]
        policy: String,
        /// For priority: device names or ids, the most trusted first
        #[arg(long, value_delimiter = ',', required_if_eq("policy", "priority"))]
        order: Vec<String>,
    },
    /// List the collections whose policy was set
    Ls(JsonArg),
    /// Show or set how long superseded history is kept (default 30d; syncs as a setting):
    /// ferry policy retention 30d | forever
    Retention {
        /// A duration (90d, 12h, 2w) or `forever`; without it, show the retention
        keep: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// History to keep this time (a duration like 30d, or `forever`); default: the vault's
    /// retention (`ferry policy retention`)
    #[arg(long)]
    pub keep: Option<String>,
    /// How long a new snapshot stands before stores delete what it replaces, so devices reading
    /// them meanwhile finish (default 1h; 0 only when no other device is syncing)
    #[arg(long, default_value = "1h")]
    pub grace: String,
    /// Only say what would be removed
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct ConflictsArgs {
    #[command(subcommand)]
    pub action: Option<ConflictsAction>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum ConflictsAction {
    /// Every head of a record: device, time, value, and how they differ
    Show {
        /// The collection
        collection: String,
        /// The record's key
        key: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Resolve a record's concurrent writes: keep one head (--pick OP) or write --value JSON
    Resolve {
        /// The collection
        collection: String,
        /// The record's key
        key: String,
        /// The op id of the head to keep (from `ferry conflicts show`)
        #[arg(long, conflicts_with = "value", required_unless_present = "value")]
        pick: Option<String>,
        /// A new value, as JSON
        #[arg(long)]
        value: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen (port 0: any free port; the address is printed)
    #[arg(long, default_value = "0.0.0.0:7420", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Seconds between syncs with the stores when nothing is written here (local writes are
    /// pushed within about a second; peers get them at once)
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub interval: u64,
    /// Where the local API for apps listens (loopback only; `off`: no API)
    #[arg(long, default_value = "127.0.0.1:7421", value_name = "ADDR|off")]
    pub api: String,
    /// Do not advertise or look for devices on the LAN with mDNS (stored addresses only)
    #[arg(long)]
    pub no_mdns: bool,
    /// Be a hub: an always-on store for one vault's sealed objects, which it cannot read (no
    /// vault key; only its own TLS key). Give it a home of its own (--home DIR); the first run
    /// prints the `ferry store add` line that lets a device of the vault claim it
    #[arg(long)]
    pub hub: bool,
    /// With --hub: the HOST:PORT devices reach the hub at, for the printed line (default: this
    /// machine's host name and the port it listens on)
    #[arg(long, value_name = "HOST:PORT", requires = "hub")]
    pub public_address: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Write the service definition for this device home, and enable it (unless --no-enable)
    Install {
        /// Where `ferry serve` listens
        #[arg(long, default_value = "0.0.0.0:7420", value_name = "ADDR")]
        listen: String,
        /// Only write the definition
        #[arg(long)]
        no_enable: bool,
    },
    /// Start the service
    Start,
    /// Stop the service
    Stop,
    /// Show the service's state
    Status,
}

#[derive(Debug, Args)]
pub struct PeersArgs {
    #[command(subcommand)]
    pub action: Option<PeersAction>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum PeersAction {
    /// Remember where a device serves (a LAN or Tailscale name or IP, with the port)
    Add {
        /// The device's name, id, or the start of its id (see `ferry devices`)
        id: String,
        /// HOST:PORT
        addr: String,
    },
    /// Forget a stored address
    ForgetAddress {
        /// HOST:PORT
        addr: String,
    },
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Words that must all occur (a trailing * matches a prefix)
    pub query: String,
    /// Only this collection
    #[arg(long)]
    pub collection: Option<String>,
    /// Show at most N results
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The collection
    pub collection: String,
    /// One record's key
    #[arg(required_unless_present_any = ["prefix", "all"], conflicts_with_all = ["prefix", "all"])]
    pub key: Option<String>,
    /// Every record whose key starts with PREFIX
    #[arg(long, conflicts_with = "all")]
    pub prefix: Option<String>,
    /// Every record of the collection
    #[arg(long)]
    pub all: bool,
    /// Only changes made at or after this time (2026-11-20T14:00 is UTC; or RFC 3339)
    #[arg(long, requires = "to", value_name = "TIME")]
    pub from: Option<String>,
    /// Only changes made up to this time
    #[arg(long, requires = "from", value_name = "TIME")]
    pub to: Option<String>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The collection
    pub collection: String,
    /// Search only these top-level fields
    #[arg(long, value_delimiter = ',', required_unless_present = "all_fields", conflicts_with = "all_fields")]
    pub fields: Vec<String>,
    /// Search every string value (the default)
    #[arg(long)]
    pub all_fields: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file to write (replaced atomically)
    pub file: PathBuf,
    /// Encrypt to a passphrase you choose instead of the recovery key
    #[arg(long)]
    pub passphrase: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file written by `ferry export`
    pub file: PathBuf,
    /// The file was exported with --passphrase (else the recovery phrase opens it)
    #[arg(long)]
    pub passphrase: bool,
    /// With no vault in this home: the name of the device restored from the file [default: the host name]
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub action: Option<SyncAction>,
    /// Pull from another device of the vault running `ferry serve` instead of the stores: its
    /// address (HOST:PORT), or its id or name (dialled at its known addresses)
    #[arg(long, value_name = "HOST:PORT|DEVICE")]
    pub peer: Option<String>,
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
    /// Check that a store (or every store) still holds everything this device holds; with
    /// --repair put back what it lost (a sync does that within the hour on its own)
    Check {
        /// The store's id (from `ferry store ls`) or location; every store without it
        store: Option<String>,
        /// Put back what the store lacks, and replace damaged objects with good copies
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        json: JsonArg,
    },
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
    /// Ask the running daemon (`ferry serve`) to sync every store and retry every peer now;
    /// without a daemon, sync once here
    Now(JsonArg),
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

//! What the network benchmarks share: devices, daemons, and the suite's row format.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each bench uses a part; a bench aborts on failure

#[path = "../../../ferry-engine/benches/common/report.rs"]
pub mod report;

use ferry_engine::{
    CreateOptions, Direction, Home, JoinOptions, JoinWith, KdfCost, Passphrase, StoreHandle, Unlock, Vault,
};
use ferry_net::{Daemon, DaemonConfig};
use ferry_store::FolderStore;
use std::path::Path;

pub fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("bench"), kdf_cost: KdfCost::WorkFactor(10) }
}

pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// `--records N`, else `default`, or 20,000 with `--quick` (the CI smoke run).
pub fn record_count(default: usize) -> usize {
    number_arg("--records", default, 20_000)
}

/// `FLAG N`, else `default`, or `quick_value` with `--quick`.
pub fn number_arg(flag: &str, default: usize, quick_value: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    if quick() {
        return quick_value;
    }
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |n| n.parse().unwrap_or_else(|_| panic!("{flag} takes a number")))
}

/// The first device "a" of a new vault in a folder store under `dir`, synced once.
pub fn first_device(dir: &Path) -> (Vault, FolderStore) {
    let store_dir = dir.join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    let store = FolderStore::new(&store_dir);
    let options = CreateOptions { device_name: "a".into(), unlock: unlock() };
    let mut a = Vault::create_for_store(&Home::new(dir.join("a")), options, "folder", &store).unwrap().vault;
    sync(&mut a, &store);
    (a, store)
}

pub fn sync(vault: &mut Vault, store: &FolderStore) {
    vault.sync(StoreHandle { id: vault.stores().unwrap()[0].id, store }, Direction::Both).unwrap();
}

pub fn join(dir: &Path, name: &str, store: &FolderStore) -> Vault {
    let options = JoinOptions { device_name: name.into(), unlock: unlock(), with: JoinWith::Passphrase };
    Vault::join(&Home::new(dir.join(name)), options, "folder", store).unwrap()
}

pub fn open(dir: &Path, name: &str) -> Vault {
    Vault::open(&Home::new(dir.join(name)), &unlock()).unwrap()
}

pub fn daemon(vault: Vault) -> Daemon {
    let config = DaemonConfig { listen: "127.0.0.1:0".parse().unwrap(), api: None, mdns: false, stores: None };
    Daemon::start(vault, config).unwrap()
}

//! Devices for the network tests: three members of one vault, enrolled through a folder store.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test binary uses a part

use ferry_engine::{
    CreateOptions, Direction, Home, JoinOptions, JoinWith, KdfCost, Passphrase, StoreHandle, Unlock, Vault,
};
use ferry_net::{Pins, TlsIdentity};
use ferry_store::{FolderStore, Store};
use std::path::Path;

pub fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("vault passphrase"), kdf_cost: KdfCost::WorkFactor(4) }
}

pub fn options(name: &str) -> CreateOptions {
    CreateOptions { device_name: name.into(), unlock: unlock() }
}

pub fn sync(vault: &mut Vault, store: &dyn Store) {
    vault.sync(StoreHandle { id: 1, store }, Direction::Both).unwrap();
}

/// Three devices enrolled through a folder store, which then plays no further part.
pub fn three_devices(dir: &Path) -> (Vault, Vault, Vault, FolderStore) {
    std::fs::create_dir_all(dir.join("store")).unwrap();
    let store = FolderStore::new(dir.join("store"));
    let mut a = Vault::create_for_store(&Home::new(dir.join("a")), options("a"), "folder", &store).unwrap().vault;
    sync(&mut a, &store);
    let join = |name: &str| {
        Vault::join(
            &Home::new(dir.join(name)),
            JoinOptions { device_name: name.into(), unlock: unlock(), with: JoinWith::Passphrase },
            "folder",
            &store,
        )
        .unwrap()
    };
    let (mut b, mut c) = (join("b"), join("c"));
    for _ in 0..2 {
        for vault in [&mut b, &mut c, &mut a] {
            sync(vault, &store);
        }
    }
    (a, b, c, store)
}

pub fn identity(vault: &Vault) -> TlsIdentity {
    TlsIdentity::new(&vault.device_signing_secret().unwrap()).unwrap()
}

pub fn pins(vault: &Vault) -> Pins {
    let pins = Pins::default();
    pins.set(vault.active_device_keys().unwrap());
    pins
}

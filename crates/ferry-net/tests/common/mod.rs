//! Devices for the network tests: three members of one vault, enrolled through a folder store.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test binary uses a part

use ferry_engine::{
    CreateOptions, Direction, Home, JoinOptions, JoinWith, KdfCost, Passphrase, StoreHandle, Unlock, Vault,
};
use ferry_format::SecretBytes;
use ferry_net::{Hub, Pins, TlsIdentity, hub_opener, serve_hub};
use ferry_store::{FolderStore, HubLocation, Store, StoreErrorKind};
use std::path::Path;
use std::sync::Arc;

pub fn unlock() -> Unlock {
    Unlock { passphrase: Passphrase::new("vault passphrase"), kdf_cost: KdfCost::WorkFactor(4) }
}

pub fn options(name: &str) -> CreateOptions {
    CreateOptions { device_name: name.into(), unlock: unlock() }
}

pub fn sync(vault: &mut Vault, store: &dyn Store) {
    vault.sync(StoreHandle { id: first_store(vault), store }, Direction::Both).unwrap();
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

// The hub as tests run it on 127.0.0.1, and how devices reach it.

pub fn start_hub(dir: &Path) -> Hub {
    let identity = TlsIdentity::new(&SecretBytes::new([42; 32])).unwrap();
    serve_hub(&dir.join("hub"), &identity, "127.0.0.1:0".parse().unwrap()).unwrap()
}

pub fn hub_location(hub: &Hub) -> HubLocation {
    hub.location(&hub.addr().to_string())
}

/// The hub as `vault` reaches it (claiming it first when `location` carries the secret).
pub fn open_hub(vault: &Vault, location: &HubLocation) -> Result<Arc<dyn Store>, ferry_store::StoreError> {
    let claim_as = (vault.vault_id(), vault.active_device_keys().unwrap());
    hub_opener(vault.device_signing_secret().unwrap(), Some(claim_as))(location)
}

pub fn attach_hub(vault: &mut Vault, location: &HubLocation) -> Arc<dyn Store> {
    let hub = open_hub(vault, location).unwrap();
    vault.attach_store(&location.to_text(), hub.as_ref(), Some(&unlock())).unwrap();
    hub
}

/// Syncs both ways with the hub (whatever local id the device gave it).
pub fn sync_hub(vault: &mut Vault, hub: &dyn Store) {
    let id = vault.stores().unwrap().into_iter().find(|s| s.url.starts_with("hub://")).expect("the hub is added").id;
    vault.sync(StoreHandle { id, store: hub }, ferry_engine::Direction::Both).unwrap();
}

pub fn refusal(result: Result<impl std::fmt::Debug, ferry_store::StoreError>, why: &str) {
    let err = result.expect_err("the hub must refuse");
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(err.to_string().contains(why), "expected `{why}` in: {err}");
}

/// The id of the first store the vault syncs with.
pub fn first_store(vault: &ferry_engine::Vault) -> ferry_engine::StoreId {
    vault.stores().unwrap()[0].id
}

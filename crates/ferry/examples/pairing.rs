//! Pairing a new device through the API: the inviting device and the new one run here as two
//! threads; the person who reads the code on the new device and types it on the inviting one
//! is a channel.
//!
//! Run: `cargo run -p ferry --example pairing`.

use ferry::{CreateOptions, Direction, Home, KdfCost, Passphrase, Unlock, Vault};
use std::sync::mpsc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("store"))?;
    let store = format!("folder:{}", dir.path().join("store").display());
    let unlock = |p: &str| Unlock { passphrase: Passphrase::new(p), kdf_cost: KdfCost::WorkFactor(10) };

    let laptop_home = Home::new(dir.path().join("laptop"));
    let options = CreateOptions { device_name: "laptop".into(), unlock: unlock("laptop passphrase") };
    let mut laptop = Vault::create_for_store(&laptop_home, options, &store)?.vault;
    laptop.records().put("notes", "hello", &serde_json::json!("from the laptop"))?;
    laptop.sync().all(Direction::Both)?;

    let mut invitation = laptop.devices().invite(Duration::from_secs(120))?;
    let token = invitation.token();
    let (typed_code, read_code) = mpsc::channel::<String>();

    // The new device: answers the invite, shows its code, waits for approval, syncs.
    let phone_home = Home::new(dir.path().join("phone"));
    let phone = std::thread::spawn(move || -> ferry::Result<Vault> {
        let options = CreateOptions { device_name: "phone".into(), unlock: unlock("phone passphrase") };
        let mut acceptance = ferry::accept(&phone_home, &token, options)?;
        let shown = loop {
            if let Some(shown) = acceptance.wait_for_confirmation(Duration::from_secs(60))? {
                break shown;
            }
        };
        println!("phone shows code {} (fingerprint {})", shown.code, shown.fingerprint);
        // The person reads it here and types it on the laptop.
        let _ = typed_code.send(shown.code);
        let engine = loop {
            if let Some(vault) = acceptance.wait_for_approval(Duration::from_secs(60))? {
                break vault;
            }
        };
        let mut phone = Vault::from_engine(engine);
        phone.sync().all(Direction::Both)?;
        Ok(phone)
    });

    // The inviting device: sees who answered, takes the typed code, approves.
    let request = loop {
        if let Some(request) = invitation.wait_for_request(Duration::from_secs(60))? {
            break request;
        }
    };
    println!("laptop: \"{}\" answered (fingerprint {})", request.name, request.fingerprint);
    let typed = read_code.recv_timeout(Duration::from_secs(60))?;
    invitation.approve(&request, &typed)?;
    println!("laptop: approved");

    let mut phone = phone.join().map_err(|_| "the phone's thread panicked")??;
    let hello = phone.records().get("notes", "hello")?.ok_or("the phone has no notes")?;
    println!("phone reads hello = {}", hello.value.as_str());
    let devices: Vec<String> = laptop.devices().list()?.into_iter().map(|d| d.name).collect();
    println!("devices: {}", devices.join(", "));
    Ok(())
}

//! Two devices of one vault syncing through a folder store, in one program.
//!
//! Run: `cargo run -p ferry --example two_devices` (everything lives in a temporary directory).

use ferry::{CreateOptions, Direction, Home, JoinOptions, JoinWith, KdfCost, Passphrase, Unlock, Vault};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = format!("folder:{}", dir.path().join("store").display());
    std::fs::create_dir(dir.path().join("store"))?;
    // A low scrypt cost keeps the example quick; an app uses `KdfCost::Standard`.
    let unlock = Unlock { passphrase: Passphrase::new("vault passphrase"), kdf_cost: KdfCost::WorkFactor(10) };

    // The laptop creates the vault in the store and writes a note.
    let laptop_home = Home::new(dir.path().join("laptop"));
    let created = Vault::create_for_store(
        &laptop_home,
        CreateOptions { device_name: "laptop".into(), unlock: unlock.clone() },
        &store,
    )?;
    println!("recovery phrase (write it down): {}", created.recovery_phrase.to_words());
    let mut laptop = created.vault;
    laptop.records().put("notes", "groceries", &json!({"items": ["milk", "bread"]}))?;
    report("laptop", laptop.sync().all(Direction::Both)?);

    // The phone joins with the vault passphrase and receives the note.
    let phone_home = Home::new(dir.path().join("phone"));
    let options = JoinOptions { device_name: "phone".into(), unlock: unlock.clone(), with: JoinWith::Passphrase };
    let mut phone = Vault::join(&phone_home, options, &store)?;
    report("phone", phone.sync().all(Direction::Both)?);
    let note = phone.records().get("notes", "groceries")?.ok_or("the phone did not receive the note")?;
    println!("phone reads groceries = {}", note.value.as_str());

    // The phone edits it; the laptop sees the edit after its next sync.
    phone.records().put("notes", "groceries", &json!({"items": ["milk", "bread", "eggs"]}))?;
    report("phone", phone.sync().all(Direction::Both)?);
    report("laptop", laptop.sync().all(Direction::Both)?);
    let note = laptop.records().get("notes", "groceries")?.ok_or("the note vanished")?;
    println!("laptop reads groceries = {}", note.value.as_str());
    assert_eq!(note.value.as_str(), r#"{"items":["milk","bread","eggs"]}"#);
    Ok(())
}

fn report(device: &str, outcomes: Vec<ferry::StoreOutcome>) {
    for outcome in outcomes {
        println!("{device}: {}: {}", outcome.url, outcome.summary());
    }
}

//! Prints every change to a vault as it happens, whoever makes it: this process, another app,
//! or `ferry serve` importing another device's writes.
//!
//! Run: `FERRY_PASSPHRASE=… cargo run -p ferry --example watch -- HOME [COUNT]`; it prints one
//! line per change, `<collection>/<key> <put|deleted> <op> <cursor>`, and stops after COUNT
//! changes (default: never). The cursor is what an app would keep to resume after a restart.

use ferry::{Home, KdfCost, Passphrase, Unlock, Vault};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let home = Home::new(args.next().ok_or("usage: watch HOME [COUNT]")?);
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(usize::MAX);
    let passphrase = std::env::var("FERRY_PASSPHRASE").map_err(|_| "set FERRY_PASSPHRASE")?;
    let unlock = Unlock { passphrase: Passphrase::new(&passphrase), kdf_cost: KdfCost::Standard };
    let vault = Vault::open(&home, &unlock)?;
    let changes = vault.changes().subscribe()?;
    println!("watching");
    std::io::stdout().flush()?;
    for item in changes.take(count) {
        let item = item?;
        let change = &item.change;
        let state = if change.deleted { "deleted" } else { "put" };
        println!("{}/{} {state} {} {}", change.collection, change.key, change.op, item.cursor.to_token());
        std::io::stdout().flush()?;
    }
    Ok(())
}

//! The libraries' hints ([`ferry_engine::Hint`]) in words: the commands that act on them.

use ferry_engine::Hint;

/// The hint of the first library error in `err`'s chain that has one.
pub fn of(err: &anyhow::Error) -> Option<Hint> {
    err.chain().find_map(|cause| cause.downcast_ref::<ferry_engine::Error>().and_then(ferry_engine::Error::hint))
}

/// What to do, as commands.
pub fn text(hint: &Hint) -> String {
    match hint {
        Hint::CreateOrPointAtVault => {
            "run `ferry init` to create one, or point --home / FERRY_HOME at an existing device".into()
        }
        Hint::RepairOrRestore => "run `ferry repair`, or restore the device from its stores".into(),
        Hint::AddPeerAddress { device } => format!(
            "add one with `ferry peers add {device} HOST:PORT`, or run `ferry serve`, which finds devices on the LAN by mDNS"
        ),
        Hint::AddStore => "add one with `ferry store add STORE` (or create the vault with `ferry init --store STORE`, or join one with `ferry join STORE`)".into(),
        Hint::JoinInstead { location } => format!(
            "join it with `ferry join {location}` (or pair with `ferry pair invite` on one of its devices); to replace it, `ferry init --store {location} --force` (needs its recovery phrase)"
        ),
        Hint::CreateVaultInStore { location } => {
            format!("check the location, or create one with `ferry init --store {location}`")
        }
        Hint::CompareFingerprints => "check the location (`ferry key fingerprint` on each device shows its fingerprint); to move this device to that vault, pair a new home from one of its devices with `ferry pair invite`".into(),
        Hint::PairOrRecoverOrSetPassphrase => "join by pairing (`ferry pair invite` on a device of the vault) or with `--recovery`, or set a new passphrase with `ferry key passphrase` on a device".into(),
        Hint::CheckRecoveryWords => "check the words (they are the ones printed by `ferry init` for this vault)".into(),
        Hint::InviteAgain => "run `ferry pair invite` again on the inviting device".into(),
        Hint::InviteAndAccept => "run `ferry pair invite` again and `ferry pair accept` on the new device".into(),
        Hint::PairAgain => "pair it again into a new home (`ferry pair invite` on an active device)".into(),
        Hint::ShowConflicts => "see `ferry conflicts show`".into(),
        Hint::ListDevices => "see `ferry devices`".into(),
        Hint::RevokeFromAnotherDevice => "run `ferry devices revoke` on another device of the vault".into(),
        Hint::UseBackupSecret => {
            "use the recovery phrase of the vault, or the passphrase given to `ferry export --passphrase`".into()
        }
        Hint::RevokeAgain => {
            "run `ferry devices revoke` again (a new rotation gets new names) and check who can write to this store".into()
        }
        Hint::BlobIdFromPut => "use the id `ferry blob put` printed".into(),
        Hint::ListStores => "see `ferry store ls`".into(),
        Hint::SeeSyncStatus => "see `ferry sync status`".into(),
        Hint::SetPassphrase => "write a new slot with `ferry key passphrase` on a device of the vault".into(),
        Hint::Sync => "`ferry sync` publishes what is missing".into(),
        Hint::ConfirmRecoveryPhrase => "check your copy with `ferry key verify --recovery`".into(),
        Hint::StopCopiedHome => "stop using one of the copies, then pair the other as a new device".into(),
        Hint::RepairStore => "`ferry store check --repair` puts them back now (a sync does within the hour)".into(),
        _ => "see `ferry --help`".into(),
    }
}

//! Pairing as an API: both halves of enrolling a new device through a store, with the waiting,
//! the code comparison and the clean-up that a user interface should not have to rebuild.
//!
//! ```text
//! inviting device                          new device
//! Replicator::invite → Invitation
//!   .token()  ── shown / sent ───────────▶ accept(home, token, …) → Acceptance
//!   .wait_for_request() ◀── request ─────
//!     (shows name + fingerprint)           .wait_for_confirmation() → code to show
//!   .approve(request, typed code) ──────▶ .wait_for_approval() → Vault
//! ```
//!
//! The person types on the inviting device the code the new device shows; a wrong code refuses
//! the device and ends the invite. An [`Invitation`] or [`Acceptance`] dropped before it
//! finished removes its exchange from the store.

use crate::replicator::Replicator;
use ferry_engine::{CreateOptions, Direction, Error, Home, Pairing, PairingConfirmation, PairingRequest, Vault};
use ferry_format::EpochRef;
use ferry_format::pairing::Invite;
use ferry_store::{Store, StoreErrorKind, StoreUrl};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How often a waiting side looks for the other's object.
const POLL: Duration = Duration::from_millis(300);

/// An open invite on the inviting device ([`Replicator::invite`]).
pub struct Invitation<'v> {
    vault: &'v mut Vault,
    store: Arc<dyn Store>,
    invite: Invite,
    ended: bool,
}

impl std::fmt::Debug for Invitation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("store", &self.invite.store)
            .field("expires_ms", &self.invite.expires_ms)
            .finish()
    }
}

impl Replicator {
    /// Opens an invite for a new device through the store at `through` (`None`: the first
    /// configured store), valid for `valid_for`. This device's key history and registry are
    /// pushed there first: the new device reads them from the store.
    ///
    /// # Errors
    /// [`Error::NoStore`] without a store; the store cannot be opened or pushed to.
    pub fn invite<'v>(
        &self,
        vault: &'v mut Vault,
        through: Option<&str>,
        valid_for: Duration,
    ) -> Result<Invitation<'v>, Error> {
        let stores = vault.stores()?;
        let configured = match through {
            Some(text) => stores
                .into_iter()
                .find(|s| s.id.to_string() == text || s.url == text)
                .ok_or_else(|| Error::UnknownStore(text.to_owned()))?,
            None => stores.into_iter().next().ok_or(Error::NoStore)?,
        };
        let store = self.open(&configured.url)?;
        ferry_store::outside_async(|| {
            vault.sync(ferry_engine::StoreHandle { id: configured.id, store: store.as_ref() }, Direction::Push)
        })?;
        let valid_ms = u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX).max(1_000);
        let invite = vault.invite(&configured.url, valid_ms)?;
        Ok(Invitation { vault, store, invite, ended: false })
    }
}

impl Invitation<'_> {
    /// The text the new device needs (`ferry pair accept TOKEN`, or an app's own field): it
    /// holds the store's location and the invite's secret, so treat it like a password.
    pub fn token(&self) -> String {
        self.invite.to_token()
    }

    /// When the invite expires (ms since the Unix epoch).
    pub fn expires_ms(&self) -> u64 {
        self.invite.expires_ms
    }

    /// Waits up to `timeout` for the new device's request: `Ok(None)` if none came yet.
    ///
    /// # Errors
    /// [`Error::PairingTimedOut`] once the invite expired (it is ended); a request that fails
    /// its checks (ended too). A store that is briefly unreachable is waited out.
    pub fn wait_for_request(&mut self, timeout: Duration) -> Result<Option<PairingRequest>, Error> {
        let started = Instant::now();
        loop {
            let (vault, invite, store) = (&mut *self.vault, &self.invite, &self.store);
            // `move` hands the thread the `&mut Vault` (a `Vault` is `Send`, not `Sync`).
            let looked = ferry_store::outside_async(move || vault.pair_request(invite, store.as_ref()));
            match looked {
                Ok(Some(request)) => return Ok(Some(request)),
                Ok(None) => {}
                Err(Error::InviteExpired { .. }) => return Err(self.end(Error::PairingTimedOut)),
                Err(Error::Store(err)) if err.kind == StoreErrorKind::Unavailable => {}
                Err(err) => return Err(self.end(err)),
            }
            if started.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(POLL.min(timeout.saturating_sub(started.elapsed())));
        }
    }

    /// Enrolls the device that sent `request` if `typed_code` is the code it shows (spaces and
    /// other non-digits ignored). The exchange ends either way.
    ///
    /// # Errors
    /// [`Error::PairingCodeMismatch`]: another device answered, or a typo; nothing was enrolled.
    /// The store is unreachable; the invite expired.
    pub fn approve(mut self, request: &PairingRequest, typed_code: &str) -> Result<(), Error> {
        if !codes_match(typed_code, &request.code) {
            return Err(self.end(Error::PairingCodeMismatch));
        }
        let (vault, invite, store) = (&mut *self.vault, &self.invite, &self.store);
        let approved = ferry_store::outside_async(move || vault.approve_pairing(invite, store.as_ref(), request));
        // Approving publishes the response the new device is waiting for: the exchange's other
        // objects are removed by the new device when it finishes.
        self.ended = approved.is_ok();
        approved
    }

    /// Ends the invite now (its objects are removed from the store).
    pub fn cancel(mut self) {
        self.end(Error::PairingTimedOut);
    }

    fn end(&mut self, err: Error) -> Error {
        if !self.ended {
            self.ended = true;
            ferry_store::outside_async(|| ferry_engine::end_invite(&self.invite, self.store.as_ref()));
        }
        err
    }
}

impl Drop for Invitation<'_> {
    fn drop(&mut self) {
        self.end(Error::PairingTimedOut);
    }
}

/// Whether the code typed on the inviting device is the one the new device shows: digits only,
/// compared in constant time.
pub fn codes_match(typed: &str, shown: &str) -> bool {
    let digits = |code: &str| code.chars().filter(char::is_ascii_digit).collect::<String>();
    let (typed, shown) = (digits(typed), digits(shown));
    !shown.is_empty() && bool::from(typed.as_bytes().ct_eq(shown.as_bytes()))
}

/// The new device's half of pairing ([`accept`]).
pub struct Acceptance {
    pairing: Option<Pairing>,
    store: Arc<dyn Store>,
    url: StoreUrl,
    home: Home,
    options: CreateOptions,
    credentials_command: Option<String>,
}

impl std::fmt::Debug for Acceptance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptance").field("store", &self.url.to_text()).field("home", &self.home.root()).finish()
    }
}

/// Answers the invite in `token` for a new device in `home` (which must hold no vault yet),
/// named and locked as `options` says. Through a hub, the exchange goes with a throwaway key
/// (the hub does not know this device yet); the device finishes with its own key.
///
/// # Errors
/// [`Error::AlreadyInitialized`]; a token that does not parse or has expired; the store
/// cannot be reached.
pub fn accept(
    home: &Home,
    token: &str,
    options: CreateOptions,
    credentials_command: Option<String>,
) -> Result<Acceptance, Error> {
    if home.has_vault() {
        return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
    }
    let invite = Invite::parse(token).map_err(Error::from)?;
    let url = StoreUrl::parse(&invite.store)?;
    let throwaway = ferry_format::SecretBytes::new(random_key()?);
    let store = Replicator::joining(throwaway, credentials_command.clone()).open(&invite.store)?;
    let pairing = ferry_store::outside_async(|| Pairing::start(invite, &options.device_name, store.as_ref()))?;
    Ok(Acceptance { pairing: Some(pairing), store, url, home: home.clone(), options, credentials_command })
}

impl Acceptance {
    /// The store the exchange goes through.
    pub fn store(&self) -> String {
        self.url.to_text()
    }

    /// Waits up to `timeout` until the inviting device read the request: then the code to show
    /// the person, and this device's fingerprint. `Ok(None)`: not yet.
    ///
    /// # Errors
    /// [`Error::PairingTimedOut`] once the invite expired; an answer that fails its checks
    /// ([`Error::PairingInterfered`]). The exchange is ended on errors.
    pub fn wait_for_confirmation(&mut self, timeout: Duration) -> Result<Option<PairingConfirmation>, Error> {
        let store = self.store.clone();
        self.wait(timeout, |pairing| ferry_store::outside_async(|| pairing.confirmation(store.as_ref())))
    }

    /// Waits up to `timeout` for the inviting device's approval (`Ok(None)`: not yet); once it
    /// came, creates this device's vault in the home and returns it open. Its stores are not
    /// synced yet: sync them next.
    ///
    /// # Errors
    /// [`Error::PairingTimedOut`] once the invite expired; the approval fails its checks; the
    /// home cannot be written.
    pub fn wait_for_approval(&mut self, timeout: Duration) -> Result<Option<Vault>, Error> {
        let store = self.store.clone();
        let Some(epoch) = self.wait(timeout, |pairing| ferry_store::outside_async(|| pairing.poll(store.as_ref())))?
        else {
            return Ok(None);
        };
        self.finish(epoch).map(Some)
    }

    fn finish(&mut self, epoch: EpochRef) -> Result<Vault, Error> {
        let pairing = self.pairing.take().ok_or(Error::PairingTimedOut)?;
        // Through a hub the device finishes as itself: its inviter's record pins its key there.
        let as_itself = match self.url {
            StoreUrl::Hub(_) => Replicator::joining(pairing.device_signing_secret(), self.credentials_command.clone())
                .open_url(&self.url)?,
            _ => self.store.clone(),
        };
        ferry_store::outside_async(|| pairing.finish(&self.home, &self.options, epoch, as_itself.as_ref()))
    }

    /// Polls `look` until it finds something, `timeout` passes, or the invite expires.
    fn wait<T>(
        &mut self,
        timeout: Duration,
        mut look: impl FnMut(&Pairing) -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let started = Instant::now();
        loop {
            let pairing = self.pairing.as_ref().ok_or(Error::PairingTimedOut)?;
            match look(pairing) {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(Error::Store(err)) if err.kind == StoreErrorKind::Unavailable => {}
                Err(err) => return Err(self.end(err)),
            }
            if ferry_engine::now_ms() >= pairing.expires_ms() {
                return Err(self.end(Error::PairingTimedOut));
            }
            if started.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(POLL.min(timeout.saturating_sub(started.elapsed())));
        }
    }

    fn end(&mut self, err: Error) -> Error {
        if let Some(pairing) = self.pairing.take() {
            ferry_store::outside_async(|| pairing.cancel(self.store.as_ref()));
        }
        err
    }
}

impl Drop for Acceptance {
    fn drop(&mut self) {
        self.end(Error::PairingTimedOut);
    }
}

fn random_key() -> Result<[u8; 32], Error> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::codes_match;

    #[test]
    fn typed_codes_compare_by_digits() {
        #[rustfmt::skip]
        let table = [
            ("123 456", "123 456", true),
            ("123456", "123 456", true),
            (" 123-456 ", "123 456", true),
            ("123 457", "123 456", false),
            ("12345", "123 456", false),
            ("1234567", "123 456", false),
            ("", "123 456", false),
            ("", "", false),
        ];
        for (typed, shown, expected) in table {
            assert_eq!(codes_match(typed, shown), expected, "{typed:?} vs {shown:?}");
        }
    }
}

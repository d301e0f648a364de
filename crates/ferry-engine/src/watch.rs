//! Change notifications for apps that embed the engine.

use ferry_format::OpId;
use std::sync::{Arc, Mutex, mpsc};

/// A record changed: written here, or (with sync) imported from another device.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// The record's collection.
    pub collection: String,
    /// The record's key.
    pub key: String,
    /// The op that changed it.
    pub op: OpId,
    /// Whether the record is now deleted.
    pub deleted: bool,
}

/// The subscribers of one open vault. Each gets every change after its transaction commits.
#[derive(Clone, Default)]
pub(crate) struct Watchers(Arc<Mutex<Vec<mpsc::Sender<Change>>>>);

impl Watchers {
    pub(crate) fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (sender, receiver) = mpsc::channel();
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(sender);
        receiver
    }

    /// Sends the changes to every subscriber, forgetting those that hung up.
    pub(crate) fn notify(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut senders = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        senders.retain(|sender| changes.iter().all(|change| sender.send(change.clone()).is_ok()));
    }
}

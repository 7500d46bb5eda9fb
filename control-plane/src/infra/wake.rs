//! Waking a node's command long-poll when a command is queued for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Wakes long-polls when commands are queued (in this process; other replicas fall back
/// to polling the database every 2 s).
#[derive(Default)]
pub struct CommandNotify(Mutex<HashMap<String, Arc<Notify>>>);

impl CommandNotify {
    /// The wake-up handle of a node's long-poll.
    pub(crate) fn handle(&self, node_id: &str) -> Arc<Notify> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(node_id.to_owned()).or_default().clone()
    }

    /// Wakes the node's long-poll, if any.
    pub fn notify(&self, node_id: &str) {
        self.handle(node_id).notify_one();
    }
}

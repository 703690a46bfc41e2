//! What the caller side and a destination thread share: the messages of a destination's
//! channel and the sink's counters.

use super::record::Record;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What goes down a destination's channel.
pub(super) enum Msg {
    /// A line, with the number of lines dropped just before it on the caller side.
    Line {
        rec: Arc<Record>,
        dropped_before: u64,
    },
    /// Try to get everything out now, then answer with the number of lines still waiting.
    Flush {
        dropped_before: u64,
        ack: mpsc::Sender<usize>,
        /// When the caller stops waiting; the remote path waits up to then for the kernel to
        /// have really sent what it was given.
        deadline: Instant,
    },
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) remote_sent: AtomicU64,
    pub(super) remote_dropped: AtomicU64,
    pub(super) console_dropped: AtomicU64,
    pub(super) remote_connected: AtomicBool,
    remote_last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(super) fn set_error(&self, why: Option<String>) {
        // Nothing panics while holding the lock, but take the value even if it were poisoned.
        let mut slot = self
            .remote_last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = why;
    }

    pub(super) fn last_error(&self) -> Option<String> {
        self.remote_last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

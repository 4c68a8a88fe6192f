//! Draining a child's output pipe on its own thread into a shared, bounded buffer.
//!
//! Each stream gets a thread so that a chatty QEMU never blocks on a full pipe while the harness
//! waits on the other stream or on the exit status. The buffer is shared rather than returned by
//! the thread so the harness can take what arrived even if the pipe never closes (a grandchild
//! that inherited it and outlived QEMU): the harness must always return, with whatever it has.

use std::io::{self, Read};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::bounded_log::BoundedLog;

/// Bytes kept from each end of a stream: a Moat boot log is a few kilobytes, so this only bites
/// when the kernel loops printing.
pub(crate) const KEPT_BYTES_PER_END: usize = 4 << 20;

/// Size of one read from the pipe.
const READ_CHUNK: usize = 16 << 10;

/// A thread copying one pipe into a [`BoundedLog`] until end of file or a read error.
#[derive(Debug)]
pub(crate) struct Drain {
    log: Arc<Mutex<BoundedLog>>,
    /// Disconnects when the thread ends: it holds the only sender and never sends.
    finished: mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

impl Drain {
    /// Starts a thread named `name` that copies `source` into a new log.
    pub(crate) fn spawn<R>(name: &str, mut source: R) -> io::Result<Self>
    where
        R: Read + Send + 'static,
    {
        let log = Arc::new(Mutex::new(BoundedLog::new(KEPT_BYTES_PER_END)));
        let (finished_sender, finished) = mpsc::channel::<()>();
        let thread_log = Arc::clone(&log);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _finished_on_drop = finished_sender;
                let mut chunk = vec![0_u8; READ_CHUNK];
                loop {
                    match source.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(count) => lock(&thread_log).push(&chunk[..count]),
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(error) => {
                            let note =
                                format!("\n[moat-tests: reading this stream failed: {error}]\n");
                            lock(&thread_log).push(note.as_bytes());
                            break;
                        }
                    }
                }
            })?;
        Ok(Self {
            log,
            finished,
            thread,
        })
    }

    /// Waits until the pipe reached end of file or `deadline` passed; true if it finished.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let budget = deadline.saturating_duration_since(Instant::now());
        match self.finished.recv_timeout(budget) {
            // The thread never sends, so a message cannot arrive; treat it like the end.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// What arrived so far. A finished thread is joined; an unfinished one is left to end on its
    /// own when the last writer of the pipe goes away.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        if self.thread.is_finished() {
            // A panic in the copy loop is impossible short of allocation failure; the log keeps
            // whatever was pushed before it either way.
            let _ = self.thread.join();
        }
        lock(&self.log).contents()
    }
}

/// Locks the log; a poisoned lock still holds valid bytes, so it is used as is.
fn lock(log: &Mutex<BoundedLog>) -> std::sync::MutexGuard<'_, BoundedLog> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

//! A byte log with a memory cap that keeps the beginning and the end of a stream.
//!
//! A kernel stuck in a loop that prints can write gigabytes before the timeout fires. Both ends
//! matter when that happens: the beginning shows how far boot got, the end shows the last panic
//! or exception message. The middle is dropped and replaced by one marker line.

use std::collections::VecDeque;

/// Bytes of one stream, at most `2 * half` of them kept.
#[derive(Debug)]
pub(crate) struct BoundedLog {
    /// The first `half` bytes of the stream.
    head: Vec<u8>,
    /// The most recent bytes after the head, at most `half` of them.
    tail: VecDeque<u8>,
    /// How many bytes each end may hold.
    half: usize,
    /// Bytes that fell out between the head and the tail.
    dropped: u64,
}

impl BoundedLog {
    /// An empty log keeping at most `half` bytes from the start and `half` from the end.
    pub(crate) fn new(half: usize) -> Self {
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            half,
            dropped: 0,
        }
    }

    /// Appends `bytes`, dropping the oldest bytes after the head when the tail is full.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = self.half.saturating_sub(self.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        self.tail.extend(rest);
        let excess = self.tail.len().saturating_sub(self.half);
        if excess > 0 {
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The kept bytes, with a marker line where bytes were dropped.
    pub(crate) fn contents(&self) -> Vec<u8> {
        let mut bytes = self.head.clone();
        if self.dropped > 0 {
            let marker = format!(
                "\n[moat-tests: {} bytes of output dropped here to bound memory]\n",
                self.dropped
            );
            bytes.extend_from_slice(marker.as_bytes());
        }
        bytes.extend(self.tail.iter());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::BoundedLog;

    #[test]
    fn small_output_is_kept_whole() {
        let mut log = BoundedLog::new(8);
        log.push(b"hello ");
        log.push(b"world");
        assert_eq!(log.contents(), b"hello world");
    }

    #[test]
    fn output_of_exactly_the_cap_is_kept_whole() {
        let mut log = BoundedLog::new(4);
        log.push(b"abcdefgh");
        assert_eq!(log.contents(), b"abcdefgh");
    }

    #[test]
    fn long_output_keeps_both_ends() {
        let mut log = BoundedLog::new(4);
        for chunk in [&b"boot"[..], b"-middle-", b"of-the-run-", b"PANIC"] {
            log.push(chunk);
        }
        let text = String::from_utf8(log.contents()).unwrap();
        assert!(text.starts_with("boot\n[moat-tests: 20 bytes of output dropped"));
        assert!(text.ends_with("]\nANIC"));
    }

    #[test]
    fn zero_cap_keeps_only_the_marker() {
        let mut log = BoundedLog::new(0);
        log.push(b"abc");
        let text = String::from_utf8(log.contents()).unwrap();
        assert!(text.contains("3 bytes of output dropped"));
    }
}

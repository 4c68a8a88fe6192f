//! The IOVA allocator of one address space: first fit over a window, aligned, with freed ranges
//! merged back. Ranges come back only after the unmap that covered them was invalidated (the
//! address space calls [`IovaAllocator::release`] from its completion path, never before).

use alloc::collections::BTreeMap;
use core::ops::Range;

/// Free IOVA ranges of one window.
#[derive(Debug)]
pub(super) struct IovaAllocator {
    /// start -> end (exclusive), disjoint, non-adjacent.
    free: BTreeMap<u64, u64>,
}

impl IovaAllocator {
    /// Everything in `window` free.
    pub(super) fn new(window: Range<u64>) -> Self {
        let mut free = BTreeMap::new();
        if window.start < window.end {
            free.insert(window.start, window.end);
        }
        Self { free }
    }

    /// `len` bytes aligned to `align` (a power of two), lowest first; `None` if nothing fits.
    pub(super) fn allocate(&mut self, len: u64, align: u64) -> Option<u64> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        let (start, end, at) = self.free.iter().find_map(|(&start, &end)| {
            let at = start.checked_next_multiple_of(align)?;
            (at.checked_add(len)? <= end).then_some((start, end, at))
        })?;
        self.free.remove(&start);
        if start < at {
            self.free.insert(start, at);
        }
        if at + len < end {
            self.free.insert(at + len, end);
        }
        Some(at)
    }

    /// Returns `start..start+len`, merging it with free neighbours.
    pub(super) fn release(&mut self, start: u64, len: u64) {
        let mut start = start;
        let mut end = start + len;
        if let Some((&before, &before_end)) = self.free.range(..start).next_back()
            && before_end == start
        {
            self.free.remove(&before);
            start = before;
        }
        if let Some(after_end) = self.free.remove(&end) {
            end = after_end;
        }
        self.free.insert(start, end);
    }

    /// Bytes free.
    #[cfg(test)]
    fn free_bytes(&self) -> u64 {
        self.free.iter().map(|(s, e)| e - s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_aligned_and_merged_back() {
        let mut a = IovaAllocator::new(0x10_0000..0x100_0000);
        let x = a.allocate(0x1000, 0x1000).unwrap();
        assert_eq!(x, 0x10_0000);
        let big = a.allocate(0x20_0000, 0x20_0000).unwrap();
        assert_eq!(big, 0x20_0000, "2 MiB aligned");
        let y = a.allocate(0x1000, 0x1000).unwrap();
        assert_eq!(y, 0x10_1000, "the gap below the 2 MiB range is used first");
        a.release(x, 0x1000);
        a.release(big, 0x20_0000);
        a.release(y, 0x1000);
        assert_eq!(a.free_bytes(), 0xf0_0000);
        assert_eq!(a.free.len(), 1, "fully merged");
        assert_eq!(a.allocate(0xf0_0001, 0x1000), None);
        assert_eq!(a.allocate(0, 0x1000), None);
    }

    #[test]
    fn an_exact_fit_leaves_no_empty_ranges() {
        let mut a = IovaAllocator::new(0x1000..0x3000);
        assert_eq!(
            a.allocate(0x2000, 0x1000),
            Some(0x1000),
            "the whole window fits"
        );
        assert!(a.free.is_empty(), "no zero-length ranges: {:?}", a.free);
        assert_eq!(a.allocate(0x1000, 0x1000), None);
        a.release(0x1000, 0x2000);
        assert_eq!(a.allocate(0x1000, 0x1000), Some(0x1000));
        assert_eq!(a.free.len(), 1, "only the tail is left: {:?}", a.free);
        assert_eq!(a.free.get(&0x2000), Some(&0x3000));
    }
}

//! Bitmap allocator for 4 KiB physical frames, over caller-provided storage.
//!
//! The storage holds two bitmaps indexed by frame number from 0 up to the end of the highest
//! usable region: `free` (the frame can be handed out) and `managed` (the frame is usable memory
//! this allocator owns). `managed` lets [`FrameAllocator::free`] tell a double free from a frame
//! that was never ours, such as the kernel image.

use core::fmt;

use super::{FRAME_SIZE, Frame, MemoryMap};

const BITS: usize = u64::BITS as usize;

/// Why a frame operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The storage slice has fewer words than [`FrameAllocator::words_needed`].
    StorageTooSmall {
        /// Words required for this map.
        needed: usize,
        /// Words provided.
        provided: usize,
    },
    /// No free frame (or no free run of the requested size and alignment) is left.
    Exhausted,
    /// `count` was zero or `align_frames` was not a power of two.
    InvalidRequest,
    /// The frame is already free.
    DoubleFree,
    /// The frame is not usable memory managed by this allocator (frame 0, a reservation, a
    /// firmware region, or beyond the map).
    NotManaged,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::StorageTooSmall { needed, provided } => write!(
                f,
                "frame bitmap storage too small: {provided} words, {needed} needed"
            ),
            FrameError::Exhausted => write!(f, "out of physical frames"),
            FrameError::InvalidRequest => write!(f, "invalid frame allocation request"),
            FrameError::DoubleFree => write!(f, "frame freed twice"),
            FrameError::NotManaged => write!(f, "frame not managed by the allocator"),
        }
    }
}

/// Hands out 4 KiB frames of usable memory; frame 0 is never handed out.
///
/// The caller must have reserved the storage's own memory in the map before calling
/// [`FrameAllocator::new`], or the bitmap could hand out the frames it lives in.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    /// Bit set: the frame is free.
    free: &'a mut [u64],
    /// Bit set: the frame is usable memory owned by this allocator.
    managed: &'a mut [u64],
    free_count: usize,
    total_count: usize,
    /// Next-fit hint: the word where the next single-frame search starts.
    next_word: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Words of storage [`new`](FrameAllocator::new) needs for `map`: two bits per frame up to
    /// the highest usable end. Adding reservations never increases it.
    pub fn words_needed(map: &MemoryMap) -> usize {
        bitmap_words(map).saturating_mul(2)
    }

    /// Builds the allocator: every usable frame of `map` except frame 0 starts free, everything
    /// else is never handed out. Extra storage beyond [`words_needed`] is left untouched.
    ///
    /// [`words_needed`]: FrameAllocator::words_needed
    pub fn new(map: &MemoryMap, storage: &'a mut [u64]) -> Result<Self, FrameError> {
        let words = bitmap_words(map);
        let too_small = FrameError::StorageTooSmall {
            needed: words.saturating_mul(2),
            provided: storage.len(),
        };
        let (free, rest) = storage.split_at_mut_checked(words).ok_or(too_small)?;
        let (managed, _) = rest.split_at_mut_checked(words).ok_or(too_small)?;
        free.fill(0);
        managed.fill(0);

        let mut total_count = 0;
        for region in map.usable() {
            // Usable regions are frame aligned; the first frame is never handed out.
            let first = frame_index(region.start.max(FRAME_SIZE));
            let end = frame_index(region.end);
            if first < end {
                set_bits(free, first, end);
                set_bits(managed, first, end);
                total_count += end - first;
            }
        }
        Ok(FrameAllocator {
            free,
            managed,
            free_count: total_count,
            total_count,
            next_word: 0,
        })
    }

    /// Allocates one frame, searching on from where the previous allocation succeeded.
    pub fn allocate(&mut self) -> Result<Frame, FrameError> {
        let words = self.free.len();
        for step in 0..words {
            let index = (self.next_word + step) % words;
            let Some(word) = self.free.get_mut(index) else {
                break;
            };
            if *word != 0 {
                let bit = word.trailing_zeros() as usize;
                *word &= !(1 << bit);
                self.next_word = index;
                self.free_count -= 1;
                return Ok(frame_at(index * BITS + bit));
            }
        }
        Err(FrameError::Exhausted)
    }

    /// Allocates `count` physically contiguous frames whose first frame number is a multiple of
    /// `align_frames` (a power of two), lowest fit first. Returns the first frame; each frame is
    /// later freed on its own.
    pub fn allocate_contiguous(
        &mut self,
        count: usize,
        align_frames: usize,
    ) -> Result<Frame, FrameError> {
        if count == 0 || !align_frames.is_power_of_two() {
            return Err(FrameError::InvalidRequest);
        }
        let limit = self.free.len() * BITS;
        let mut candidate: usize = 0;
        while let Some(end) = candidate.checked_add(count).filter(|&end| end <= limit) {
            // A word with no free frame from the candidate on is skipped whole: the frames
            // below the DMA buffers (kernel, heap, tables) would otherwise cost one step each
            // on every allocation.
            let word = self.free.get(candidate / BITS).copied().unwrap_or(0);
            if word >> (candidate % BITS) == 0 {
                match (candidate / BITS + 1)
                    .checked_mul(BITS)
                    .and_then(|next| next.checked_next_multiple_of(align_frames))
                {
                    Some(next) => {
                        candidate = next;
                        continue;
                    }
                    None => break,
                }
            }
            // Skip past the first busy frame: every frame is examined at most once.
            match (candidate..end).find(|&index| !test_bit(self.free, index)) {
                None => {
                    clear_bits(self.free, candidate, end);
                    self.free_count -= count;
                    return Ok(frame_at(candidate));
                }
                Some(busy) => match (busy + 1).checked_next_multiple_of(align_frames) {
                    Some(next) => candidate = next,
                    None => break,
                },
            }
        }
        Err(FrameError::Exhausted)
    }

    /// Returns a frame to the allocator.
    pub fn free(&mut self, frame: Frame) -> Result<(), FrameError> {
        let index = usize::try_from(frame.number()).map_err(|_| FrameError::NotManaged)?;
        if !test_bit(self.managed, index) {
            return Err(FrameError::NotManaged);
        }
        if test_bit(self.free, index) {
            return Err(FrameError::DoubleFree);
        }
        set_bits(self.free, index, index + 1);
        self.free_count += 1;
        Ok(())
    }

    /// Frames currently free.
    pub fn free_count(&self) -> usize {
        self.free_count
    }

    /// Frames managed in total (usable frames except frame 0).
    pub fn total_count(&self) -> usize {
        self.total_count
    }
}

/// Words per bitmap: one bit per frame from 0 to the highest usable end.
fn bitmap_words(map: &MemoryMap) -> usize {
    let frames = map.highest_usable_end().unwrap_or(0) / FRAME_SIZE;
    usize::try_from(frames.div_ceil(BITS as u64)).unwrap_or(usize::MAX)
}

/// Frame number of a frame-aligned address inside the bitmap's range (which fits in `usize`
/// because the bitmap slice does).
fn frame_index(address: u64) -> usize {
    usize::try_from(address / FRAME_SIZE).unwrap_or(usize::MAX)
}

fn frame_at(index: usize) -> Frame {
    Frame::containing(index as u64 * FRAME_SIZE)
}

fn test_bit(bits: &[u64], index: usize) -> bool {
    bits.get(index / BITS)
        .is_some_and(|word| word & (1 << (index % BITS)) != 0)
}

/// Sets bits `[first, end)`, a whole word at a time where possible.
fn set_bits(bits: &mut [u64], first: usize, end: usize) {
    update_bits(bits, first, end, |word, mask| *word |= mask);
}

/// Clears bits `[first, end)`, a whole word at a time where possible.
fn clear_bits(bits: &mut [u64], first: usize, end: usize) {
    update_bits(bits, first, end, |word, mask| *word &= !mask);
}

fn update_bits(bits: &mut [u64], first: usize, end: usize, apply: impl Fn(&mut u64, u64)) {
    let mut index = first;
    while index < end {
        let offset = index % BITS;
        let span = (BITS - offset).min(end - index);
        let mask = if span == BITS {
            u64::MAX
        } else {
            ((1u64 << span) - 1) << offset
        };
        if let Some(word) = bits.get_mut(index / BITS) {
            apply(word, mask);
        }
        index += span;
    }
}

#[cfg(test)]
mod tests;

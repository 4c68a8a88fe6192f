//! Physical memory: the firmware memory map and the 4 KiB frame allocator built on it.

pub mod frames;
pub mod map;

pub use frames::{FrameAllocator, FrameError};
pub use map::{
    MAX_REGIONS, MAX_RESERVATIONS, MapError, MemoryMap, Region, RegionKind, Reservation,
};

/// Size and alignment of a physical frame (a 4 KiB page), in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// One 4 KiB-aligned physical frame, identified by its start address.
///
/// Deliberately neither `Clone` nor `Copy`: a frame handed out by [`FrameAllocator`] is owned by
/// whoever holds the value and goes back by value through [`FrameAllocator::free`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame(u64);

impl Frame {
    /// The frame that contains `address` (the address rounded down to 4 KiB).
    pub const fn containing(address: u64) -> Frame {
        Frame(address & !(FRAME_SIZE - 1))
    }

    /// The frame starting at `start`, or `None` if `start` is not 4 KiB aligned.
    pub const fn from_start(start: u64) -> Option<Frame> {
        if start.is_multiple_of(FRAME_SIZE) {
            Some(Frame(start))
        } else {
            None
        }
    }

    /// Physical address of the first byte of the frame.
    pub const fn start(&self) -> u64 {
        self.0
    }

    /// Frame number: the start address divided by [`FRAME_SIZE`].
    pub const fn number(&self) -> u64 {
        self.0 / FRAME_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containing_rounds_down() {
        assert_eq!(Frame::containing(0).start(), 0);
        assert_eq!(Frame::containing(4095).start(), 0);
        assert_eq!(Frame::containing(4096).start(), 4096);
        assert_eq!(Frame::containing(0x1234_5678).start(), 0x1234_5000);
        assert_eq!(Frame::containing(u64::MAX).start(), u64::MAX - 4095);
        assert_eq!(Frame::containing(0x3fff).number(), 3);
    }

    #[test]
    fn from_start_requires_alignment() {
        assert_eq!(Frame::from_start(0), Some(Frame(0)));
        assert_eq!(
            Frame::from_start(0x20_0000).map(|f| f.number()),
            Some(0x200)
        );
        for unaligned in [1, 0x800, 4097, u64::MAX] {
            assert_eq!(Frame::from_start(unaligned), None, "{unaligned:#x}");
        }
        assert!(Frame::from_start(u64::MAX - 4095).is_some());
    }
}

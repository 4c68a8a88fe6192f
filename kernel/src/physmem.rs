//! The kernel's physical memory: the global 4 KiB frame allocator (its bitmap carved out of the
//! memory map itself) and the kernel heap on `linked_list_allocator`.

use crate::memory::{FRAME_SIZE, Frame, MemoryMap, frames::FrameAllocator, frames::FrameError};
use spin::Mutex;

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

/// Why physical memory could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysmemError {
    /// No usable range can hold the frame bitmap.
    NoRoomForBitmap {
        /// Bytes needed.
        bytes: u64,
    },
    /// The memory map refused the reservation.
    Map(crate::memory::map::MapError),
    /// The frame allocator refused.
    Frames(FrameError),
    /// The allocator is not set up.
    NotInitialised,
    /// Set up already (it is set up once).
    AlreadyInitialised,
}

/// Frame-allocator figures for the boot report.
#[derive(Clone, Copy, Debug)]
pub struct FrameStats {
    /// Frames the allocator manages.
    pub total: usize,
    /// Frames currently free.
    pub free: usize,
    /// Where the bitmap lives.
    pub bitmap_at: u64,
    /// Bitmap size in bytes.
    pub bitmap_bytes: u64,
}

/// Sets up the frame allocator over the usable memory of `map`. The bitmap's own frames are
/// reserved in `map` first, so they are never handed out.
///
/// The composition root's alone, once: a second allocator over the same memory would hand
/// out frames already in use.
pub fn init(
    _root: &crate::privilege::Privileged,
    map: &mut MemoryMap,
) -> Result<FrameStats, PhysmemError> {
    if FRAMES.lock().is_some() {
        return Err(PhysmemError::AlreadyInitialised);
    }
    let words = FrameAllocator::words_needed(map);
    let bytes = (words as u64 * 8).next_multiple_of(FRAME_SIZE);
    let at = map
        .find_free(bytes, FRAME_SIZE)
        .ok_or(PhysmemError::NoRoomForBitmap { bytes })?;
    map.reserve(at, at + bytes, "frame bitmap")
        .map_err(PhysmemError::Map)?;
    // SAFETY: [at, at+bytes) is usable RAM, identity-mapped, now reserved in the map so no one
    // else will be handed it, and this is the only reference ever made to it.
    let storage = unsafe { core::slice::from_raw_parts_mut(at as *mut u64, words) };
    let allocator = FrameAllocator::new(map, storage).map_err(PhysmemError::Frames)?;
    let stats = FrameStats {
        total: allocator.total_count(),
        free: allocator.free_count(),
        bitmap_at: at,
        bitmap_bytes: bytes,
    };
    *FRAMES.lock() = Some(allocator);
    Ok(stats)
}

/// Allocates one zeroed frame, returning its physical address.
pub(crate) fn allocate_zeroed() -> Option<u64> {
    let frame = FRAMES.lock().as_mut()?.allocate().ok()?;
    zero(frame.start(), FRAME_SIZE);
    Some(frame.start())
}

/// Allocates `count` physically contiguous zeroed frames aligned to `align_frames` frames.
pub(crate) fn allocate_contiguous(count: usize, align_frames: usize) -> Result<u64, PhysmemError> {
    let frame = FRAMES
        .lock()
        .as_mut()
        .ok_or(PhysmemError::NotInitialised)?
        .allocate_contiguous(count, align_frames)
        .map_err(PhysmemError::Frames)?;
    zero(frame.start(), count as u64 * FRAME_SIZE);
    Ok(frame.start())
}

/// Returns a frame to the allocator. Only the owners of frames (DMA buffers, table memory)
/// call it, when no one can reach the frame any more.
pub(crate) fn free(address: u64) -> Result<(), PhysmemError> {
    let frame = Frame::from_start(address).ok_or(PhysmemError::Frames(FrameError::NotManaged))?;
    FRAMES
        .lock()
        .as_mut()
        .ok_or(PhysmemError::NotInitialised)?
        .free(frame)
        .map_err(PhysmemError::Frames)
}

/// Free frames now.
pub fn free_frames() -> usize {
    FRAMES.lock().as_ref().map_or(0, FrameAllocator::free_count)
}

fn zero(address: u64, len: u64) {
    // SAFETY: the range was just handed out by the frame allocator, so it is usable RAM, mapped,
    // and owned by the caller alone.
    unsafe { core::ptr::write_bytes(address as *mut u8, 0, len as usize) };
}

/// Sets up the kernel heap on `bytes` of contiguous frames; returns its base.
///
/// The composition root's alone, once.
pub fn init_heap(_root: &crate::privilege::Privileged, bytes: u64) -> Result<u64, PhysmemError> {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, core::sync::atomic::Ordering::AcqRel) {
        return Err(PhysmemError::AlreadyInitialised);
    }
    let count = bytes.div_ceil(FRAME_SIZE) as usize;
    let base = allocate_contiguous(count, 1)?;
    #[cfg(target_os = "none")]
    // SAFETY: the frames were just allocated for the heap alone, are mapped, and `init` is
    // called once, before any allocation.
    unsafe {
        HEAP.lock()
            .init(base as *mut u8, count * FRAME_SIZE as usize);
    }
    Ok(base)
}

//! The kernel's own page tables: an identity map of RAM (write-back) and, on demand, of the
//! MMIO the kernel uses (uncached: PCD|PWT). They replace the boot trampoline's 4 GiB map.

use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::{MapToError, Translate};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size2MiB,
    Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// Caching attribute of a mapped range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Ordinary memory: write-back.
    WriteBack,
    /// Device registers: uncached (PCD|PWT).
    Uncached,
}

impl Caching {
    fn flags(self) -> PageTableFlags {
        let base = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        match self {
            Self::WriteBack => base,
            Self::Uncached => base | PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// No frame for a page table.
    OutOfFrames,
    /// The range overlaps a mapping with a different target or caching.
    Conflict {
        /// The first conflicting address.
        address: u64,
    },
    /// `init` has not run.
    NotInitialised,
    /// `init` ran already.
    AlreadyInitialised,
}

/// A source of zeroed frames for page tables (the kernel's frame allocator).
pub(crate) type FrameSource = fn() -> Option<u64>;

struct Frames(FrameSource);

// SAFETY: `FrameSource` hands out frames that are unused and owned by the page tables from then
// on; the kernel's frame allocator never returns a frame twice.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        (self.0)().and_then(|address| PhysFrame::from_start_address(PhysAddr::new(address)).ok())
    }
}

struct State {
    table: OffsetPageTable<'static>,
    frames: Frames,
}

// SAFETY: the page table is only reached through the mutex below.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

const SIZE_2M: u64 = 2 * 1024 * 1024;
const SIZE_4K: u64 = 4096;

/// Builds the kernel's page tables with `ranges` identity-mapped and switches to them.
///
/// Ranges may overlap; a page already mapped with the same caching is left alone.
///
/// The composition root's alone (`Privileged`), and once: a second call is refused.
pub fn init(
    _root: &crate::privilege::Privileged,
    ranges: &mut dyn Iterator<Item = (u64, u64, Caching)>,
) -> Result<(), PagingError> {
    if STATE.lock().is_some() {
        return Err(PagingError::AlreadyInitialised);
    }
    let frames: FrameSource = crate::physmem::allocate_zeroed;
    let root = frames().ok_or(PagingError::OutOfFrames)?;
    // SAFETY: `root` is a fresh, zeroed frame from the allocator, identity-mapped by the boot
    // tables (and by the new tables, since they map all RAM); nothing else references it.
    let pml4 = unsafe { &mut *(root as *mut PageTable) };
    // SAFETY: physical memory is identity-mapped (offset 0) by the boot tables while we build,
    // and by these tables once active, because every RAM range is in `ranges`.
    let table = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(0)) };
    let mut state = State {
        table,
        frames: Frames(frames),
    };
    for (start, end, caching) in ranges {
        // Firmware ranges share pages at their edges (a usable range ending at 0x9fc00 and a
        // reserved one starting there): the first mapping of a shared page wins.
        map_range(&mut state, start, end, caching, Overlap::KeepExisting)?;
    }
    let frame = PhysFrame::containing_address(PhysAddr::new(root));
    // SAFETY: the new tables identity-map all RAM, including this code, its stack and the
    // kernel's statics, so execution continues unchanged after the switch.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    *STATE.lock() = Some(state);
    Ok(())
}

/// Identity-maps `[start, start+len)` uncached for device registers. Idempotent. The kernel's
/// own (a mapping grants nothing by itself, but the address is the caller's to choose).
pub(crate) fn map_mmio(start: u64, len: u64) -> Result<(), PagingError> {
    let mut guard = STATE.lock();
    let state = guard.as_mut().ok_or(PagingError::NotInitialised)?;
    map_range(
        state,
        start,
        start + len,
        Caching::Uncached,
        Overlap::MustMatch,
    )
}

/// What to do with a page that is already mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overlap {
    /// Leave it as it is, whatever its caching.
    KeepExisting,
    /// It must already be an identity mapping with the same caching.
    MustMatch,
}

/// Whether every byte of `[start, start+len)` is mapped.
pub fn is_mapped(start: u64, len: u64) -> bool {
    let guard = STATE.lock();
    let Some(state) = guard.as_ref() else {
        return false;
    };
    let mut address = start & !(SIZE_4K - 1);
    while address < start.saturating_add(len.max(1)) {
        // A non-canonical address is never mapped (and VirtAddr::new would panic on it).
        let Ok(virtual_address) = VirtAddr::try_new(address) else {
            return false;
        };
        if state.table.translate_addr(virtual_address).is_none() {
            return false;
        }
        address += SIZE_4K;
    }
    true
}

fn map_range(
    state: &mut State,
    start: u64,
    end: u64,
    caching: Caching,
    overlap: Overlap,
) -> Result<(), PagingError> {
    let mut address = start & !(SIZE_4K - 1);
    let end = end.next_multiple_of(SIZE_4K);
    let flags = caching.flags();
    while address < end {
        if address.is_multiple_of(SIZE_2M)
            && address + SIZE_2M <= end
            && !any_mapped(state, address, SIZE_2M)
        {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(address));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(address));
            // SAFETY: identity map of a physical range the caller described as RAM or device
            // registers; no Rust reference points into a not-yet-mapped page.
            let result = unsafe {
                state.table.map_to_with_table_flags(
                    page,
                    frame,
                    flags | PageTableFlags::HUGE_PAGE,
                    PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                    &mut state.frames,
                )
            };
            finish(result.map(|flush| flush.ignore()), address)?;
            address += SIZE_2M;
            continue;
        }
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(address));
        match state.table.translate_addr(VirtAddr::new(address)) {
            Some(_) if overlap == Overlap::KeepExisting => {}
            Some(target) if target.as_u64() == address => {
                let existing = flags_of(state, address);
                if existing != Some(caching) {
                    return Err(PagingError::Conflict { address });
                }
            }
            Some(_) => return Err(PagingError::Conflict { address }),
            None => {
                let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(address));
                // SAFETY: as above.
                let result = unsafe {
                    state.table.map_to_with_table_flags(
                        page,
                        frame,
                        flags,
                        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                        &mut state.frames,
                    )
                };
                finish(result.map(|flush| flush.ignore()), address)?;
            }
        }
        address += SIZE_4K;
    }
    // Newly present entries need no TLB flush: x86 does not cache non-present entries.
    Ok(())
}

fn any_mapped(state: &State, start: u64, len: u64) -> bool {
    let mut address = start;
    while address < start + len {
        if state.table.translate_addr(VirtAddr::new(address)).is_some() {
            return true;
        }
        address += SIZE_4K;
    }
    false
}

fn flags_of(state: &State, address: u64) -> Option<Caching> {
    use x86_64::structures::paging::mapper::TranslateResult;
    match state.table.translate(VirtAddr::new(address)) {
        TranslateResult::Mapped { flags, .. } => {
            Some(if flags.contains(PageTableFlags::NO_CACHE) {
                Caching::Uncached
            } else {
                Caching::WriteBack
            })
        }
        _ => None,
    }
}

fn finish<S: x86_64::structures::paging::PageSize>(
    result: Result<(), MapToError<S>>,
    address: u64,
) -> Result<(), PagingError> {
    match result {
        Ok(()) => Ok(()),
        Err(MapToError::FrameAllocationFailed) => Err(PagingError::OutOfFrames),
        Err(_) => Err(PagingError::Conflict { address }),
    }
}

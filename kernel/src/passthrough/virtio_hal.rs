//! The `virtio-drivers` crate's `Hal`, once, on the ownership API: every address a virtio
//! device is given is an IOVA of its own driver's address space.
//!
//! - `dma_alloc` (the rings) maps a fresh zeroed `DmaBuffer` into the driver's space and returns
//!   its IOVA; `dma_dealloc` retires it into the driver's batch queue (`DeviceDma`). The crate
//!   reaches ring memory through a CPU pointer until `dma_dealloc`, whatever happens to the
//!   session meanwhile, so the HAL keeps a reference to the space of every ring it handed out:
//!   a session dropped before its queue leaves the space (and the ring's frames) alive, detached
//!   from the device, until the ring is deallocated (or for good, if it never is).
//! - `share` never maps the caller's memory: it maps a fresh buffer for that request (device
//!   read-only for `DriverToDevice`, write-only for `DeviceToDriver`), copies the data in when
//!   the device reads it, and returns that buffer's IOVA; `unshare` copies the device's data
//!   out and retires the buffer. A retired buffer goes back to the allocator only after the
//!   ranged invalidation that unmapped it completed.
//! - `mmio_phys_to_virt` accepts only ranges inside a BAR the device's session mapped, and
//!   panics otherwise (no transport of ours calls it: the modern transport reaches its
//!   registers through the session).
//!
//! **How the static `Hal` finds the driver's space.** `Hal` methods take no `self`, so the
//! HAL is a type per slot, [`VirtioHal<SLOT>`](VirtioHal), and a driver claims a slot as a
//! value, [`VirtioSlot<SLOT>`](VirtioSlot) (one owner per slot, not `Clone`). The driver keeps
//! its `DriverDevice` itself; for each operation on its device it *lends* the session to its
//! slot with [`VirtioSlot::lend`], which holds the `&mut DriverDevice` borrowed for exactly as
//! long as the closure runs. Inside, the HAL and the register access
//! ([`SlotRegisters`]) reach that one session's `DeviceDma` and BARs, nothing else; outside,
//! they refuse (an allocation returns IOVA 0, which no space ever maps, so a request built on
//! it faults instead of reaching memory). The HAL's mappings are kept by (space, IOVA): a slot
//! lent to another session later (a queue outliving its session, or a slot claimed again)
//! never retires one space's IOVA in another's. The kernel runs on one CPU and no interrupt
//! handler calls into a slot.

use super::DriverDevice;
use super::device_dma::DmaMapping;
use crate::vtd::SharedSpace;
use alloc::collections::BTreeMap;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use moat_iommu::paging::Access;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// How many virtio devices can be driven at once (one slot each).
pub const VIRTIO_SLOTS: usize = 4;

const PAGE: u64 = 4096;

/// Why a slot operation could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// No session is lent to the slot (the call came from outside [`VirtioSlot::lend`]).
    NotLent,
    /// A slot operation ran inside another one (a broken internal invariant).
    Reentered,
}

/// One buffer the HAL mapped, in the space of the session that was lent when it did.
struct HalMapping {
    mapping: DmaMapping,
    /// For ring memory (`dma_alloc`), which the crate reaches through a CPU pointer: the space
    /// that owns the frames, kept alive until the ring is deallocated.
    keep: Option<SharedSpace>,
}

/// One slot: the lent session, and the HAL's mappings by (space ID, IOVA).
struct Slot {
    claimed: AtomicBool,
    lent: AtomicPtr<DriverDevice>,
    in_use: AtomicBool,
    mappings: Mutex<BTreeMap<(u32, u64), HalMapping>>,
    failures: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Self {
            claimed: AtomicBool::new(false),
            lent: AtomicPtr::new(core::ptr::null_mut()),
            in_use: AtomicBool::new(false),
            mappings: Mutex::new(BTreeMap::new()),
            failures: AtomicU64::new(0),
        }
    }
}

static SLOTS: [Slot; VIRTIO_SLOTS] = [const { Slot::new() }; VIRTIO_SLOTS];

/// Runs `f` on the session lent to `slot`, if one is, and no other slot operation is running.
fn with_device<R>(slot: &Slot, f: impl FnOnce(&mut DriverDevice) -> R) -> Result<R, SlotError> {
    if slot.in_use.swap(true, Ordering::Acquire) {
        return Err(SlotError::Reentered);
    }
    let device = slot.lent.load(Ordering::Acquire);
    let result = if device.is_null() {
        Err(SlotError::NotLent)
    } else {
        // SAFETY: `lend` stores this pointer from a `&mut DriverDevice` that it keeps borrowed
        // until after it has cleared the pointer again, so the session is alive and nothing
        // else names it; `in_use` makes this the only reference made from the pointer at a
        // time (one CPU, and no interrupt handler calls into a slot).
        Ok(f(unsafe { &mut *device }))
    };
    slot.in_use.store(false, Ordering::Release);
    result
}

/// HAL failures of slot `SLOT` so far (the queue checks that a submission mapped everything).
pub(crate) fn failures<const SLOT: usize>() -> u64 {
    VirtioSlot::<SLOT>::slot().failures.load(Ordering::Relaxed)
}

/// Counters of one slot's HAL (for reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// HAL buffers currently mapped (rings and requests in flight).
    pub mapped: usize,
    /// HAL calls that failed (no memory, mapping refused, not lent).
    pub failures: u64,
}

/// A claimed slot: the right to lend a session to [`VirtioHal<SLOT>`](VirtioHal). Not `Clone`.
#[derive(Debug)]
pub struct VirtioSlot<const SLOT: usize> {
    _private: (),
}

impl<const SLOT: usize> VirtioSlot<SLOT> {
    const IN_RANGE: () = assert!(SLOT < VIRTIO_SLOTS, "no such virtio slot");

    fn slot() -> &'static Slot {
        #[allow(clippy::let_unit_value)]
        let _ = Self::IN_RANGE;
        &SLOTS[SLOT]
    }

    /// Claims slot `SLOT`, or `None` if another driver holds it.
    pub fn claim() -> Option<Self> {
        let slot = Self::slot();
        slot.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        slot.failures.store(0, Ordering::Relaxed);
        Some(Self { _private: () })
    }

    /// Lends `device` to the slot while `f` runs: the HAL and [`SlotRegisters`] of this slot
    /// reach it, and only it, until `f` returns.
    pub fn lend<R>(&mut self, device: &mut DriverDevice, f: impl FnOnce() -> R) -> R {
        struct Return<'a>(&'a Slot);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                self.0.lent.store(core::ptr::null_mut(), Ordering::Release);
            }
        }
        let slot = Self::slot();
        slot.lent.store(device, Ordering::Release);
        let _return = Return(slot);
        f()
    }

    /// The register access of this slot's lent session.
    pub fn registers(&self) -> SlotRegisters<SLOT> {
        SlotRegisters { _private: () }
    }

    /// The slot's HAL counters.
    pub fn stats(&self) -> SlotStats {
        let slot = Self::slot();
        SlotStats {
            mapped: slot.mappings.lock().len(),
            failures: slot.failures.load(Ordering::Relaxed),
        }
    }
}

impl<const SLOT: usize> Drop for VirtioSlot<SLOT> {
    /// Frees the slot. Request buffers the HAL still holds (a queue dropped without its session
    /// lent) stay in their session's address space, which frees them when it goes, after its
    /// device is detached: never before the device lost the way to them. Rings stay in the
    /// table with their space: a queue may outlive the slot and still point into them.
    fn drop(&mut self) {
        let slot = Self::slot();
        let mut mappings = slot.mappings.lock();
        let leftover = mappings.len();
        mappings.retain(|_, held| held.keep.is_some());
        if leftover > 0 {
            crate::warn!(
                "virtio",
                "slot {SLOT}: {leftover} buffer(s) left mapped ({} ring(s) kept with their space); \
                 they go with the address space",
                mappings.len()
            );
        }
        drop(mappings);
        slot.lent.store(core::ptr::null_mut(), Ordering::Release);
        slot.claimed.store(false, Ordering::Release);
    }
}

/// Register access, interrupts and config reads of the session lent to slot `SLOT`; every
/// call fails with [`SlotError::NotLent`] outside [`VirtioSlot::lend`]. BARs must have been
/// mapped (`DriverDevice::registers`) before the session was lent.
#[derive(Debug)]
pub struct SlotRegisters<const SLOT: usize> {
    _private: (),
}

impl<const SLOT: usize> SlotRegisters<SLOT> {
    /// Runs `f` on the lent session.
    pub fn with<R>(&self, f: impl FnOnce(&mut DriverDevice) -> R) -> Result<R, SlotError> {
        with_device(VirtioSlot::<SLOT>::slot(), f)
    }
}

/// The `virtio-drivers` HAL of slot `SLOT` (see the module documentation).
#[derive(Debug)]
pub struct VirtioHal<const SLOT: usize>;

impl<const SLOT: usize> VirtioHal<SLOT> {
    fn failed(what: core::fmt::Arguments<'_>) {
        VirtioSlot::<SLOT>::slot()
            .failures
            .fetch_add(1, Ordering::Relaxed);
        crate::error!("virtio", "slot {SLOT}: {what}");
    }

    /// Maps a fresh buffer of `len` bytes for the device with `access`, fills it from `data`
    /// if given, and keeps the mapping by (space, IOVA), with its space if `ring` (see
    /// [`HalMapping::keep`]). Returns the IOVA and the CPU address.
    fn map(len: u64, access: Access, data: Option<&[u8]>, ring: bool) -> Option<(u64, u64)> {
        let slot = VirtioSlot::<SLOT>::slot();
        let mapped = with_device(slot, |device| {
            let dma = device.dma();
            let space = dma.space().id();
            let keep = ring.then(|| dma.space().shared().clone());
            let mapping = dma.map(len, access).map_err(|e| alloc::format!("{e:?}"))?;
            let filled = match data {
                Some(data) => dma.write(&mapping, 0, data),
                None => Ok(()),
            };
            let address = dma.cpu_address(&mapping);
            match (filled, address) {
                (Ok(()), Some(address)) => Ok((space, HalMapping { mapping, keep }, address)),
                (filled, _) => {
                    let _ = dma.retire(mapping);
                    Err(alloc::format!("filling a shared buffer: {filled:?}"))
                }
            }
        });
        match mapped {
            Ok(Ok((space, held, address))) => {
                let iova = held.mapping.iova();
                slot.mappings.lock().insert((space, iova), held);
                Some((iova, address))
            }
            Ok(Err(why)) => {
                Self::failed(format_args!("mapping {len} bytes: {why}"));
                None
            }
            Err(why) => {
                Self::failed(format_args!("mapping {len} bytes: {why:?}"));
                None
            }
        }
    }

    /// Takes the mapping at `iova` in the lent session's space back, copies it into `out` if
    /// given, and retires it. Without a lent session the mapping stays where it is (in the
    /// table, and in its space until the space goes).
    fn retire(iova: u64, out: Option<&mut [u8]>) {
        let slot = VirtioSlot::<SLOT>::slot();
        let result = with_device(slot, |device| {
            let dma = device.dma();
            let key = (dma.space().id(), iova);
            let Some(held) = slot.mappings.lock().remove(&key) else {
                return Err(alloc::format!(
                    "not a buffer the HAL mapped in space {}",
                    key.0
                ));
            };
            let copied = match out {
                Some(out) => dma.read(&held.mapping, 0, out),
                None => Ok(()),
            };
            // The ring's space reference (if any) goes after the retire: the frames are then
            // the session's batch queue's to free, after its invalidation.
            let retired = dma.retire(held.mapping);
            copied
                .and(retired)
                .map_err(|error| alloc::format!("{error:?}"))
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(why)) => Self::failed(format_args!("returning IOVA {iova:#x}: {why}")),
            Err(error) => Self::failed(format_args!("returning IOVA {iova:#x}: {error:?}")),
        }
    }
}

fn access_for(direction: BufferDirection) -> Access {
    match direction {
        BufferDirection::DriverToDevice => Access::Read,
        BufferDirection::DeviceToDriver => Access::Write,
        BufferDirection::Both => Access::ReadWrite,
    }
}

// SAFETY: `dma_alloc` returns a pointer to a fresh, zeroed, page-aligned `DmaBuffer` of
// `pages` pages that nothing else references and that stays allocated until `dma_dealloc`
// retired it: the space owns the buffer and the slot's table keeps that space alive (even
// past its session) until then; or it returns IOVA 0 (the crate's failure value) with a
// dangling pointer the crate never uses. `mmio_phys_to_virt` returns only identity-mapped addresses
// inside a BAR window the lent session mapped, and panics otherwise. `share` and `unshare`
// read and write only the caller's buffer, within the bounds of the `NonNull<[u8]>` given.
unsafe impl<const SLOT: usize> Hal for VirtioHal<SLOT> {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // Rings: the driver writes descriptors and the available ring, the device the used
        // ring; one allocation can hold both, so the device gets read and write.
        match Self::map(pages as u64 * PAGE, Access::ReadWrite, None, true) {
            Some((iova, address)) => match NonNull::new(address as *mut u8) {
                Some(pointer) => (iova, pointer),
                None => {
                    Self::retire(iova, None);
                    (0, NonNull::dangling())
                }
            },
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        Self::retire(paddr, None);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let inside = with_device(VirtioSlot::<SLOT>::slot(), |device| {
            (0..6).any(|bar| {
                device
                    .mapped(bar)
                    .is_ok_and(|window| window.contains_physical(paddr, size as u64))
            })
        });
        match (inside, NonNull::new(paddr as *mut u8)) {
            (Ok(true), Some(pointer)) => pointer,
            (inside, _) => panic!(
                "virtio slot {SLOT}: MMIO {paddr:#x}+{size:#x} is not inside a mapped BAR of \
                 the slot's device ({inside:?})"
            ),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len() as u64;
        let data = match direction {
            BufferDirection::DriverToDevice | BufferDirection::Both => {
                // SAFETY: the caller guarantees `buffer` is valid and not accessed by anyone
                // else during this call; it is only read here.
                Some(unsafe { buffer.as_ref() })
            }
            BufferDirection::DeviceToDriver => None,
        };
        Self::map(len.max(1), access_for(direction), data, false).map_or(0, |(iova, _)| iova)
    }

    unsafe fn unshare(paddr: PhysAddr, mut buffer: NonNull<[u8]>, direction: BufferDirection) {
        let out = match direction {
            BufferDirection::DeviceToDriver | BufferDirection::Both => {
                // SAFETY: the caller guarantees `buffer` is valid and not accessed by anyone
                // else during this call; it is written only here, within its length.
                Some(unsafe { buffer.as_mut() })
            }
            BufferDirection::DriverToDevice => None,
        };
        Self::retire(paddr, out);
    }
}

//! The kernel's raw hardware access: port I/O, MMIO and the few privileged instructions. Nothing
//! else in the crate calls `read_volatile`, `write_volatile` or `asm!`; everything above this
//! module goes through these typed, width-checked helpers.

use core::marker::PhantomData;
use core::sync::atomic::{Ordering, compiler_fence};
use x86_64::instructions::port::Port;

/// Reads a byte from an I/O port. Port I/O reaches any device (PCI config space through
/// 0xcf8/0xcfc among them), so it is the kernel's alone.
pub(crate) fn inb(port: u16) -> u8 {
    // SAFETY: port reads have no memory-safety effect; callers own the device semantics.
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a byte to an I/O port.
pub(crate) fn outb(port: u16, value: u8) {
    // SAFETY: the kernel owns every legacy port it touches (PIT, PIC, debug-exit); a port write
    // cannot break Rust's memory model.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Writes a 16-bit value to an I/O port.
pub(crate) fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u16>::new(port).write(value) }
}

/// Reads a 32-bit value from an I/O port.
pub(crate) fn inl(port: u16) -> u32 {
    // SAFETY: as for `inb`.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes a 32-bit value to an I/O port.
pub(crate) fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Returns CPUID leaf `leaf`, subleaf `sub` as (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Halts until the next interrupt.
pub fn halt() {
    x86_64::instructions::hlt();
}

/// Halts until the next interrupt unless `done()` says the wait is over; `done` runs with
/// interrupts off, so an interrupt that makes it true cannot slip in between the check and
/// the halt (`sti; hlt` takes the pending interrupt only after the halt started). Returns
/// `done`'s verdict. With interrupts off on entry nothing would wake a halt: it only checks.
pub fn halt_unless(done: impl FnOnce() -> bool) -> bool {
    use x86_64::instructions::interrupts;
    if !interrupts::are_enabled() {
        let finished = done();
        core::hint::spin_loop();
        return finished;
    }
    interrupts::disable();
    if done() {
        interrupts::enable();
        return true;
    }
    interrupts::enable_and_hlt();
    false
}

/// Disables interrupts and halts forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// A width-typed MMIO register at a fixed physical (identity-mapped) address.
///
/// The width is part of the type, so a 32-bit register can never be touched with an 8-byte
/// access (QEMU's VT-d model aborts on that).
#[derive(Debug)]
pub struct Mmio<T> {
    address: usize,
    _width: PhantomData<T>,
}

/// Register widths the MMIO helpers accept.
pub trait RegisterWidth: Copy {}
impl RegisterWidth for u8 {}
impl RegisterWidth for u16 {}
impl RegisterWidth for u32 {}
impl RegisterWidth for u64 {}

impl<T: RegisterWidth> Mmio<T> {
    /// Creates a register handle.
    ///
    /// # Safety
    ///
    /// `address` must be the identity-mapped, uncached address of a device register of width
    /// `T`, naturally aligned, and nothing may alias it as ordinary memory for as long as the
    /// handle is used.
    pub const unsafe fn new(address: usize) -> Self {
        Self {
            address,
            _width: PhantomData,
        }
    }

    /// Reads the register.
    pub fn read(&self) -> T {
        // SAFETY: `new`'s contract: a mapped, aligned register of this width.
        unsafe { core::ptr::read_volatile(self.address as *const T) }
    }

    /// Writes the register.
    pub fn write(&self, value: T) {
        // SAFETY: `new`'s contract: a mapped, aligned register of this width.
        unsafe { core::ptr::write_volatile(self.address as *mut T, value) }
    }
}

/// Reads `buf.len()` bytes of identity-mapped physical memory at `address` with one block copy
/// (`memcpy`: `rep movs` on this target, the cheapest copy under TCG), fenced so the compiler
/// neither moves it across the code around it nor assumes it knows the memory's contents (a
/// device writes DMA buffers behind the compiler's back; the copy is taken after the device
/// said it is done, as every kernel reads DMA buffers).
///
/// # Safety
///
/// The whole range must be mapped, readable RAM (never a device register: the copy may use
/// any access width), and no Rust reference may be writing it.
pub unsafe fn read_physical(address: u64, buf: &mut [u8]) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the caller guarantees the range is mapped readable RAM; `buf` is a distinct,
    // exclusively borrowed Rust allocation, so the two do not overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(address as usize as *const u8, buf.as_mut_ptr(), buf.len())
    };
    compiler_fence(Ordering::SeqCst);
}

/// Writes `data` to identity-mapped physical memory at `address` with one fenced block copy
/// (see [`read_physical`]); a device is handed the memory only after this returns.
///
/// # Safety
///
/// The whole range must be mapped, writable RAM that the caller owns (no Rust reference to it
/// exists), and must not be a device register.
pub unsafe fn write_physical(address: u64, data: &[u8]) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the caller guarantees the range is mapped writable RAM it owns, which no Rust
    // reference (so not `data`) points into.
    unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), address as usize as *mut u8, data.len())
    };
    compiler_fence(Ordering::SeqCst);
}

/// Writes back and invalidates the cache line holding `address` (for hardware that does not
/// snoop CPU caches, such as a VT-d unit with ECAP.C = 0), ordered after earlier stores.
pub(crate) fn flush_cache_line(address: u64) {
    // SAFETY: CLFLUSH on an identity-mapped address only affects caching, never contents; the
    // fences order it after the preceding table stores.
    unsafe {
        core::arch::asm!("mfence", "clflush [{0}]", "mfence", in(reg) address, options(nostack, preserves_flags));
    }
}

/// Reads a u64 of identity-mapped memory that a device may write (volatile).
///
/// # Safety
///
/// `address` must be 8-byte aligned, mapped RAM owned by the caller's data structure.
pub unsafe fn read_u64(address: u64) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::read_volatile(address as *const u64) }
}

/// Writes a u64 of identity-mapped memory that a device reads (volatile).
///
/// # Safety
///
/// As for `read_u64`.
pub unsafe fn write_u64(address: u64, value: u64) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::write_volatile(address as *mut u64, value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn block_copies_match_at_every_alignment_and_length() {
        let source: alloc::vec::Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
                let mut out = vec![0u8; len];
                // SAFETY: the range is inside `source`, live host memory.
                unsafe { read_physical(source.as_ptr() as u64 + start as u64, &mut out) };
                assert_eq!(out, source[start..start + len], "read {start}+{len}");
                let mut target = vec![0xeeu8; 64];
                // SAFETY: the range is inside `target`, owned here, no reference held.
                unsafe { write_physical(target.as_mut_ptr() as u64 + start as u64, &out) };
                assert_eq!(target[start..start + len], source[start..start + len]);
                assert!(
                    target[..start].iter().all(|b| *b == 0xee),
                    "before {start}+{len}"
                );
                assert!(
                    target[start + len..].iter().all(|b| *b == 0xee),
                    "after {start}+{len}"
                );
            }
        }
    }
}

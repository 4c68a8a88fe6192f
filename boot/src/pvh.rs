//! Reads QEMU's PVH `hvm_start_info` (Xen's `start_info.h` layout, version 1) into a `BootInfo`.

use moat_kernel::boot_info::{BootInfo, FirmwareRegion, Loader};

/// `hvm_start_info.magic`.
const PVH_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Why the PVH information could not be read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PvhError {
    /// `%ebx` did not point at a start-info block.
    BadMagic(u32),
}

impl core::fmt::Display for PvhError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(magic) => {
                write!(f, "start info magic {magic:#x}, expected {PVH_MAGIC:#x}")
            }
        }
    }
}

/// Copies the start info at `address` into `info`.
///
/// # Safety
///
/// `address` must be the `%ebx` value of a PVH entry: the identity-mapped start info, whose
/// memory map and command line are readable and unchanged since the loader wrote them.
pub(crate) unsafe fn read(address: u64, info: &mut BootInfo) -> Result<(), PvhError> {
    // SAFETY: the caller's contract covers the start info block.
    let start: StartInfo = unsafe { core::ptr::read_unaligned(address as *const StartInfo) };
    if start.magic != PVH_MAGIC {
        return Err(PvhError::BadMagic(start.magic));
    }
    *info = BootInfo::new(Loader::Pvh);
    info.loader_ranges[0] = (address, address + size_of::<StartInfo>() as u64);
    if start.version >= 1 && start.memmap_paddr != 0 {
        for i in 0..u64::from(start.memmap_entries) {
            let entry_address = start.memmap_paddr + i * size_of::<MemmapEntry>() as u64;
            // SAFETY: the caller's contract covers the loader's memory map entries.
            let entry: MemmapEntry =
                unsafe { core::ptr::read_unaligned(entry_address as *const MemmapEntry) };
            info.push_region(FirmwareRegion {
                start: entry.addr,
                length: entry.size,
                kind: entry.kind,
            });
        }
    }
    if start.cmdline_paddr != 0 {
        // SAFETY: the command line is a NUL-terminated string the loader placed; we read at
        // most the kernel's maximum and stop at the first NUL.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                start.cmdline_paddr as *const u8,
                moat_kernel::boot_info::MAX_CMDLINE + 1,
            )
        };
        info.set_cmdline(bytes);
    }
    if start.rsdp_paddr != 0 {
        info.rsdp = Some(start.rsdp_paddr);
    }
    Ok(())
}

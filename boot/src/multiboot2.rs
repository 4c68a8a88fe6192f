//! Reads a multiboot2 boot information block (GRUB) into a `BootInfo`, through the `multiboot2`
//! crate, which validates the tag sequence.

use moat_kernel::boot_info::{BootInfo, FirmwareRegion, Loader};
use multiboot2::{BootInformation, BootInformationHeader};

/// Why the multiboot2 information could not be read.
#[derive(Debug)]
pub(crate) enum Multiboot2Error {
    /// The MBI failed the crate's validation.
    Invalid(multiboot2::LoadError),
}

impl core::fmt::Display for Multiboot2Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Invalid(error) => write!(f, "invalid boot information: {error}"),
        }
    }
}

/// Copies the MBI at `address` into `info`.
///
/// # Safety
///
/// `address` must be the `%ebx` value of a multiboot2 entry: the identity-mapped MBI, unchanged
/// since the loader wrote it.
pub(crate) unsafe fn read(address: u64, info: &mut BootInfo) -> Result<(), Multiboot2Error> {
    // SAFETY: the caller's contract; `load` validates the size and the tag sequence.
    let mbi = unsafe { BootInformation::load(address as *const BootInformationHeader) }
        .map_err(Multiboot2Error::Invalid)?;
    *info = BootInfo::new(Loader::Multiboot2);
    info.loader_ranges[0] = (mbi.start_address() as u64, mbi.end_address() as u64);
    if let Some(map) = mbi.memory_map_tag() {
        for area in map.memory_areas() {
            info.push_region(FirmwareRegion {
                start: area.start_address(),
                length: area.size(),
                kind: u32::from(area.typ()),
            });
        }
    }
    if let Some(Ok(text)) = mbi.command_line_tag().map(|tag| tag.cmdline()) {
        info.set_cmdline(text.as_bytes());
    }
    // The tags hold copies of the RSDP; the copy lives in the MBI, which stays reserved.
    if let Some(tag) = mbi.rsdp_v2_tag() {
        info.rsdp = Some(core::ptr::from_ref(tag) as u64 + 8);
    } else if let Some(tag) = mbi.rsdp_v1_tag() {
        info.rsdp = Some(core::ptr::from_ref(tag) as u64 + 8);
    }
    Ok(())
}

//! What a boot loader hands the kernel, in one loader-independent form. The PVH entry (QEMU
//! `-kernel`) and the multiboot2 entry (GRUB) both fill a `BootInfo`; the rest of the kernel
//! never knows which one ran. Fixed capacity: it is filled before the heap exists.

/// Which loader started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// QEMU's `-kernel` through the PVH entry note.
    Pvh,
    /// A multiboot2 loader (GRUB in the appliance image).
    Multiboot2,
}

impl Loader {
    /// A short name for the boot report.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pvh => "PVH (QEMU -kernel)",
            Self::Multiboot2 => "multiboot2 (GRUB)",
        }
    }
}

/// One entry of the firmware's memory map, with its E820 type (1 usable, 2 reserved, 3 ACPI
/// reclaimable, 4 ACPI NVS, 5 unusable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirmwareRegion {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// E820 type.
    pub kind: u32,
}

/// Maximum number of firmware memory-map entries kept.
pub const MAX_REGIONS: usize = 256;
/// Maximum command-line length kept (longer ones are truncated and reported).
pub const MAX_CMDLINE: usize = 2048;

/// Loader-independent boot information.
#[derive(Debug)]
pub struct BootInfo {
    /// Which loader ran.
    pub loader: Loader,
    regions: [FirmwareRegion; MAX_REGIONS],
    region_count: usize,
    /// Entries dropped because the table was full.
    pub regions_dropped: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// Whether the command line was longer than `MAX_CMDLINE`.
    pub cmdline_truncated: bool,
    /// The RSDP's physical address, where the loader gave one.
    pub rsdp: Option<u64>,
    /// Physical ranges holding the loader's structures, to keep out of the frame allocator
    /// until they have been copied (they have been by the time `BootInfo` exists).
    pub loader_ranges: [(u64, u64); 4],
}

impl BootInfo {
    /// An empty record for `loader`.
    pub const fn new(loader: Loader) -> Self {
        Self {
            loader,
            regions: [FirmwareRegion {
                start: 0,
                length: 0,
                kind: 0,
            }; MAX_REGIONS],
            region_count: 0,
            regions_dropped: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_truncated: false,
            rsdp: None,
            loader_ranges: [(0, 0); 4],
        }
    }

    /// Adds a memory-map entry (counted as dropped when full).
    pub fn push_region(&mut self, region: FirmwareRegion) {
        if self.region_count < MAX_REGIONS {
            self.regions[self.region_count] = region;
            self.region_count += 1;
        } else {
            self.regions_dropped += 1;
        }
    }

    /// The firmware memory map as given.
    pub fn regions(&self) -> &[FirmwareRegion] {
        &self.regions[..self.region_count]
    }

    /// Stores the command line (bytes up to the first NUL).
    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
        let len = bytes.len().min(MAX_CMDLINE);
        self.cmdline[..len].copy_from_slice(&bytes[..len]);
        self.cmdline_len = len;
        self.cmdline_truncated = bytes.len() > MAX_CMDLINE;
    }

    /// The command line; invalid UTF-8 is cut at the first bad byte.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_stops_at_nul_and_truncates() {
        let mut info = BootInfo::new(Loader::Pvh);
        info.set_cmdline(b"poweroff test=x\0garbage");
        assert_eq!(info.cmdline(), "poweroff test=x");
        let long = [b'a'; MAX_CMDLINE + 10];
        info.set_cmdline(&long);
        assert!(info.cmdline_truncated);
        assert_eq!(info.cmdline().len(), MAX_CMDLINE);
    }

    #[test]
    fn cmdline_invalid_utf8_is_cut() {
        let mut info = BootInfo::new(Loader::Multiboot2);
        info.set_cmdline(b"poweroff \xff\xfe rest");
        assert_eq!(info.cmdline(), "poweroff ");
    }

    #[test]
    fn regions_overflow_is_counted() {
        let mut info = BootInfo::new(Loader::Pvh);
        for i in 0..MAX_REGIONS + 3 {
            info.push_region(FirmwareRegion {
                start: i as u64 * 4096,
                length: 4096,
                kind: 1,
            });
        }
        assert_eq!(info.regions().len(), MAX_REGIONS);
        assert_eq!(info.regions_dropped, 3);
    }
}

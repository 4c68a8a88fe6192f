//! Second-level paging entries (VT-d spec 9.8) and the access permissions they grant.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{EntryError, PageSize, PhysAddr, field};

const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
const PAGE_SIZE: u64 = 1 << 7;
const SNOOP: u64 = 1 << 11;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// What a device may do through a mapping. There is no "none": an entry with neither R nor W is
/// not present (VT-d spec 9.8; QEMU reports fault 5 or 6 for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Device reads only (R = 1, W = 0): the device reads memory, e.g. a transmit buffer.
    Read,
    /// Device writes only (R = 0, W = 1): the device writes memory, e.g. a receive buffer.
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    /// Whether the device may read.
    pub const fn allows_read(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }

    /// Whether the device may write.
    pub const fn allows_write(self) -> bool {
        matches!(self, Self::Write | Self::ReadWrite)
    }

    const fn bits(self) -> u64 {
        match self {
            Self::Read => READ,
            Self::Write => WRITE,
            Self::ReadWrite => READ | WRITE,
        }
    }
}

/// The SNP bit (bit 11) of a leaf. It is reserved unless ECAP.SC (snoop control) is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snoop {
    /// SNP = 0: the request's own no-snoop attribute is honoured.
    AsRequested,
    /// SNP = 1: every access through the leaf snoops the CPU caches.
    Forced,
}

/// A 64-bit second-level paging entry (VT-d spec 9.8, "Second-Level Paging Entries").
///
/// * R (bit 0), W (bit 1): an entry with neither is not present. VT-d checks them at every
///   level, so a non-leaf entry carries R|W and the leaf decides.
/// * PS (bit 7): set in a level-2 (2 MiB) or level-3 (1 GiB) leaf; reserved at level 4 and
///   ignored at level 1.
/// * SNP (bit 11), address (bits 51:12). Address bits above the host address width are reserved,
///   and a superpage address must be aligned to its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(transparent)]
pub struct SlPte(u64);

impl SlPte {
    /// The not-present entry.
    pub const NOT_PRESENT: Self = Self(0);

    /// A non-leaf entry pointing at the 4 KiB-aligned next-level table, with R|W so that the
    /// leaf's permission alone governs.
    pub const fn table(next: PhysAddr) -> Result<Self, EntryError> {
        match next.require_4k() {
            Ok(next) => Ok(Self(next.as_u64() | READ | WRITE)),
            Err(error) => Err(error),
        }
    }

    /// A leaf mapping `size` bytes at `phys`, which must be aligned to `size`. 2 MiB and 1 GiB
    /// leaves get PS; the caller places them at level 2 or 3 respectively.
    pub const fn leaf(phys: PhysAddr, size: PageSize, access: Access) -> Result<Self, EntryError> {
        if !phys.is_aligned(size) {
            return Err(EntryError::Misaligned);
        }
        let page_size = match size {
            PageSize::Size4K => 0,
            PageSize::Size2M | PageSize::Size1G => PAGE_SIZE,
        };
        Ok(Self(phys.as_u64() | page_size | access.bits()))
    }

    /// The same entry with SNP set as given. Only legal if ECAP.SC is set.
    pub const fn with_snoop(self, snoop: Snoop) -> Self {
        match snoop {
            Snoop::AsRequested => Self(self.0 & !SNOOP),
            Snoop::Forced => Self(self.0 | SNOOP),
        }
    }

    /// Reinterprets a value read from a table.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The value to store in a table.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Whether R or W is set.
    pub const fn is_present(self) -> bool {
        self.0 & (READ | WRITE) != 0
    }

    /// The permission R and W grant, or `None` if the entry is not present.
    pub const fn access(self) -> Option<Access> {
        match field(self.0, 0, 2) {
            1 => Some(Access::Read),
            2 => Some(Access::Write),
            3 => Some(Access::ReadWrite),
            _ => None,
        }
    }

    /// Whether PS is set. Meaningful at levels 2 and 3 only.
    pub const fn is_superpage(self) -> bool {
        self.0 & PAGE_SIZE != 0
    }

    /// The SNP bit.
    pub const fn snoop(self) -> Snoop {
        if self.0 & SNOOP != 0 {
            Snoop::Forced
        } else {
            Snoop::AsRequested
        }
    }

    /// Bits 51:12: the next table, or the page a leaf maps.
    pub const fn address(self) -> PhysAddr {
        PhysAddr::new_truncate(self.0 & ADDRESS_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phys(raw: u64) -> PhysAddr {
        PhysAddr::new(raw).unwrap()
    }

    #[test]
    fn table_entry() {
        let entry = SlPte::table(phys(0x5000)).unwrap();
        assert_eq!(entry.raw(), 0x5003);
        assert_eq!(entry.address(), phys(0x5000));
        assert_eq!(SlPte::table(phys(0x5004)), Err(EntryError::Misaligned));
    }

    #[test]
    fn leaf_encodings() {
        let small = SlPte::leaf(phys(0x8000_0000), PageSize::Size4K, Access::ReadWrite).unwrap();
        assert_eq!(small.raw(), 0x8000_0003);
        let medium = SlPte::leaf(phys(0x4000_0000), PageSize::Size2M, Access::Read).unwrap();
        assert_eq!(medium.raw(), 0x4000_0081);
        let large = SlPte::leaf(phys(0x1_0000_0000), PageSize::Size1G, Access::Write).unwrap();
        assert_eq!(large.raw(), 0x1_0000_0082);
        assert!(large.is_superpage() && medium.is_superpage() && !small.is_superpage());
        assert_eq!(large.access(), Some(Access::Write));
        let highest = SlPte::leaf(phys(0xF_FFFF_FFFF_F000), PageSize::Size4K, Access::Read);
        assert_eq!(highest.map(SlPte::raw), Ok(0x000F_FFFF_FFFF_F001));
    }

    #[test]
    fn leaf_alignment() {
        let at = phys(0x20_1000);
        assert!(SlPte::leaf(at, PageSize::Size4K, Access::Read).is_ok());
        assert_eq!(
            SlPte::leaf(at, PageSize::Size2M, Access::Read),
            Err(EntryError::Misaligned)
        );
        let two_meg = phys(0x20_0000);
        assert_eq!(
            SlPte::leaf(two_meg, PageSize::Size1G, Access::Read),
            Err(EntryError::Misaligned)
        );
    }

    #[test]
    fn snoop_and_presence() {
        let leaf = SlPte::leaf(phys(0x3000), PageSize::Size4K, Access::Read).unwrap();
        let snooped = leaf.with_snoop(Snoop::Forced);
        assert_eq!(snooped.raw(), 0x3801);
        assert_eq!(snooped.snoop(), Snoop::Forced);
        assert_eq!(snooped.with_snoop(Snoop::AsRequested), leaf);
        assert!(!SlPte::NOT_PRESENT.is_present());
        assert_eq!(SlPte::NOT_PRESENT.access(), None);
        // PS alone does not make an entry present.
        assert!(!SlPte::from_raw(0x80).is_present());
    }

    #[test]
    fn access_predicates() {
        assert!(Access::Read.allows_read() && !Access::Read.allows_write());
        assert!(!Access::Write.allows_read() && Access::Write.allows_write());
        assert!(Access::ReadWrite.allows_read() && Access::ReadWrite.allows_write());
    }
}

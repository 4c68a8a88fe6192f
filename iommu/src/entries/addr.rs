//! Physical addresses, I/O virtual addresses (IOVAs) and the page sizes VT-d translates.

use super::EntryError;

/// Why a raw number is not a valid address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// The value has bits set above the architectural maximum width of this address kind.
    TooWide,
}

/// Defines an address newtype limited to `$bits` bits, with the checked and truncating
/// constructors, `as_u64` and `is_aligned` that every address kind here shares.
macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident, $bits:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            #[doc = concat!("Number of bits ", $what, " can have.")]
            pub const MAX_BITS: u32 = $bits;

            #[doc = concat!("Validates `raw`: it must be below `2^", stringify!($bits), "`.")]
            pub const fn new(raw: u64) -> Result<Self, AddressError> {
                if raw >> Self::MAX_BITS == 0 {
                    Ok(Self(raw))
                } else {
                    Err(AddressError::TooWide)
                }
            }

            #[doc = concat!("Keeps only the low ", stringify!($bits), " bits of `raw`.")]
            pub const fn new_truncate(raw: u64) -> Self {
                Self(raw & ((1 << Self::MAX_BITS) - 1))
            }

            /// The address as a number.
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// Whether the address is a multiple of `size`.
            pub const fn is_aligned(self, size: PageSize) -> bool {
                self.0 & (size.bytes() - 1) == 0
            }
        }
    };
}

address_type!(
    /// A host physical address. VT-d entries hold at most 52 physical address bits (VT-d spec
    /// 9.8, bits 51:12 of a second-level entry), so larger values are rejected.
    ///
    /// A narrower host address width (DMAR `HAW`) makes more bits reserved; keeping table
    /// frames and mapped memory below it is the job of the kernel's frame allocator.
    PhysAddr,
    52,
    "a physical address VT-d can express"
);

address_type!(
    /// An I/O virtual address: what a device puts on the bus. VT-d translates at most 57 bits
    /// (5-level tables); the address width of a particular table is checked by the table.
    Iova,
    57,
    "an input address of the widest VT-d table format"
);

impl PhysAddr {
    /// `self + offset`, if the result is still a valid physical address.
    pub const fn checked_add(self, offset: u64) -> Option<Self> {
        match self.0.checked_add(offset) {
            Some(sum) => match Self::new(sum) {
                Ok(addr) => Some(addr),
                Err(_) => None,
            },
            None => None,
        }
    }

    /// Checks that the address is 4 KiB aligned, as every table pointer must be.
    pub(crate) const fn require_4k(self) -> Result<Self, EntryError> {
        if self.is_aligned(PageSize::Size4K) {
            Ok(self)
        } else {
            Err(EntryError::Misaligned)
        }
    }
}

/// The page sizes a second-level table can map: 4 KiB leaves at level 1, and (if CAP.SLLPS
/// allows) 2 MiB superpages at level 2 and 1 GiB superpages at level 3 (VT-d spec 3.7, 9.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB, a level-1 leaf.
    Size4K,
    /// 2 MiB, a level-2 leaf with PS set.
    Size2M,
    /// 1 GiB, a level-3 leaf with PS set.
    Size1G,
}

impl PageSize {
    /// log2 of the size in bytes.
    pub const fn shift(self) -> u32 {
        match self {
            Self::Size4K => 12,
            Self::Size2M => 21,
            Self::Size1G => 30,
        }
    }

    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// The table level (1 = lowest) whose entry maps a page of this size.
    pub const fn level(self) -> u8 {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 2,
            Self::Size1G => 3,
        }
    }

    /// The page size a leaf at `level` maps, if any level-`level` leaf exists.
    pub const fn from_level(level: u8) -> Option<Self> {
        match level {
            1 => Some(Self::Size4K),
            2 => Some(Self::Size2M),
            3 => Some(Self::Size1G),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phys_addr_limits() {
        assert_eq!(
            PhysAddr::new((1 << 52) - 1).map(PhysAddr::as_u64),
            Ok((1 << 52) - 1)
        );
        assert_eq!(PhysAddr::new(1 << 52), Err(AddressError::TooWide));
        assert_eq!(PhysAddr::new_truncate(u64::MAX).as_u64(), (1 << 52) - 1);
        assert_eq!(
            PhysAddr::new((1 << 52) - 1)
                .ok()
                .and_then(|a| a.checked_add(1)),
            None
        );
    }

    #[test]
    fn iova_limits_and_alignment() {
        assert!(Iova::new((1 << 57) - 1).is_ok());
        assert_eq!(Iova::new(1 << 57), Err(AddressError::TooWide));
        let two_meg = Iova::new(0x20_0000).unwrap();
        assert!(two_meg.is_aligned(PageSize::Size2M));
        assert!(!two_meg.is_aligned(PageSize::Size1G));
    }

    #[test]
    fn page_sizes() {
        assert_eq!(PageSize::Size4K.bytes(), 0x1000);
        assert_eq!(PageSize::Size2M.bytes(), 0x20_0000);
        assert_eq!(PageSize::Size1G.bytes(), 0x4000_0000);
        for size in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
            assert_eq!(PageSize::from_level(size.level()), Some(size));
        }
        assert_eq!(PageSize::from_level(4), None);
    }
}

//! What an invalidation covers: the scopes and granularities shared by the queued descriptors
//! (VT-d spec 6.5.2) and the register-based commands (VT-d spec 6.5.1, 10.4.7-10.4.8).

use bitflags::bitflags;

use super::{DomainId, EntryError, Iova};
use crate::bdf::Bdf;

/// A PCI requester ID (bus << 8 | device << 3 | function), the SID field of invalidations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(u16);

impl SourceId {
    /// Builds the ID of `bus:device.function`; `device < 32` and `function < 8`.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < 32 && function < 8 {
            Some(Self(
                (bus as u16) << 8 | (device as u16) << 3 | function as u16,
            ))
        } else {
            None
        }
    }

    /// Any 16-bit value is a requester ID.
    pub const fn from_raw(raw: u16) -> Self {
        Self(raw)
    }

    /// The ID as a number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl From<Bdf> for SourceId {
    /// The requester ID of `bdf`. The segment is not part of a SID: each remapping unit serves
    /// one segment, so picking the unit is where the segment counts.
    fn from(bdf: Bdf) -> Self {
        Self(bdf.requester_id())
    }
}

/// The FM field of a device-selective context-cache invalidation: which low bits of the
/// function number to ignore, so one invalidation covers a multi-function device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionMask {
    /// 0: the exact SID.
    Exact,
    /// 1: function bit 2 ignored.
    IgnoreBit2,
    /// 2: function bits 2:1 ignored.
    IgnoreBits2To1,
    /// 3: function bits 2:0 ignored (all functions of the device).
    IgnoreBits2To0,
}

impl FunctionMask {
    pub(crate) const fn bits(self) -> u64 {
        match self {
            Self::Exact => 0,
            Self::IgnoreBit2 => 1,
            Self::IgnoreBits2To1 => 2,
            Self::IgnoreBits2To0 => 3,
        }
    }
}

/// Granularity of a context-cache invalidation: descriptor G (bits 5:4), CCMD.CIRG (requested)
/// and CCMD.CAIG (actually performed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextGranularity {
    /// 1: everything.
    Global,
    /// 2: one domain.
    Domain,
    /// 3: one device (SID with FM).
    Device,
}

impl ContextGranularity {
    /// The 2-bit field value.
    pub(crate) const fn bits(self) -> u64 {
        match self {
            Self::Global => 1,
            Self::Domain => 2,
            Self::Device => 3,
        }
    }

    /// Decodes a 2-bit granularity field; 0 means "none" (not performed).
    pub const fn from_field(value: u64) -> Option<Self> {
        match value & 3 {
            1 => Some(Self::Global),
            2 => Some(Self::Domain),
            3 => Some(Self::Device),
            _ => None,
        }
    }
}

/// What a context-cache invalidation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextCacheScope {
    /// All context entries of the unit.
    Global,
    /// Entries tagged with this domain.
    Domain(DomainId),
    /// The entry of one device (and its siblings under `function_mask`) in `domain`.
    Device {
        /// DID the entry was tagged with.
        domain: DomainId,
        /// Requester ID of the device.
        source: SourceId,
        /// Function-number bits to ignore.
        function_mask: FunctionMask,
    },
    /// Device-selective with DID 0: the not-present entry a unit with CAP.CM = 1 may have cached
    /// for `source` (VT-d spec 6.1: such entries are tagged with domain ID 0, which is why 0 is
    /// never a [`DomainId`]). Needed after the device's context entry became present.
    NotPresentDevice {
        /// Requester ID of the device.
        source: SourceId,
        /// Function-number bits to ignore.
        function_mask: FunctionMask,
    },
}

impl ContextCacheScope {
    /// The granularity this scope requests.
    pub const fn granularity(self) -> ContextGranularity {
        match self {
            Self::Global => ContextGranularity::Global,
            Self::Domain(_) => ContextGranularity::Domain,
            Self::Device { .. } | Self::NotPresentDevice { .. } => ContextGranularity::Device,
        }
    }
}

/// Granularity of an IOTLB invalidation: descriptor G (bits 5:4), IOTLB_REG.IIRG (requested)
/// and IOTLB_REG.IAIG (actually performed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotlbGranularity {
    /// 1: everything.
    Global,
    /// 2: one domain.
    Domain,
    /// 3: an address-masked range of one domain (needs CAP.PSI).
    Page,
}

impl IotlbGranularity {
    /// The 2-bit field value.
    pub(crate) const fn bits(self) -> u64 {
        match self {
            Self::Global => 1,
            Self::Domain => 2,
            Self::Page => 3,
        }
    }

    /// Decodes a 2-bit granularity field; 0 means "none" (not performed, e.g. AM above MAMV).
    pub const fn from_field(value: u64) -> Option<Self> {
        match value & 3 {
            1 => Some(Self::Global),
            2 => Some(Self::Domain),
            3 => Some(Self::Page),
            _ => None,
        }
    }
}

/// The IH bit of a page-selective invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationHint {
    /// IH = 0: leaf and non-leaf (paging-structure) cache entries for the range are dropped.
    /// Required whenever a non-leaf entry changed, for example when a table was freed.
    AllEntries,
    /// IH = 1: only leaf entries changed; cached non-leaf entries may be kept.
    LeafEntriesOnly,
}

impl InvalidationHint {
    pub(crate) const fn bits(self) -> u64 {
        match self {
            Self::AllEntries => 0,
            Self::LeafEntriesOnly => 1 << 6,
        }
    }
}

/// A page-selective range: `2^address_mask_order` 4 KiB pages starting at an address aligned to
/// the range size (VT-d spec 6.5.2.3 ADDR/AM; the AM value must not exceed CAP.MAMV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSelective {
    addr: Iova,
    address_mask_order: u8,
}

impl PageSelective {
    /// Largest order a 57-bit address space needs.
    pub const MAX_ORDER: u8 = (Iova::MAX_BITS - 12) as u8;

    /// Validates `addr`'s alignment to `2^(12 + address_mask_order)` bytes.
    pub const fn new(addr: Iova, address_mask_order: u8) -> Result<Self, EntryError> {
        if address_mask_order > Self::MAX_ORDER {
            return Err(EntryError::ValueTooLarge);
        }
        let mask = (1u64 << (12 + address_mask_order as u32)) - 1;
        if addr.as_u64() & mask != 0 {
            return Err(EntryError::Misaligned);
        }
        Ok(Self {
            addr,
            address_mask_order,
        })
    }

    /// The smallest range that contains the pages of both `first` and `last`.
    pub const fn covering(first: Iova, last: Iova) -> Self {
        let first_page = first.as_u64() >> 12;
        let last_page = last.as_u64() >> 12;
        let differing = first_page ^ last_page;
        let order = u64::BITS - differing.leading_zeros();
        let base = if first_page < last_page {
            first_page
        } else {
            last_page
        };
        let aligned = (base >> order) << order << 12;
        // `aligned` is at most the smaller input, so it is below 2^57 and nothing is truncated.
        Self {
            addr: Iova::new_truncate(aligned),
            address_mask_order: order as u8,
        }
    }

    /// First address of the range.
    pub const fn addr(self) -> Iova {
        self.addr
    }

    /// AM: log2 of the number of 4 KiB pages.
    pub const fn address_mask_order(self) -> u8 {
        self.address_mask_order
    }

    /// Size of the range in bytes.
    pub const fn bytes(self) -> u64 {
        1 << (12 + self.address_mask_order as u32)
    }

    /// Whether `iova` lies in the range.
    pub const fn contains(self, iova: Iova) -> bool {
        iova.as_u64() >= self.addr.as_u64() && iova.as_u64() - self.addr.as_u64() < self.bytes()
    }
}

bitflags! {
    /// DR and DW: drain pending DMA reads/writes before the IOTLB invalidation completes
    /// (honoured only with CAP.DRD/CAP.DWD; QEMU ignores them).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Drain: u8 {
        /// DR: drain reads.
        const READS = 1 << 0;
        /// DW: drain writes.
        const WRITES = 1 << 1;
    }
}

/// What an IOTLB invalidation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotlbScope {
    /// Every domain.
    Global,
    /// Everything of one domain.
    Domain(DomainId),
    /// Domain-selective with DID 0: the not-present or faulting translations a unit with
    /// CAP.CM = 1 may have cached while a context entry was not present (VT-d spec 6.1; tagged
    /// with domain ID 0). Needed after a context entry became present.
    NotPresent,
    /// A page-selective range of one domain.
    Pages {
        /// DID whose translations to drop.
        domain: DomainId,
        /// The range.
        range: PageSelective,
        /// Whether non-leaf entries changed too.
        hint: InvalidationHint,
    },
}

impl IotlbScope {
    /// The granularity this scope requests.
    pub const fn granularity(self) -> IotlbGranularity {
        match self {
            Self::Global => IotlbGranularity::Global,
            Self::Domain(_) | Self::NotPresent => IotlbGranularity::Domain,
            Self::Pages { .. } => IotlbGranularity::Page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iova(raw: u64) -> Iova {
        Iova::new(raw).unwrap()
    }

    #[test]
    fn source_id() {
        assert_eq!(SourceId::new(0, 2, 0).map(SourceId::get), Some(0x10));
        assert_eq!(SourceId::new(0xFF, 31, 7).map(SourceId::get), Some(0xFFFF));
        assert_eq!(SourceId::new(0, 32, 0), None);
        assert_eq!(SourceId::new(0, 0, 8), None);
        let bdf = Bdf::new(1, 0x12, 3, 4).unwrap();
        assert_eq!(SourceId::from(bdf), SourceId::new(0x12, 3, 4).unwrap());
    }

    #[test]
    fn page_selective_validation() {
        assert!(PageSelective::new(iova(0x20_0000), 9).is_ok());
        assert_eq!(
            PageSelective::new(iova(0x20_1000), 9),
            Err(EntryError::Misaligned)
        );
        assert_eq!(
            PageSelective::new(iova(0), 46),
            Err(EntryError::ValueTooLarge)
        );
    }

    #[test]
    fn covering_is_minimal() {
        let one = PageSelective::covering(iova(0x5123), iova(0x5FFF));
        assert_eq!((one.addr(), one.address_mask_order()), (iova(0x5000), 0));
        let two = PageSelective::covering(iova(0x0), iova(0x1000));
        assert_eq!((two.addr(), two.address_mask_order()), (iova(0), 1));
        // Pages 1 and 2 straddle an order-1 boundary: order 2 from page 0.
        let straddle = PageSelective::covering(iova(0x2000), iova(0x1000));
        assert_eq!(
            (straddle.addr(), straddle.address_mask_order()),
            (iova(0), 2)
        );
        let huge = PageSelective::covering(iova(0x4000_0000), iova(0x7FFF_FFFF));
        assert_eq!(
            (huge.addr(), huge.address_mask_order()),
            (iova(0x4000_0000), 18)
        );
        assert!(huge.contains(iova(0x7FFF_FFFF)) && !huge.contains(iova(0x8000_0000)));
        assert_eq!(huge.bytes(), 0x4000_0000);
    }

    #[test]
    fn granularity_fields() {
        assert_eq!(ContextGranularity::from_field(0), None);
        assert_eq!(
            ContextGranularity::from_field(1),
            Some(ContextGranularity::Global)
        );
        assert_eq!(
            ContextGranularity::from_field(3),
            Some(ContextGranularity::Device)
        );
        assert_eq!(
            IotlbGranularity::from_field(2),
            Some(IotlbGranularity::Domain)
        );
        assert_eq!(IotlbGranularity::from_field(0), None);
    }
}

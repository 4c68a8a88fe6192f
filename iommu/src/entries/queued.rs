//! Queued-invalidation descriptors (VT-d spec 6.5.2): 128-bit records the driver writes to the
//! invalidation queue. Only the legacy-mode types Moat uses are built here.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{ContextCacheScope, Drain, EntryError, InterruptIndex, IotlbScope, PhysAddr, field};

const TYPE_CONTEXT_CACHE: u64 = 1;
const TYPE_IOTLB: u64 = 2;
const TYPE_INTERRUPT_ENTRY_CACHE: u64 = 4;
const TYPE_WAIT: u64 = 5;
const GRANULARITY_SHIFT: u32 = 4;
const DOMAIN_SHIFT: u32 = 16;
const SOURCE_SHIFT: u32 = 32;
const FUNCTION_MASK_SHIFT: u32 = 48;
const DRAIN_WRITES: u64 = 1 << 6;
const DRAIN_READS: u64 = 1 << 7;
const WAIT_INTERRUPT: u64 = 1 << 4;
const WAIT_STATUS_WRITE: u64 = 1 << 5;
const WAIT_FENCE: u64 = 1 << 6;
const WAIT_DATA_SHIFT: u32 = 32;
const INTERRUPT_INDEX_SELECTIVE: u64 = 1 << 4;
const INTERRUPT_INDEX_SHIFT: u32 = 32;

/// What an interrupt-entry-cache invalidation covers. There is no register-based form: the
/// interrupt entry cache can only be invalidated through the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptEntryScope {
    /// G = 0: every cached interrupt remapping entry.
    Global,
    /// G = 1 with IM = 0: the one entry at this index.
    Entry(InterruptIndex),
}

/// A 4-byte aligned physical address the hardware writes a wait descriptor's status data to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusAddress(PhysAddr);

impl StatusAddress {
    /// Validates the 4-byte alignment (the descriptor holds bits 63:2 only).
    pub const fn new(addr: PhysAddr) -> Result<Self, EntryError> {
        if addr.as_u64() & 3 == 0 {
            Ok(Self(addr))
        } else {
            Err(EntryError::Misaligned)
        }
    }

    /// The address.
    pub const fn get(self) -> PhysAddr {
        self.0
    }
}

/// How a wait descriptor reports completion. Exactly one of SW and IF: a descriptor with
/// neither is invalid, and QEMU 7.2 aborts (`assert`) on one with both, so the type offers no
/// way to request both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitCompletion {
    /// SW = 1: the hardware writes `data` to `address` when everything before it completed.
    StatusWrite {
        /// Where the 32-bit status goes.
        address: StatusAddress,
        /// The value written (lo bits 63:32).
        data: u32,
    },
    /// IF = 1: the hardware sets ICS.IWC and raises the invalidation-completion event.
    Interrupt,
}

/// The FN bit of a wait descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// FN = 0: later descriptors may be processed before this wait completes.
    Off,
    /// FN = 1: later descriptors wait until this one completed.
    On,
}

/// One 128-bit invalidation-queue descriptor; the type is in bits 3:0 of `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InvalidationDescriptor {
    lo: u64,
    hi: u64,
}

impl InvalidationDescriptor {
    /// Context-cache invalidate descriptor (VT-d spec 6.5.2.1), type 1: G in bits 5:4, DID in
    /// 31:16, SID in 47:32, FM in 49:48; `hi` is reserved.
    pub const fn context_cache(scope: ContextCacheScope) -> Self {
        let granularity = scope.granularity().bits() << GRANULARITY_SHIFT;
        let fields = match scope {
            ContextCacheScope::Global => 0,
            ContextCacheScope::Domain(domain) => (domain.get() as u64) << DOMAIN_SHIFT,
            ContextCacheScope::Device {
                domain,
                source,
                function_mask,
            } => {
                (domain.get() as u64) << DOMAIN_SHIFT
                    | (source.get() as u64) << SOURCE_SHIFT
                    | function_mask.bits() << FUNCTION_MASK_SHIFT
            }
            // DID 0: the tag of entries cached while not present (caching mode).
            ContextCacheScope::NotPresentDevice {
                source,
                function_mask,
            } => {
                (source.get() as u64) << SOURCE_SHIFT | function_mask.bits() << FUNCTION_MASK_SHIFT
            }
        };
        Self {
            lo: fields | granularity | TYPE_CONTEXT_CACHE,
            hi: 0,
        }
    }

    /// IOTLB invalidate descriptor (VT-d spec 6.5.2.3), type 2: G in bits 5:4, DW bit 6, DR
    /// bit 7, DID in 31:16; `hi` holds ADDR (63:12), IH (6) and AM (5:0) for page scope.
    pub const fn iotlb(scope: IotlbScope, drain: Drain) -> Self {
        let granularity = scope.granularity().bits() << GRANULARITY_SHIFT;
        let mut drain_bits = 0;
        if drain.contains(Drain::READS) {
            drain_bits |= DRAIN_READS;
        }
        if drain.contains(Drain::WRITES) {
            drain_bits |= DRAIN_WRITES;
        }
        let (domain, hi) = match scope {
            // Global ignores DID; NotPresent names DID 0, the caching-mode tag.
            IotlbScope::Global | IotlbScope::NotPresent => (0, 0),
            IotlbScope::Domain(domain) => (domain.get() as u64, 0),
            IotlbScope::Pages {
                domain,
                range,
                hint,
            } => (
                domain.get() as u64,
                range.addr().as_u64() | hint.bits() | range.address_mask_order() as u64,
            ),
        };
        Self {
            lo: domain << DOMAIN_SHIFT | drain_bits | granularity | TYPE_IOTLB,
            hi,
        }
    }

    /// Interrupt entry cache invalidate descriptor (VT-d spec 6.5.2.7), type 4: G bit 4
    /// (index-selective), IM in 31:27 (0 here: one entry), IIDX in 47:32; `hi` is reserved.
    pub const fn interrupt_entry_cache(scope: InterruptEntryScope) -> Self {
        let lo = match scope {
            InterruptEntryScope::Global => TYPE_INTERRUPT_ENTRY_CACHE,
            InterruptEntryScope::Entry(index) => {
                (index.get() as u64) << INTERRUPT_INDEX_SHIFT
                    | INTERRUPT_INDEX_SELECTIVE
                    | TYPE_INTERRUPT_ENTRY_CACHE
            }
        };
        Self { lo, hi: 0 }
    }

    /// Invalidation wait descriptor (VT-d spec 6.5.2.8), type 5: IF bit 4, SW bit 5, FN bit 6,
    /// status data in 63:32; `hi` holds the status address (63:2).
    pub const fn wait(completion: WaitCompletion, fence: Fence) -> Self {
        let fence = match fence {
            Fence::Off => 0,
            Fence::On => WAIT_FENCE,
        };
        match completion {
            WaitCompletion::StatusWrite { address, data } => Self {
                lo: (data as u64) << WAIT_DATA_SHIFT | fence | WAIT_STATUS_WRITE | TYPE_WAIT,
                hi: address.get().as_u64(),
            },
            WaitCompletion::Interrupt => Self {
                lo: fence | WAIT_INTERRUPT | TYPE_WAIT,
                hi: 0,
            },
        }
    }

    /// The low 64 bits (byte offset 0 in the queue slot).
    pub const fn lo(self) -> u64 {
        self.lo
    }

    /// The high 64 bits (byte offset 8 in the queue slot).
    pub const fn hi(self) -> u64 {
        self.hi
    }

    /// The descriptor type, bits 3:0.
    pub const fn descriptor_type(self) -> u8 {
        field(self.lo, 0, 4) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::{
        DomainId, DomainLimit, FunctionMask, InterruptIndex, InvalidationHint, Iova, PageSelective,
        SourceId,
    };

    fn domain(raw: u16) -> DomainId {
        DomainId::new(raw, DomainLimit::from_nd(6).unwrap()).unwrap()
    }

    fn words(descriptor: InvalidationDescriptor) -> (u64, u64) {
        (descriptor.lo(), descriptor.hi())
    }

    #[test]
    fn context_cache_descriptors() {
        let global = InvalidationDescriptor::context_cache(ContextCacheScope::Global);
        assert_eq!(words(global), (0x11, 0));
        assert_eq!(global.descriptor_type(), 1);
        let by_domain = InvalidationDescriptor::context_cache(ContextCacheScope::Domain(domain(5)));
        assert_eq!(words(by_domain), (0x0005_0021, 0));
        let device = |function_mask| {
            InvalidationDescriptor::context_cache(ContextCacheScope::Device {
                domain: domain(5),
                source: SourceId::new(0, 2, 0).unwrap(),
                function_mask,
            })
        };
        assert_eq!(
            words(device(FunctionMask::Exact)),
            (0x0000_0010_0005_0031, 0)
        );
        assert_eq!(
            words(device(FunctionMask::IgnoreBit2)),
            (0x0001_0010_0005_0031, 0)
        );
        assert_eq!(
            words(device(FunctionMask::IgnoreBits2To0)),
            (0x0003_0010_0005_0031, 0)
        );
        let not_present =
            InvalidationDescriptor::context_cache(ContextCacheScope::NotPresentDevice {
                source: SourceId::new(0, 2, 0).unwrap(),
                function_mask: FunctionMask::Exact,
            });
        assert_eq!(words(not_present), (0x0000_0010_0000_0031, 0));
        // QEMU's reserved mask for type 1 must stay clear.
        assert_eq!(
            device(FunctionMask::IgnoreBits2To0).lo() & 0xFFFC_0000_0000_FFC0,
            0
        );
    }

    #[test]
    fn iotlb_descriptors() {
        let global = InvalidationDescriptor::iotlb(IotlbScope::Global, Drain::empty());
        assert_eq!(words(global), (0x12, 0));
        let drained = InvalidationDescriptor::iotlb(IotlbScope::Global, Drain::all());
        assert_eq!(words(drained), (0xD2, 0));
        let reads = InvalidationDescriptor::iotlb(IotlbScope::Global, Drain::READS);
        assert_eq!(reads.lo(), 0x92);
        let by_domain =
            InvalidationDescriptor::iotlb(IotlbScope::Domain(domain(1)), Drain::empty());
        assert_eq!(words(by_domain), (0x0001_0022, 0));
        let not_present = InvalidationDescriptor::iotlb(IotlbScope::NotPresent, Drain::empty());
        assert_eq!(words(not_present), (0x0000_0022, 0));
        let range = PageSelective::new(Iova::new(0x20_0000).unwrap(), 9).unwrap();
        let pages = |hint| IotlbScope::Pages {
            domain: domain(1),
            range,
            hint,
        };
        let leaf_only =
            InvalidationDescriptor::iotlb(pages(InvalidationHint::LeafEntriesOnly), Drain::empty());
        assert_eq!(words(leaf_only), (0x0001_0032, 0x0020_0049));
        let all =
            InvalidationDescriptor::iotlb(pages(InvalidationHint::AllEntries), Drain::empty());
        assert_eq!(words(all), (0x0001_0032, 0x0020_0009));
        assert_eq!(all.descriptor_type(), 2);
        // QEMU's reserved masks for type 2.
        assert_eq!(drained.lo() & 0xFFFF_FFFF_0000_FF00, 0);
        assert_eq!(leaf_only.hi() & 0xF80, 0);
    }

    #[test]
    fn wait_descriptors() {
        let status = StatusAddress::new(PhysAddr::new(0x1000).unwrap()).unwrap();
        let write = WaitCompletion::StatusWrite {
            address: status,
            data: 0xCAFE,
        };
        let plain = InvalidationDescriptor::wait(write, Fence::Off);
        assert_eq!(words(plain), (0x0000_CAFE_0000_0025, 0x1000));
        assert_eq!(plain.descriptor_type(), 5);
        assert_eq!(
            InvalidationDescriptor::wait(write, Fence::On).lo(),
            0x0000_CAFE_0000_0065
        );
        let interrupt = InvalidationDescriptor::wait(WaitCompletion::Interrupt, Fence::Off);
        assert_eq!(words(interrupt), (0x15, 0));
        // Never both IF (bit 4) and SW (bit 5): QEMU aborts on that.
        for descriptor in [plain, interrupt] {
            assert_ne!(descriptor.lo() & 0x30, 0x30);
            assert_ne!(descriptor.lo() & 0x30, 0);
        }
    }

    #[test]
    fn interrupt_entry_cache_descriptors() {
        let global = InvalidationDescriptor::interrupt_entry_cache(InterruptEntryScope::Global);
        assert_eq!(words(global), (0x4, 0));
        assert_eq!(global.descriptor_type(), 4);
        let one = InvalidationDescriptor::interrupt_entry_cache(InterruptEntryScope::Entry(
            InterruptIndex::new(0xabcd),
        ));
        assert_eq!(words(one), (0x0000_abcd_0000_0014, 0));
        // QEMU's `VTD_INV_DESC_IEC_RSVD` must stay clear.
        for descriptor in [global, one] {
            assert_eq!(descriptor.lo() & 0xffff_0000_07ff_f1e0, 0);
        }
    }

    #[test]
    fn status_address_alignment() {
        let odd = PhysAddr::new(0x1002).unwrap();
        assert_eq!(StatusAddress::new(odd), Err(EntryError::Misaligned));
        let word = PhysAddr::new(0x1004).unwrap();
        assert_eq!(StatusAddress::new(word).map(StatusAddress::get), Ok(word));
    }
}

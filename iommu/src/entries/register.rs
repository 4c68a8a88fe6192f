//! Register-based invalidation commands (VT-d spec 6.5.1): the values written to CCMD_REG,
//! IOTLB_REG and IVA_REG, and the decoding of what the hardware reads back on completion.
//! These registers are ignored once queued invalidation is enabled.

use super::{ContextCacheScope, ContextGranularity, Drain, IotlbGranularity, IotlbScope, field};

const CONTEXT_INVALIDATE: u64 = 1 << 63;
const CONTEXT_REQUEST_SHIFT: u32 = 61;
const CONTEXT_ACTUAL_SHIFT: u32 = 59;
const CONTEXT_FUNCTION_MASK_SHIFT: u32 = 32;
const CONTEXT_SOURCE_SHIFT: u32 = 16;

const IOTLB_INVALIDATE: u64 = 1 << 63;
const IOTLB_REQUEST_SHIFT: u32 = 60;
const IOTLB_ACTUAL_SHIFT: u32 = 57;
const IOTLB_DRAIN_READS: u64 = 1 << 49;
const IOTLB_DRAIN_WRITES: u64 = 1 << 48;
const IOTLB_DOMAIN_SHIFT: u32 = 32;

/// A value to write (as one 64-bit access) to CCMD_REG (VT-d spec 10.4.7): ICC (bit 63), CIRG
/// (62:61), FM (33:32), SID (31:16), DID (15:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextCommand(u64);

impl ContextCommand {
    /// Requests a context-cache invalidation of `scope`.
    pub const fn invalidate(scope: ContextCacheScope) -> Self {
        let fields = match scope {
            ContextCacheScope::Global => 0,
            ContextCacheScope::Domain(domain) => domain.get() as u64,
            ContextCacheScope::Device {
                domain,
                source,
                function_mask,
            } => {
                function_mask.bits() << CONTEXT_FUNCTION_MASK_SHIFT
                    | (source.get() as u64) << CONTEXT_SOURCE_SHIFT
                    | domain.get() as u64
            }
            // DID 0: the tag of entries cached while not present (caching mode).
            ContextCacheScope::NotPresentDevice {
                source,
                function_mask,
            } => {
                function_mask.bits() << CONTEXT_FUNCTION_MASK_SHIFT
                    | (source.get() as u64) << CONTEXT_SOURCE_SHIFT
            }
        };
        Self(CONTEXT_INVALIDATE | scope.granularity().bits() << CONTEXT_REQUEST_SHIFT | fields)
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

/// CCMD_REG as read back: ICC stays set while the invalidation runs; CAIG (60:59) then says
/// what the hardware actually did (QEMU performs domain-selective requests globally).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextCommandStatus(u64);

impl ContextCommandStatus {
    /// Wraps a value read from CCMD_REG.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// Whether ICC is still set (the invalidation has not completed).
    pub const fn is_pending(self) -> bool {
        self.0 & CONTEXT_INVALIDATE != 0
    }

    /// CIRG: the granularity that was requested.
    pub const fn requested_granularity(self) -> Option<ContextGranularity> {
        ContextGranularity::from_field(field(self.0, CONTEXT_REQUEST_SHIFT, 2))
    }

    /// CAIG: the granularity actually performed, `None` if none was.
    pub const fn actual_granularity(self) -> Option<ContextGranularity> {
        ContextGranularity::from_field(field(self.0, CONTEXT_ACTUAL_SHIFT, 2))
    }
}

/// A value to write (as one 64-bit access, after IVA_REG for page scope) to IOTLB_REG (VT-d spec
/// 10.4.8.1): IVT (bit 63), IIRG (61:60), DR (49), DW (48), DID (47:32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IotlbCommand(u64);

impl IotlbCommand {
    /// Requests an IOTLB invalidation of `scope`. For [`IotlbScope::Pages`], first write
    /// [`InvalidateAddress::for_scope`] to IVA_REG.
    pub const fn invalidate(scope: IotlbScope, drain: Drain) -> Self {
        let domain = match scope {
            // Global ignores DID; NotPresent names DID 0, the caching-mode tag.
            IotlbScope::Global | IotlbScope::NotPresent => 0,
            IotlbScope::Domain(domain) | IotlbScope::Pages { domain, .. } => domain.get() as u64,
        };
        let mut value = IOTLB_INVALIDATE
            | scope.granularity().bits() << IOTLB_REQUEST_SHIFT
            | domain << IOTLB_DOMAIN_SHIFT;
        if drain.contains(Drain::READS) {
            value |= IOTLB_DRAIN_READS;
        }
        if drain.contains(Drain::WRITES) {
            value |= IOTLB_DRAIN_WRITES;
        }
        Self(value)
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

/// IOTLB_REG as read back: IVT stays set while the invalidation runs; IAIG (58:57) then says
/// what was performed (`None`: nothing, e.g. an AM above CAP.MAMV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IotlbCommandStatus(u64);

impl IotlbCommandStatus {
    /// Wraps a value read from IOTLB_REG.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// Whether IVT is still set (the invalidation has not completed).
    pub const fn is_pending(self) -> bool {
        self.0 & IOTLB_INVALIDATE != 0
    }

    /// IIRG: the granularity that was requested.
    pub const fn requested_granularity(self) -> Option<IotlbGranularity> {
        IotlbGranularity::from_field(field(self.0, IOTLB_REQUEST_SHIFT, 2))
    }

    /// IAIG: the granularity actually performed, `None` if none was.
    pub const fn actual_granularity(self) -> Option<IotlbGranularity> {
        IotlbGranularity::from_field(field(self.0, IOTLB_ACTUAL_SHIFT, 2))
    }

    /// The DID field.
    pub const fn domain_id(self) -> u16 {
        field(self.0, IOTLB_DOMAIN_SHIFT, 16) as u16
    }
}

/// A value for IVA_REG (VT-d spec 10.4.8.2): ADDR (63:12), IH (6), AM (5:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidateAddress(u64);

impl InvalidateAddress {
    /// The IVA_REG value a page-selective `scope` needs; `None` for the other scopes.
    pub const fn for_scope(scope: IotlbScope) -> Option<Self> {
        match scope {
            IotlbScope::Pages { range, hint, .. } => Some(Self(
                range.addr().as_u64() | hint.bits() | range.address_mask_order() as u64,
            )),
            IotlbScope::Global | IotlbScope::Domain(_) | IotlbScope::NotPresent => None,
        }
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::{
        DomainId, DomainLimit, FunctionMask, InvalidationHint, Iova, PageSelective, SourceId,
    };

    fn domain(raw: u16) -> DomainId {
        DomainId::new(raw, DomainLimit::from_nd(6).unwrap()).unwrap()
    }

    #[test]
    fn context_commands() {
        assert_eq!(
            ContextCommand::invalidate(ContextCacheScope::Global).raw(),
            0xA000_0000_0000_0000
        );
        let by_domain = ContextCommand::invalidate(ContextCacheScope::Domain(domain(3)));
        assert_eq!(by_domain.raw(), 0xC000_0000_0000_0003);
        let device = ContextCommand::invalidate(ContextCacheScope::Device {
            domain: domain(3),
            source: SourceId::new(0, 2, 0).unwrap(),
            function_mask: FunctionMask::IgnoreBits2To0,
        });
        assert_eq!(device.raw(), 0xE000_0003_0010_0003);
        let not_present = ContextCommand::invalidate(ContextCacheScope::NotPresentDevice {
            source: SourceId::new(0, 2, 0).unwrap(),
            function_mask: FunctionMask::Exact,
        });
        assert_eq!(not_present.raw(), 0xE000_0000_0010_0000);
    }

    #[test]
    fn context_status_after_global_invalidation() {
        // QEMU 7.2 reads back this value after a global invalidation: ICC clear, CIRG = CAIG = 1.
        let done = ContextCommandStatus::from_raw(0x2800_0000_0000_0000);
        assert!(!done.is_pending());
        assert_eq!(
            done.requested_granularity(),
            Some(ContextGranularity::Global)
        );
        assert_eq!(done.actual_granularity(), Some(ContextGranularity::Global));
        // With queued invalidation enabled QEMU ignores the write and ICC stays set.
        let stuck = ContextCommandStatus::from_raw(0xA800_0000_0000_0000);
        assert!(stuck.is_pending());
        let domain_done = ContextCommandStatus::from_raw(0x4800_0000_0000_0003);
        assert_eq!(
            domain_done.requested_granularity(),
            Some(ContextGranularity::Domain)
        );
        assert_eq!(
            domain_done.actual_granularity(),
            Some(ContextGranularity::Global)
        );
        assert_eq!(ContextCommandStatus::from_raw(0).actual_granularity(), None);
    }

    #[test]
    fn iotlb_commands() {
        let global = IotlbCommand::invalidate(IotlbScope::Global, Drain::empty());
        assert_eq!(global.raw(), 0x9000_0000_0000_0000);
        let drained = IotlbCommand::invalidate(IotlbScope::Global, Drain::all());
        assert_eq!(drained.raw(), 0x9003_0000_0000_0000);
        let writes = IotlbCommand::invalidate(IotlbScope::Global, Drain::WRITES);
        assert_eq!(writes.raw(), 0x9001_0000_0000_0000);
        let by_domain = IotlbCommand::invalidate(IotlbScope::Domain(domain(1)), Drain::empty());
        assert_eq!(by_domain.raw(), 0xA000_0001_0000_0000);
        let not_present = IotlbCommand::invalidate(IotlbScope::NotPresent, Drain::empty());
        assert_eq!(not_present.raw(), 0xA000_0000_0000_0000);
        let range = PageSelective::new(Iova::new(0x20_0000).unwrap(), 9).unwrap();
        let pages = IotlbScope::Pages {
            domain: domain(1),
            range,
            hint: InvalidationHint::LeafEntriesOnly,
        };
        assert_eq!(
            IotlbCommand::invalidate(pages, Drain::empty()).raw(),
            0xB000_0001_0000_0000
        );
        assert_eq!(
            InvalidateAddress::for_scope(pages).map(InvalidateAddress::raw),
            Some(0x0020_0049)
        );
        assert_eq!(InvalidateAddress::for_scope(IotlbScope::Global), None);
    }

    #[test]
    fn iotlb_status_read_back() {
        // QEMU 7.2 after a global invalidation: IVT clear, IIRG = IAIG = 1.
        let global = IotlbCommandStatus::from_raw(0x1200_0000_0000_0000);
        assert!(!global.is_pending());
        assert_eq!(
            global.requested_granularity(),
            Some(IotlbGranularity::Global)
        );
        assert_eq!(global.actual_granularity(), Some(IotlbGranularity::Global));
        // QEMU 7.2 after a page-selective invalidation for DID 1.
        let pages = IotlbCommandStatus::from_raw(0x3600_0001_0000_0000);
        assert_eq!(pages.requested_granularity(), Some(IotlbGranularity::Page));
        assert_eq!(pages.actual_granularity(), Some(IotlbGranularity::Page));
        assert_eq!(pages.domain_id(), 1);
        // AM above MAMV: IAIG = 0, nothing was invalidated.
        let refused = IotlbCommandStatus::from_raw(0x3000_0001_0000_0000);
        assert_eq!(refused.actual_granularity(), None);
        assert!(IotlbCommandStatus::from_raw(0x9000_0000_0000_0000).is_pending());
    }
}

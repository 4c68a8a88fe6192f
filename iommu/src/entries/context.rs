//! Legacy-mode context entry (VT-d spec 9.3): per device (bus, device, function), it selects the
//! domain, the translation type and the second-level page table.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{DomainId, EntryError, PhysAddr, field};

const PRESENT: u64 = 1 << 0;
const FAULT_PROCESSING_DISABLE: u64 = 1 << 1;
const TRANSLATION_TYPE_SHIFT: u32 = 2;
const TABLE_MASK: u64 = 0xFFFF_FFFF_FFFF_F000;
const AVAILABLE_SHIFT: u32 = 3;
const AVAILABLE_MAX: u8 = 0xF;
const DOMAIN_SHIFT: u32 = 8;

/// The TT field (bits 3:2 of `lo`, VT-d spec 9.3). The value 3 is reserved (QEMU: fault 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationType {
    /// 0: untranslated requests walk the second-level table; translated requests are blocked.
    MultiLevel,
    /// 1: as `MultiLevel`, and the device may use ATS (needs ECAP.DT).
    DeviceTlb,
    /// 2: untranslated requests pass through unchanged (needs ECAP.PT).
    PassThrough,
}

impl TranslationType {
    const fn bits(self) -> u64 {
        match self {
            Self::MultiLevel => 0,
            Self::DeviceTlb => 1,
            Self::PassThrough => 2,
        }
    }
}

/// What a context entry translates with: TT plus, for the translating types, the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextTranslation {
    /// TT = 0 with this second-level table root.
    MultiLevel {
        /// 4 KiB-aligned root of the second-level table (SLPTPTR).
        table: PhysAddr,
    },
    /// TT = 1 with this second-level table root.
    DeviceTlb {
        /// 4 KiB-aligned root of the second-level table (SLPTPTR).
        table: PhysAddr,
    },
    /// TT = 2; SLPTPTR is ignored and written as 0.
    PassThrough,
}

/// The AW field (bits 2:0 of `hi`, VT-d spec 9.3): the adjusted guest address width, which fixes
/// the number of table levels. It must be a width set in CAP.SAGAW (QEMU: fault 3 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextAddressWidth {
    /// AW = 1: 39-bit, 3-level table.
    Bits39,
    /// AW = 2: 48-bit, 4-level table.
    Bits48,
    /// AW = 3: 57-bit, 5-level table.
    Bits57,
}

impl ContextAddressWidth {
    const fn bits(self) -> u64 {
        match self {
            Self::Bits39 => 1,
            Self::Bits48 => 2,
            Self::Bits57 => 3,
        }
    }
}

/// The FPD bit (bit 1 of `lo`): whether faults from this device are recorded and reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultProcessing {
    /// FPD = 0: faults are recorded (the normal choice).
    Report,
    /// FPD = 1: faults are silently dropped.
    Suppress,
}

/// A 128-bit legacy context entry (VT-d spec 9.3, "Context Entry").
///
/// * `lo`: P (bit 0), FPD (1), TT (3:2), SLPTPTR (63:12). Bits 11:4 are reserved.
/// * `hi`: AW (2:0), AVL (6:3, software use), DID (23:8). Bit 7 and bits 63:24 are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ContextEntry {
    lo: u64,
    hi: u64,
}

impl ContextEntry {
    /// A not-present entry: requests from the device fault with reason 2.
    pub const NOT_PRESENT: Self = Self { lo: 0, hi: 0 };

    /// A present entry. Table pointers must be 4 KiB aligned.
    pub const fn new(
        translation: ContextTranslation,
        width: ContextAddressWidth,
        domain: DomainId,
        faults: FaultProcessing,
    ) -> Result<Self, EntryError> {
        let (kind, table) = match translation {
            ContextTranslation::MultiLevel { table } => (TranslationType::MultiLevel, table),
            ContextTranslation::DeviceTlb { table } => (TranslationType::DeviceTlb, table),
            ContextTranslation::PassThrough => {
                (TranslationType::PassThrough, PhysAddr::new_truncate(0))
            }
        };
        let table = match table.require_4k() {
            Ok(table) => table,
            Err(error) => return Err(error),
        };
        let fpd = match faults {
            FaultProcessing::Report => 0,
            FaultProcessing::Suppress => FAULT_PROCESSING_DISABLE,
        };
        Ok(Self {
            lo: table.as_u64() | kind.bits() << TRANSLATION_TYPE_SHIFT | fpd | PRESENT,
            hi: (domain.get() as u64) << DOMAIN_SHIFT | width.bits(),
        })
    }

    /// The same entry with the software-available AVL field (4 bits) set to `value`.
    pub const fn with_available(self, value: u8) -> Result<Self, EntryError> {
        if value > AVAILABLE_MAX {
            return Err(EntryError::ValueTooLarge);
        }
        let cleared = self.hi & !((AVAILABLE_MAX as u64) << AVAILABLE_SHIFT);
        Ok(Self {
            lo: self.lo,
            hi: cleared | (value as u64) << AVAILABLE_SHIFT,
        })
    }

    /// Reinterprets the two 64-bit halves read from a context table.
    pub const fn from_raw(lo: u64, hi: u64) -> Self {
        Self { lo, hi }
    }

    /// The low 64 bits, as stored at byte offset 0 of the entry.
    pub const fn lo(self) -> u64 {
        self.lo
    }

    /// The high 64 bits, as stored at byte offset 8 of the entry.
    pub const fn hi(self) -> u64 {
        self.hi
    }

    /// Whether P is set.
    pub const fn is_present(self) -> bool {
        field(self.lo, 0, 1) == 1
    }

    /// The FPD bit.
    pub const fn fault_processing(self) -> FaultProcessing {
        if field(self.lo, 1, 1) == 1 {
            FaultProcessing::Suppress
        } else {
            FaultProcessing::Report
        }
    }

    /// The TT field, or `None` for the reserved value 3.
    pub const fn translation_type(self) -> Option<TranslationType> {
        match field(self.lo, TRANSLATION_TYPE_SHIFT, 2) {
            0 => Some(TranslationType::MultiLevel),
            1 => Some(TranslationType::DeviceTlb),
            2 => Some(TranslationType::PassThrough),
            _ => None,
        }
    }

    /// SLPTPTR, for the translation types that use it.
    pub const fn second_level_table(self) -> Option<PhysAddr> {
        match self.translation_type() {
            Some(TranslationType::MultiLevel | TranslationType::DeviceTlb) => {
                Some(PhysAddr::new_truncate(self.lo & TABLE_MASK))
            }
            _ => None,
        }
    }

    /// The AW field, or `None` for a reserved value.
    pub const fn address_width(self) -> Option<ContextAddressWidth> {
        match field(self.hi, 0, 3) {
            1 => Some(ContextAddressWidth::Bits39),
            2 => Some(ContextAddressWidth::Bits48),
            3 => Some(ContextAddressWidth::Bits57),
            _ => None,
        }
    }

    /// The AVL field.
    pub const fn available(self) -> u8 {
        field(self.hi, AVAILABLE_SHIFT, 4) as u8
    }

    /// The raw DID field. It is not a [`DomainId`] because validating it needs the unit's limit.
    pub const fn domain_id(self) -> u16 {
        field(self.hi, DOMAIN_SHIFT, 16) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::DomainLimit;

    fn domain(raw: u16) -> DomainId {
        DomainId::new(raw, DomainLimit::from_nd(6).unwrap()).unwrap()
    }

    #[test]
    fn multi_level_39_bit() {
        let table = PhysAddr::new(0x1234_5000).unwrap();
        let entry = ContextEntry::new(
            ContextTranslation::MultiLevel { table },
            ContextAddressWidth::Bits39,
            domain(1),
            FaultProcessing::Report,
        )
        .unwrap();
        assert_eq!((entry.lo(), entry.hi()), (0x1234_5001, 0x101));
        assert!(entry.is_present());
        assert_eq!(entry.translation_type(), Some(TranslationType::MultiLevel));
        assert_eq!(entry.second_level_table(), Some(table));
        assert_eq!(entry.address_width(), Some(ContextAddressWidth::Bits39));
        assert_eq!(entry.domain_id(), 1);
        assert_eq!(entry.fault_processing(), FaultProcessing::Report);
    }

    #[test]
    fn device_tlb_48_bit_suppressed_faults() {
        let table = PhysAddr::new(0xF_FFFF_F000).unwrap();
        let entry = ContextEntry::new(
            ContextTranslation::DeviceTlb { table },
            ContextAddressWidth::Bits48,
            domain(0xABCD),
            FaultProcessing::Suppress,
        )
        .unwrap();
        assert_eq!((entry.lo(), entry.hi()), (0xF_FFFF_F007, 0x00AB_CD02));
        assert_eq!(entry.fault_processing(), FaultProcessing::Suppress);
        assert_eq!(entry.translation_type(), Some(TranslationType::DeviceTlb));
        assert_eq!(entry.domain_id(), 0xABCD);
        // Reserved bits of `hi` (bit 7 and 63:24) stay clear: QEMU faults 0xB on them.
        assert_eq!(entry.hi() & 0xFFFF_FFFF_FF00_0080, 0);
    }

    #[test]
    fn pass_through_57_bit() {
        let entry = ContextEntry::new(
            ContextTranslation::PassThrough,
            ContextAddressWidth::Bits57,
            domain(2),
            FaultProcessing::Report,
        )
        .unwrap();
        assert_eq!((entry.lo(), entry.hi()), (0x9, 0x203));
        assert_eq!(entry.second_level_table(), None);
    }

    #[test]
    fn available_bits() {
        let entry = ContextEntry::new(
            ContextTranslation::PassThrough,
            ContextAddressWidth::Bits39,
            domain(1),
            FaultProcessing::Report,
        )
        .unwrap();
        let marked = entry.with_available(0xF).unwrap();
        assert_eq!(marked.hi(), 0x101 | 0x78);
        assert_eq!(marked.available(), 0xF);
        assert_eq!(marked.with_available(0x5).unwrap().hi(), 0x101 | 0x28);
        assert_eq!(entry.with_available(16), Err(EntryError::ValueTooLarge));
    }

    #[test]
    fn rejects_misaligned_table_and_decodes_reserved() {
        let table = PhysAddr::new(0x1234_5800).unwrap();
        let result = ContextEntry::new(
            ContextTranslation::MultiLevel { table },
            ContextAddressWidth::Bits39,
            domain(1),
            FaultProcessing::Report,
        );
        assert_eq!(result, Err(EntryError::Misaligned));
        let reserved = ContextEntry::from_raw(0b1101, 0x100);
        assert_eq!(reserved.translation_type(), None);
        assert_eq!(reserved.address_width(), None);
        assert!(!ContextEntry::NOT_PRESENT.is_present());
    }
}

//! Interrupt remapping structures: the interrupt remapping table entry for remapped interrupts
//! (VT-d spec 9.10), the remappable-format MSI address and data a device sends to select one
//! (VT-d spec 5.1.2.2), and the IRTA_REG value that registers the table (VT-d spec 10.4,
//! IRTA_REG). Only xAPIC destinations are built: EIME stays 0 (QEMU's TCG has no x2APIC).

use super::{EntryError, FunctionMask, PhysAddr, SourceId, field};

const PRESENT: u64 = 1 << 0;
const DESTINATION_MODE_SHIFT: u32 = 2;
const TRIGGER_MODE_SHIFT: u32 = 4;
const DELIVERY_MODE_SHIFT: u32 = 5;
const VECTOR_SHIFT: u32 = 16;
/// The xAPIC destination ID sits in bits 47:40 (DST bits 15:8 with EIME = 0).
const XAPIC_DESTINATION_SHIFT: u32 = 40;
const SOURCE_QUALIFIER_SHIFT: u32 = 16;
const SOURCE_VALIDATION_SHIFT: u32 = 18;
/// Bits 19:5 of a remappable MSI address carry handle[14:0].
const HANDLE_LOW_SHIFT: u32 = 5;
/// Bit 4: the address is in remappable format.
const REMAPPABLE_FORMAT: u32 = 1 << 4;
/// Bit 3: SHV, the data register holds a subhandle.
const SUBHANDLE_VALID: u32 = 1 << 3;
/// Bit 2 holds handle[15].
const HANDLE_HIGH_SHIFT: u32 = 2;
/// Bits 31:20 of every MSI address: the interrupt window 0xFEEx_xxxx.
const MSI_WINDOW: u32 = 0xfee0_0000;

/// An index into the interrupt remapping table: the handle (plus subhandle) a remappable
/// interrupt request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterruptIndex(u16);

impl InterruptIndex {
    /// Any 16-bit value names an entry; the unit drops requests past its table's end.
    pub const fn new(raw: u16) -> Self {
        Self(raw)
    }

    /// The index as a number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// A CPU interrupt vector a remapped interrupt may deliver: 32..=255, since 0..=31 are the
/// processor's exceptions (Intel SDM vol. 3, 6.2) and an APIC refuses vectors below 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterruptVector(u8);

impl InterruptVector {
    /// Validates `raw`: it must be 32 or above.
    pub const fn new(raw: u8) -> Option<Self> {
        if raw >= 32 { Some(Self(raw)) } else { None }
    }

    /// The vector number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// How the CPU is told about the interrupt: the IRTE's DLM field (bits 7:5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// 000: the vector, to every destination CPU.
    Fixed,
    /// 001: the vector, to the lowest-priority destination CPU.
    LowestPriority,
    /// 010: a system-management interrupt (vector ignored).
    Smi,
    /// 100: a non-maskable interrupt (vector ignored).
    Nmi,
    /// 101: INIT (vector ignored).
    Init,
    /// 111: ExtINT, from an 8259-compatible controller.
    ExtInt,
}

impl DeliveryMode {
    const fn bits(self) -> u64 {
        match self {
            Self::Fixed => 0b000,
            Self::LowestPriority => 0b001,
            Self::Smi => 0b010,
            Self::Nmi => 0b100,
            Self::Init => 0b101,
            Self::ExtInt => 0b111,
        }
    }
}

/// The IRTE's TM field (bit 4). MSIs are edge-triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerMode {
    /// 0: edge.
    Edge,
    /// 1: level.
    Level,
}

/// The IRTE's DM field (bit 2): how the destination ID is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationMode {
    /// 0: the destination is one local APIC ID.
    Physical,
    /// 1: the destination is a logical APIC mask.
    Logical,
}

/// Which requests may use an entry: the IRTE's SVT (bits 83:82), SQ (81:80) and SID (79:64).
/// There is deliberately no "no validation" value: every entry Moat writes names its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceValidation {
    /// SVT = 01: the request's requester ID must equal `source` in the bits `qualifier` keeps
    /// (SQ has the same encoding as a context-cache invalidation's function mask).
    RequesterId {
        /// The expected requester ID.
        source: SourceId,
        /// Function-number bits ignored in the comparison.
        qualifier: FunctionMask,
    },
    /// SVT = 10: the request's bus number must lie in `first..=last` (SID = first << 8 |
    /// last). This is what fits a device behind a PCIe-to-PCI bridge, whose requests may carry
    /// the bridge's alias (secondary bus, devfn 0) or, for some bridges, its own ID.
    BusRange(BusRange),
}

/// An inclusive range of bus numbers, `first <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusRange {
    first: u8,
    last: u8,
}

impl BusRange {
    /// The buses `first..=last`; `None` if `first > last`.
    pub const fn new(first: u8, last: u8) -> Option<Self> {
        if first <= last {
            Some(Self { first, last })
        } else {
            None
        }
    }

    /// The first bus.
    pub const fn first(self) -> u8 {
        self.first
    }

    /// The last bus.
    pub const fn last(self) -> u8 {
        self.last
    }
}

impl SourceValidation {
    /// Exactly `source`: SVT = 01 with SQ = 00.
    pub const fn exact(source: SourceId) -> Self {
        Self::RequesterId {
            source,
            qualifier: FunctionMask::Exact,
        }
    }

    /// (SVT, SQ, SID) as they go into the entry.
    const fn fields(self) -> (u64, u64, u64) {
        match self {
            Self::RequesterId { source, qualifier } => {
                (0b01, qualifier.bits(), source.get() as u64)
            }
            Self::BusRange(range) => (0b10, 0, (range.first as u64) << 8 | range.last as u64),
        }
    }
}

/// Everything a remapped interrupt entry says: what to deliver, to whom, and who may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemappedInterrupt {
    /// The vector delivered (ignored by SMI, NMI and INIT delivery).
    pub vector: InterruptVector,
    /// The xAPIC destination: an APIC ID, or a logical mask with [`DestinationMode::Logical`].
    pub destination: u8,
    /// How `destination` is read.
    pub destination_mode: DestinationMode,
    /// How the interrupt is delivered.
    pub delivery: DeliveryMode,
    /// Edge or level.
    pub trigger: TriggerMode,
    /// The requests allowed to use the entry.
    pub source: SourceValidation,
}

impl RemappedInterrupt {
    /// A fixed, edge-triggered interrupt on `vector` to the CPU with APIC ID `apic_id`: what an
    /// MSI needs.
    pub const fn fixed(vector: InterruptVector, apic_id: u8, source: SourceValidation) -> Self {
        Self {
            vector,
            destination: apic_id,
            destination_mode: DestinationMode::Physical,
            delivery: DeliveryMode::Fixed,
            trigger: TriggerMode::Edge,
            source,
        }
    }
}

/// One 128-bit interrupt remapping table entry in remapped format (VT-d spec 9.10, IM = 0).
///
/// `lo`: P (0), FPD (1) = 0, DM (2), RH (3) = 0, TM (4), DLM (7:5), AVL (11:8) = 0, reserved
/// 14:12, IM (15) = 0, V (23:16), reserved 31:24, DST (63:32; xAPIC ID in 47:40, the rest
/// reserved with EIME = 0). `hi`: SID (79:64), SQ (81:80), SVT (83:82), reserved 127:84.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptEntry {
    lo: u64,
    hi: u64,
}

impl InterruptEntry {
    /// The all-zero entry: not present, so every request naming it is blocked.
    pub const NOT_PRESENT: Self = Self { lo: 0, hi: 0 };

    /// A present entry for `interrupt`. Faults are reported (FPD = 0) and the redirection
    /// hint is clear (RH = 0: deliver to the destination as written).
    pub const fn remapped(interrupt: RemappedInterrupt) -> Self {
        let destination_mode = match interrupt.destination_mode {
            DestinationMode::Physical => 0,
            DestinationMode::Logical => 1,
        };
        let trigger = match interrupt.trigger {
            TriggerMode::Edge => 0,
            TriggerMode::Level => 1,
        };
        let (validation, qualifier, source) = interrupt.source.fields();
        Self {
            lo: (interrupt.destination as u64) << XAPIC_DESTINATION_SHIFT
                | (interrupt.vector.get() as u64) << VECTOR_SHIFT
                | interrupt.delivery.bits() << DELIVERY_MODE_SHIFT
                | trigger << TRIGGER_MODE_SHIFT
                | destination_mode << DESTINATION_MODE_SHIFT
                | PRESENT,
            hi: validation << SOURCE_VALIDATION_SHIFT
                | qualifier << SOURCE_QUALIFIER_SHIFT
                | source,
        }
    }

    /// An entry as read from the table.
    pub const fn from_raw(lo: u64, hi: u64) -> Self {
        Self { lo, hi }
    }

    /// Bits 63:0 (word 0 of the slot; holds P).
    pub const fn lo(self) -> u64 {
        self.lo
    }

    /// Bits 127:64 (word 1 of the slot).
    pub const fn hi(self) -> u64 {
        self.hi
    }

    /// P.
    pub const fn is_present(self) -> bool {
        self.lo & PRESENT != 0
    }

    /// V.
    pub const fn vector(self) -> u8 {
        field(self.lo, VECTOR_SHIFT, 8) as u8
    }

    /// The xAPIC destination ID (bits 47:40).
    pub const fn xapic_destination(self) -> u8 {
        field(self.lo, XAPIC_DESTINATION_SHIFT, 8) as u8
    }

    /// SID.
    pub const fn source_id(self) -> u16 {
        self.hi as u16
    }

    /// SVT.
    pub const fn source_validation_type(self) -> u8 {
        field(self.hi, SOURCE_VALIDATION_SHIFT, 2) as u8
    }
}

/// A remappable-format MSI (VT-d spec 5.1.2.2): the address selects an entry by handle, the
/// data carries the subhandle when SHV is set, else 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemappableMessage {
    address: u32,
    data: u32,
}

impl RemappableMessage {
    /// Selects entry `handle` alone (SHV = 0, data 0): for a single-vector MSI.
    pub const fn new(handle: InterruptIndex) -> Self {
        Self {
            address: Self::address_for(handle),
            data: 0,
        }
    }

    /// Selects entry `handle + subhandle` (SHV = 1, data = subhandle): for multi-message MSI,
    /// where the device puts its vector number in the low data bits.
    pub const fn with_subhandle(handle: InterruptIndex, subhandle: u16) -> Self {
        Self {
            address: Self::address_for(handle) | SUBHANDLE_VALID,
            data: subhandle as u32,
        }
    }

    const fn address_for(handle: InterruptIndex) -> u32 {
        let handle = handle.get() as u32;
        MSI_WINDOW
            | (handle & 0x7fff) << HANDLE_LOW_SHIFT
            | REMAPPABLE_FORMAT
            | (handle >> 15) << HANDLE_HIGH_SHIFT
    }

    /// The message address (bits 31:0; the upper address is 0).
    pub const fn address(self) -> u32 {
        self.address
    }

    /// The message data.
    pub const fn data(self) -> u32 {
        self.data
    }

    /// The entry a unit uses for the MSI `address`/`data`, as the hardware decodes it; `None`
    /// for an address outside the interrupt window, a compatibility-format address, or a
    /// subhandle with the upper data bits set.
    pub const fn decode(address: u32, data: u32) -> Option<InterruptIndex> {
        if address & 0xfff0_0000 != MSI_WINDOW || address & REMAPPABLE_FORMAT == 0 {
            return None;
        }
        let handle =
            (address >> HANDLE_LOW_SHIFT) & 0x7fff | ((address >> HANDLE_HIGH_SHIFT) & 1) << 15;
        if address & SUBHANDLE_VALID == 0 {
            return Some(InterruptIndex(handle as u16));
        }
        if data >> 16 != 0 {
            return None;
        }
        Some(InterruptIndex(handle.wrapping_add(data) as u16))
    }
}

/// The size of an interrupt remapping table: 2^(S+1) entries, S in IRTA_REG bits 3:0. Limited
/// to one 4 KiB frame (2..=256 entries of 16 bytes), the unit of table memory here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptTableSize(u8);

impl InterruptTableSize {
    /// A table of `entries`: a power of two in 2..=256.
    pub const fn new(entries: u32) -> Option<Self> {
        if entries < 2 || entries > 256 || !entries.is_power_of_two() {
            return None;
        }
        Some(Self((entries.trailing_zeros() - 1) as u8))
    }

    /// Number of entries.
    pub const fn entries(self) -> u32 {
        1 << (self.0 + 1)
    }

    /// The S field.
    pub const fn s(self) -> u8 {
        self.0
    }
}

/// An IRTA_REG value (VT-d spec 10.4, IRTA_REG): the 4 KiB-aligned table, EIME (bit 11) = 0
/// for xAPIC destinations, and S (bits 3:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptTableAddress(u64);

impl InterruptTableAddress {
    /// Registers `table` of `size` entries in xAPIC mode; the table must be 4 KiB aligned.
    pub const fn xapic(table: PhysAddr, size: InterruptTableSize) -> Result<Self, EntryError> {
        match table.require_4k() {
            Ok(table) => Ok(Self(table.as_u64() | size.s() as u64)),
            Err(error) => Err(error),
        }
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests;

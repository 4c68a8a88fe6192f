//! What discovery found wrong with a function's configuration space. A problem is recorded
//! and discovery carries on: a bad device or bridge must not hide the rest of the machine.

use core::fmt;

use moat_iommu::Bdf;

/// One thing wrong with one function, printed as one line: `0000:00:05.0: capability loop at
/// 0x48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    /// The function whose configuration space is at fault.
    pub bdf: Bdf,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.bdf, self.kind)
    }
}

/// What is wrong with a function. Bus numbers are the firmware's; offsets are into the
/// function's configuration space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The header type (bits 6:0 of offset 0x0e) is not 0, 1 or 2. The function is listed
    /// without BARs or capabilities, whose layout is unknown.
    UnknownHeaderType {
        /// Bits 6:0 of the header type register.
        header_type: u8,
    },
    /// A bridge's secondary bus is not above the bus the bridge sits on (it points back at
    /// the bridge's own bus or an ancestor). Not followed.
    SecondaryBusNotAbove {
        /// The secondary bus number.
        secondary: u8,
        /// The bus the bridge sits on.
        bus: u8,
    },
    /// A bridge's secondary bus is outside the bus numbers its parent forwards (for the root
    /// bus, the segment's bus range). Not followed.
    SecondaryBusOutOfRange {
        /// The secondary bus number.
        secondary: u8,
        /// First bus number the bridge may use.
        first: u8,
        /// Last bus number the bridge may use.
        last: u8,
    },
    /// A bridge's secondary bus was already claimed by another bridge. Not followed again.
    SecondaryBusAlreadyScanned {
        /// The secondary bus number.
        secondary: u8,
    },
    /// A bridge's subordinate bus is below its secondary bus. Not followed.
    SubordinateBelowSecondary {
        /// The secondary bus number.
        secondary: u8,
        /// The subordinate bus number.
        subordinate: u8,
    },
    /// A bridge's subordinate bus is beyond what its parent forwards. The bridge is followed
    /// with its range cut at `last`.
    SubordinateBusOutOfRange {
        /// The subordinate bus number.
        subordinate: u8,
        /// Last bus number the bridge may use.
        last: u8,
    },
    /// A BAR's size mask read back as zero although the BAR is non-zero, or its mask is not a
    /// contiguous run of ones. The BAR is not listed.
    BarUnsizable {
        /// BAR index (0..=5).
        index: u8,
    },
    /// A 64-bit memory BAR in the header's last BAR slot, with no upper half. Not listed.
    Bar64InLastSlot {
        /// BAR index.
        index: u8,
    },
    /// A memory BAR with the reserved type 0b11 in bits 2:1. Not listed.
    BarReservedType {
        /// BAR index.
        index: u8,
    },
    /// A standard capability pointer outside 0x40..=0xff. Ends the walk.
    CapabilityPointerOutOfRange {
        /// Where the pointer was read (0x34, 0x14, or a capability's next byte).
        at: u16,
        /// The pointer, bottom two bits masked.
        pointer: u16,
    },
    /// The standard list reaches `at` a second time (or has more entries than fit). Ends the
    /// walk.
    CapabilityLoop {
        /// The capability offset reached again.
        at: u16,
    },
    /// An extended capability's next pointer is below 0x100 but not 0. Ends the walk.
    ExtendedCapabilityPointerOutOfRange {
        /// The extended capability whose next pointer is wrong.
        at: u16,
        /// The next pointer, bottom two bits masked.
        next: u16,
    },
    /// The extended list reaches `at` a second time (or has more entries than fit). Ends the
    /// walk.
    ExtendedCapabilityLoop {
        /// The extended capability offset reached again.
        at: u16,
    },
    /// An extended capability too close to the end of configuration space to hold its
    /// registers (an ACS header at 0xffc). Ends the walk.
    ExtendedCapabilityTruncated {
        /// The capability's offset.
        at: u16,
        /// Its ID.
        id: u16,
    },
}

impl ProblemKind {
    /// Whether this problem kept discovery from following a bridge to its secondary bus
    /// (nothing behind the bridge was scanned through it).
    pub const fn bridge_not_followed(&self) -> bool {
        matches!(
            self,
            ProblemKind::SecondaryBusNotAbove { .. }
                | ProblemKind::SecondaryBusOutOfRange { .. }
                | ProblemKind::SecondaryBusAlreadyScanned { .. }
                | ProblemKind::SubordinateBelowSecondary { .. }
        )
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProblemKind::UnknownHeaderType { header_type } => {
                write!(f, "unknown header type {header_type:#04x}")
            }
            ProblemKind::SecondaryBusNotAbove { secondary, bus } => write!(
                f,
                "bridge secondary bus {secondary:02x} is not above its own bus {bus:02x}; not scanned"
            ),
            ProblemKind::SecondaryBusOutOfRange {
                secondary,
                first,
                last,
            } => write!(
                f,
                "bridge secondary bus {secondary:02x} is outside bus range {first:02x}-{last:02x}; not scanned"
            ),
            ProblemKind::SecondaryBusAlreadyScanned { secondary } => write!(
                f,
                "bridge secondary bus {secondary:02x} is already claimed by another bridge; not scanned"
            ),
            ProblemKind::SubordinateBelowSecondary {
                secondary,
                subordinate,
            } => write!(
                f,
                "bridge subordinate bus {subordinate:02x} is below secondary bus {secondary:02x}; not scanned"
            ),
            ProblemKind::SubordinateBusOutOfRange { subordinate, last } => write!(
                f,
                "bridge subordinate bus {subordinate:02x} is beyond bus {last:02x}; scanned up to {last:02x}"
            ),
            ProblemKind::BarUnsizable { index } => write!(f, "BAR {index} cannot be sized"),
            ProblemKind::Bar64InLastSlot { index } => {
                write!(f, "BAR {index} is 64-bit but is the last BAR slot")
            }
            ProblemKind::BarReservedType { index } => {
                write!(f, "BAR {index} has the reserved memory type")
            }
            ProblemKind::CapabilityPointerOutOfRange { at, pointer } => write!(
                f,
                "capability pointer {pointer:#04x} at {at:#04x} is outside 0x40-0xff"
            ),
            ProblemKind::CapabilityLoop { at } => write!(f, "capability loop at {at:#04x}"),
            ProblemKind::ExtendedCapabilityPointerOutOfRange { at, next } => write!(
                f,
                "extended capability at {at:#05x} points to {next:#05x}, below 0x100"
            ),
            ProblemKind::ExtendedCapabilityLoop { at } => {
                write!(f, "extended capability loop at {at:#05x}")
            }
            ProblemKind::ExtendedCapabilityTruncated { at, id } => write!(
                f,
                "extended capability {id:#06x} at {at:#05x} runs past the end of config space"
            ),
        }
    }
}

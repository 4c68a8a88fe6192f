//! What can be wrong with a topology snapshot, or with a lookup in one.

use core::fmt;

use super::topology::Bus;
use crate::Bdf;

/// Why a [`Topology`](super::Topology) could not be built, or a lookup in it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyError {
    /// Two functions at one address.
    DuplicateFunction(Bdf),
    /// A root bus listed twice.
    DuplicateRootBus(Bus),
    /// A bridge's secondary bus is not above the bus the bridge sits on.
    BridgeNotAbove {
        /// The bridge.
        bridge: Bdf,
        /// Its secondary bus number.
        secondary: u8,
    },
    /// A bridge claims a root bus as its secondary bus.
    BridgeClaimsRootBus {
        /// The bridge.
        bridge: Bdf,
    },
    /// Two bridges claim the same secondary bus.
    SecondaryBusClaimedTwice {
        /// The bus.
        bus: Bus,
        /// The first bridge (lower address).
        first: Bdf,
        /// The second bridge.
        second: Bdf,
    },
    /// A function sits on a bus that is neither a root bus nor behind any bridge.
    NoParentBridge {
        /// The function.
        function: Bdf,
    },
    /// No function at this address.
    UnknownFunction(Bdf),
    /// The function has no ACS capability.
    NoAcs(Bdf),
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::DuplicateFunction(bdf) => write!(f, "{bdf} listed twice"),
            TopologyError::DuplicateRootBus(bus) => write!(f, "root bus {bus} listed twice"),
            TopologyError::BridgeNotAbove { bridge, secondary } => write!(
                f,
                "bridge {bridge}: secondary bus {secondary:02x} is not above its own bus"
            ),
            TopologyError::BridgeClaimsRootBus { bridge } => {
                write!(f, "bridge {bridge} claims a root bus as its secondary bus")
            }
            TopologyError::SecondaryBusClaimedTwice { bus, first, second } => {
                write!(f, "bus {bus} is behind both {first} and {second}")
            }
            TopologyError::NoParentBridge { function } => write!(
                f,
                "{function} is on a bus that is neither a root bus nor behind a bridge"
            ),
            TopologyError::UnknownFunction(bdf) => write!(f, "no function at {bdf}"),
            TopologyError::NoAcs(bdf) => write!(f, "{bdf} has no ACS capability"),
        }
    }
}

//! Bus numbers during discovery: the set of bus numbers already scanned or claimed by a
//! bridge, and how root buses (buses no bridge forwards to) are found.
//!
//! Root buses are found by probing, not from ACPI: firmware describes extra host bridges
//! (QEMU's `pxb-pcie` expanders) only as DSDT objects, which would need an AML interpreter.
//! Every bus number of the segment that no bridge's secondary..=subordinate range claims is
//! probed for a function 0 in any slot; a bus where one answers is a root bus (an expander's
//! is at its `bus_nr`).

/// A set of bus numbers.
#[derive(Default)]
pub(super) struct BusSet([u64; 4]);

impl BusSet {
    /// Adds `bus`.
    pub(super) fn insert(&mut self, bus: u8) {
        self.0[usize::from(bus / 64)] |= 1 << (bus % 64);
    }

    /// Adds every bus of `first..=last` (nothing if `last < first`).
    pub(super) fn insert_range(&mut self, first: u8, last: u8) {
        for bus in first..=last {
            self.insert(bus);
        }
    }

    /// Whether `bus` is in the set.
    pub(super) fn contains(&self, bus: u8) -> bool {
        self.0[usize::from(bus / 64)] & (1 << (bus % 64)) != 0
    }
}

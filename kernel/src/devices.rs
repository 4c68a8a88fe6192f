//! The PCI functions discovered at boot, kept for the rest of the run.

use crate::pci::Enumeration;

static DEVICES: spin::Once<Enumeration> = spin::Once::new();

/// Keeps the enumeration and returns it.
pub fn publish(
    _root: &crate::privilege::Privileged,
    enumeration: Enumeration,
) -> &'static Enumeration {
    DEVICES.call_once(|| enumeration)
}

/// The enumeration published at boot (empty before).
pub fn all() -> Option<&'static Enumeration> {
    DEVICES.get()
}

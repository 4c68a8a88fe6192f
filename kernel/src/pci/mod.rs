//! PCI(e) discovery: config access, enumeration, BARs and capabilities; and programming a
//! function's MSI capability.
//!
//! [`enumerate()`] walks one segment, from each of its root buses, through a [`ConfigAccess`]
//! (the kernel's ECAM, or legacy port I/O limited to [`ConfigSpaceSize::Conventional`]) and
//! returns every function it found as a [`PciDevice`], plus a [`Problem`] for everything the
//! firmware or a device got wrong. [`device_line`] prints one line per function for the boot
//! report. [`groups`] turns the result into IOMMU groups; [`reset`] resets a function when its
//! owner releases it.
//!
//! Nothing here uses `unsafe`: configuration space is reached only through the safe
//! [`ConfigAccess`] trait, and every value read from it is checked before it steers the walk.
#![forbid(unsafe_code)]

pub mod access;
pub mod bar;
pub mod bus;
pub mod capabilities;
pub mod device;
pub mod enumerate;
pub mod groups;
pub mod msi;
pub mod msix;
pub mod problem;
pub mod report;
pub mod reset;

#[cfg(test)]
mod tests;

pub use access::{ConfigAccess, ConfigAccessExt, ConfigSpaceSize, bdf_from_address, pci_address};
pub use bar::{Bar, BarKind};
pub use capabilities::{Acs, AcsFlags, Capability, CapabilityId, ExtendedCapability};
pub use device::{DeviceKind, PciDevice, PcieInfo, PortType};
pub use enumerate::{Enumeration, enumerate};
pub use msi::{Mask, Msi, MsiError};
pub use problem::{Problem, ProblemKind};
pub use report::{device_line, kind_name};

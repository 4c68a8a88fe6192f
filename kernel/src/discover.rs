//! PCI discovery on the running machine: maps configuration space (ECAM from the MCFG, else
//! port I/O), keeps it for the kernel's services, and enumerates every segment from each
//! root bus (the first, then any other found by probing). Lives in the kernel so that raw
//! configuration access never leaves it.

use crate::acpi::platform::Platform;
use crate::pci::{ConfigSpaceSize, Enumeration, enumerate};

/// Enumerates every function the firmware's config space windows reach.
///
/// The composition root's alone, once: enumeration sizes BARs (it writes all ones to them), so
/// running it again would disturb devices that owners hold. A second call is refused.
pub fn discover_pci(
    _root: &crate::privilege::Privileged,
    platform: &Platform,
) -> Option<Enumeration> {
    if crate::ecam::config().is_some() {
        crate::error!("pci", "discovery runs once; a second call was refused");
        return None;
    }
    let config = crate::ecam::publish(crate::ecam::ConfigSpace::new(&platform.ecam));
    let size = if config.extended() {
        ConfigSpaceSize::Extended
    } else {
        ConfigSpaceSize::Conventional
    };
    let mut all = Enumeration::default();
    for (segment, first, last) in config.bus_ranges() {
        let found = enumerate(config, segment, first..=last, size);
        all.devices.extend(found.devices);
        all.problems.extend(found.problems);
        all.root_buses.extend(found.root_buses);
    }
    all.devices.sort_by_key(|d| d.bdf);
    for root in &all.root_buses {
        crate::info!("pci", "root bus {root}");
    }
    for problem in &all.problems {
        crate::warn!("pci", "{problem}");
    }
    crate::info!("pci", "{} functions found", all.devices.len());
    Some(all)
}

//! IOMMU groups at boot. Like Linux, which requests ACS only when the firmware describes an
//! IOMMU that is not disabled, the kernel enables ACS and groups the devices only when the
//! DMAR lists a remapping unit and `iommu=off` was not given. This runs before remapping is
//! brought up, so remapping can give each group its domain.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use moat_iommu::dmar::Dmar;
use moat_iommu::group::Groups;
use moat_kernel::cmdline::CommandLine;
use moat_kernel::pci::Enumeration;
use moat_kernel::pci::groups;
use moat_kernel::{info, vtd, warn};

/// Enables ACS, computes the groups and publishes them; or says why there are none.
pub(crate) fn discover(
    options: &CommandLine,
    dmar_bytes: Option<&[u8]>,
    devices: &Enumeration,
) -> Result<&'static Groups, String> {
    if options.iommu_off {
        return Err("iommu=off".into());
    }
    let units = dmar_bytes
        .and_then(|bytes| Dmar::parse(bytes).ok())
        .map_or(0, |table| table.units().len());
    if units == 0 {
        return Err("no remapping unit described".into());
    }
    let config = moat_kernel::ecam::config_privileged(&crate::ROOT)
        .ok_or("no configuration space access")?;
    let discovery =
        groups::discover(config, devices).map_err(|error| format!("topology rejected: {error}"))?;
    for function in &discovery.acs_not_enabled {
        warn!(
            "iommu",
            "{}: ACS Control reads {:#06x} after writing {:#06x}; grouped as read",
            function.bdf,
            function.read,
            function.wanted
        );
    }
    info!(
        "iommu",
        "ACS enabled on {} function(s); {} IOMMU group(s)",
        discovery.acs_enabled,
        discovery.groups.len()
    );
    Ok(groups::publish(&crate::ROOT, discovery.groups))
}

/// The boot report's group lines: one per group while remapping is on, else one line saying
/// there are none and why.
pub(crate) fn report_lines(groups: &Result<&'static Groups, String>) -> Vec<String> {
    if vtd::off_reason().is_some() {
        return vec!["iommu groups: none (remapping off)".to_string()];
    }
    match groups {
        Ok(groups) if !groups.is_empty() => groups.iter().map(groups::group_line).collect(),
        Ok(_) => vec!["iommu groups: none (no PCI functions)".to_string()],
        Err(reason) => vec![format!("iommu groups: none ({reason})")],
    }
}

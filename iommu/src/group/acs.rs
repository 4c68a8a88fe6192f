//! Access Control Services as Linux judges it for grouping: the control value Linux enables,
//! whether one function is isolated for a set of ACS features (`pci_acs_enabled`, with the one
//! device quirk that matches QEMU's devices), and whether a whole path to the root bus is
//! (`pci_acs_path_enabled`).

use bitflags::bitflags;

use super::topology::{Bus, Function, PcieType, Topology};

bitflags! {
    /// ACS capability and control register bits (PCIe 6.0 §7.7.8.2, §7.7.8.3). The same bit
    /// means "supported" in the capability register and "enabled" in the control register.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct AcsFlags: u16 {
        /// ACS Source Validation.
        const SOURCE_VALIDATION = 1 << 0;
        /// ACS Translation Blocking.
        const TRANSLATION_BLOCKING = 1 << 1;
        /// ACS P2P Request Redirect.
        const REQUEST_REDIRECT = 1 << 2;
        /// ACS P2P Completion Redirect.
        const COMPLETION_REDIRECT = 1 << 3;
        /// ACS Upstream Forwarding.
        const UPSTREAM_FORWARDING = 1 << 4;
        /// ACS P2P Egress Control.
        const EGRESS_CONTROL = 1 << 5;
        /// ACS Direct Translated P2P.
        const DIRECT_TRANSLATED = 1 << 6;
        // Keep reserved and newer bits (and the capability register's egress vector size in
        // bits 15:8) rather than dropping them.
        const _ = !0;
    }
}

/// The features that must be enabled for a function to count as isolated (Linux's
/// `REQ_ACS_FLAGS`): source validation, request and completion redirect, upstream forwarding.
pub const REQUIRED_ACS: AcsFlags = AcsFlags::SOURCE_VALIDATION
    .union(AcsFlags::REQUEST_REDIRECT)
    .union(AcsFlags::COMPLETION_REDIRECT)
    .union(AcsFlags::UPSTREAM_FORWARDING);

/// Intel's PCI vendor ID.
const INTEL: u16 = 0x8086;

/// The ACS Control value Linux writes to `function` before grouping (`pci_std_enable_acs`):
/// the current control plus every [`REQUIRED_ACS`] feature the function implements. `None`
/// if the function has no ACS capability. Linux writes it even when nothing changes;
/// translation blocking stays off (it is enabled only with ATS disabled or for untrusted
/// devices).
///
/// The caller writes it as one 16-bit access at the capability's position + 6, re-reads the
/// register and records what it read with
/// [`Topology::set_acs_control`](super::Topology::set_acs_control).
pub fn acs_control_to_enable(function: &Function) -> Option<u16> {
    let acs = function.acs?;
    Some((acs.control | (acs.capability & REQUIRED_ACS)).bits())
}

/// Linux's `pci_acs_flags_enabled`: every feature of `flags` the function implements is
/// enabled (features it does not implement count as enabled, except egress control, which
/// always counts). False without an ACS capability.
fn flags_enabled(function: &Function, flags: AcsFlags) -> bool {
    let Some(acs) = function.acs else {
        return false;
    };
    let flags = flags & (acs.capability | AcsFlags::EGRESS_CONTROL);
    acs.control.contains(flags)
}

/// The device-specific answer of Linux's ACS quirk table, if one applies. Only the entry that
/// matches QEMU's devices is modelled: Intel root-complex integrated endpoints are isolated
/// for [`REQUIRED_ACS`] (Linux's `pci_quirk_rciep_acs`; QEMU makes an Intel PCIe endpoint
/// such as e1000e on the root bus one of these).
fn device_specific(function: &Function, flags: AcsFlags) -> Option<bool> {
    let rciep = function.pcie == Some(PcieType::RootComplexIntegratedEndpoint);
    (function.vendor == INTEL && rciep).then(|| REQUIRED_ACS.contains(flags))
}

/// Linux's `pci_acs_enabled`: whether `function` keeps `flags`' kinds of peer-to-peer
/// traffic from bypassing the IOMMU.
pub(super) fn acs_enabled(function: &Function, flags: AcsFlags) -> bool {
    if let Some(answer) = device_specific(function, flags) {
        return answer;
    }
    let Some(pcie) = function.pcie else {
        // Conventional PCI is never isolated.
        return false;
    };
    match pcie {
        PcieType::PciToPcieBridge
        | PcieType::PcieToPciBridge
        | PcieType::RootComplexEventCollector => false,
        PcieType::DownstreamPort | PcieType::RootPort => flags_enabled(function, flags),
        PcieType::Endpoint
        | PcieType::UpstreamPort
        | PcieType::LegacyEndpoint
        | PcieType::RootComplexIntegratedEndpoint => {
            // A single function has no sibling to reach without going upstream.
            !function.is_multifunction() || flags_enabled(function, flags)
        }
        PcieType::Reserved(_) => true,
    }
}

/// Linux's `pci_acs_path_enabled(start, NULL, flags)`: `start` and every bridge between it
/// and its root bus are isolated for `flags`.
pub(super) fn path_enabled(topology: &Topology, start: usize, flags: AcsFlags) -> bool {
    let mut current = start;
    // Each step moves to a bridge on a lower bus number (`Topology::new` checked), so at most
    // 256 steps reach a root bus; the bound is a second guard.
    for _ in 0..=u8::MAX as usize {
        let function = topology.at(current);
        if !acs_enabled(function, flags) {
            return false;
        }
        let bus = Bus::of(function.bdf);
        match topology.parent_bridge(bus) {
            Some(bridge) if !topology.is_root(bus) => current = bridge,
            _ => return true,
        }
    }
    false
}

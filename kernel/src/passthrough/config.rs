//! Which config-space writes an owner may make through its handle. Reads are free; a write that
//! could break isolation is refused, and bus mastering is the kernel's (it turns it on only
//! while the device is attached, and off on release).
//!
//! Refused: the header's BARs, expansion ROM, bus numbers, bridge windows and bridge control
//! (a device could claim another's addresses or move a bus); the MSI and MSI-X capabilities
//! (interrupt messages are programmed by the kernel through interrupt remapping); Initiate FLR
//! (reset is the kernel's, on release); the ACS, ATS, SR-IOV, PRI, Multicast and (VF)
//! Resizable BAR extended capabilities (they change the isolation, add requesters or change
//! what the device decodes). Command writes keep the kernel's BME bit.

use crate::pci::capabilities::CapabilityId;
use crate::pci::device::PciDevice;

/// Why a config write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigDenied {
    /// Width not 1, 2 or 4, offset not aligned to it, or past the config space.
    BadAccess {
        /// The offset asked for.
        offset: u16,
    },
    /// A header register that decides where the device (or the buses below it) decode.
    Header {
        /// The offset asked for.
        offset: u16,
    },
    /// Inside the MSI or MSI-X capability: interrupts go through the kernel.
    Interrupts {
        /// The offset asked for.
        offset: u16,
    },
    /// Initiate Function-Level Reset: resets are the kernel's.
    Reset,
    /// Inside an extended capability that changes isolation or decoding (ACS, ATS, SR-IOV,
    /// PRI, Multicast, Resizable BAR, VF Resizable BAR).
    Isolation {
        /// The capability ID.
        capability: u16,
    },
}

/// Command register bits an owner may set (I/O, memory, special cycles off, parity, SERR,
/// fast back-to-back, INTx disable); Bus Master Enable (bit 2) stays the kernel's.
pub(crate) const OWNER_COMMAND_BITS: u16 = 0x0001 | 0x0002 | 0x0040 | 0x0100 | 0x0200 | 0x0400;

/// Length in bytes the check treats as belonging to a standard capability.
fn capability_span(id: CapabilityId) -> Option<u16> {
    match id {
        // Control, address (64-bit), data, mask and pending bits: at most 24 bytes.
        CapabilityId::Msi => Some(24),
        // Control, table and PBA offsets.
        CapabilityId::MsiX => Some(12),
        _ => None,
    }
}

/// Checks a `width`-byte write at `offset` of `device`'s config space.
pub(crate) fn check_write(
    device: &PciDevice,
    offset: u16,
    width: u16,
    extended: bool,
) -> Result<(), ConfigDenied> {
    let limit = if extended { 4096 } else { 256 };
    if !matches!(width, 1 | 2 | 4)
        || !offset.is_multiple_of(width)
        || offset.checked_add(width).is_none_or(|end| end > limit)
    {
        return Err(ConfigDenied::BadAccess { offset });
    }
    let end = offset + width;
    let overlaps = |start: u16, len: u16| offset < start + len && start < end;
    if offset < 0x40 {
        // Command (0x04-0x05), status (0x06-0x07, write-1-to-clear), cache line size (0x0c),
        // latency timer (0x0d), interrupt line (0x3c) are the owner's; everything else of the
        // header decides decoding or identity.
        let allowed = [(0x04, 4), (0x0c, 2), (0x3c, 1)];
        if !allowed
            .iter()
            .any(|&(start, len)| offset >= start && end <= start + len)
        {
            return Err(ConfigDenied::Header { offset });
        }
        return Ok(());
    }
    for capability in &device.capabilities {
        if let Some(span) = capability_span(capability.id)
            && overlaps(u16::from(capability.offset), span)
        {
            return Err(ConfigDenied::Interrupts { offset });
        }
    }
    if let Some(pcie) = device.pcie {
        // Device Control is at +8; Initiate FLR is its bit 15 (byte +9, bit 7).
        let control = u16::from(pcie.cap_offset) + 8;
        if overlaps(control + 1, 1) {
            return Err(ConfigDenied::Reset);
        }
    }
    for capability in &device.extended_capabilities {
        let id = capability.id();
        // ACS 0x0d, ATS 0x0f, SR-IOV 0x10, Multicast 0x12, PRI 0x13, Resizable BAR 0x15,
        // VF Resizable BAR 0x24.
        if matches!(
            id,
            0x000d | 0x000f | 0x0010 | 0x0012 | 0x0013 | 0x0015 | 0x0024
        ) {
            let start = capability.offset();
            let next = device
                .extended_capabilities
                .iter()
                .map(|c| c.offset())
                .filter(|&o| o > start)
                .min()
                .unwrap_or(4096);
            if overlaps(start, next - start) {
                return Err(ConfigDenied::Isolation { capability: id });
            }
        }
    }
    Ok(())
}

/// The Command value actually written for an owner's `value`: the owner's bits from `value`,
/// Bus Master Enable as the kernel has it in `current`, the rest zero.
pub(crate) fn command_for_owner(value: u16, current: u16) -> u16 {
    (value & OWNER_COMMAND_BITS) | (current & 0x0004)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::capabilities::{Capability, ExtendedCapability};
    use crate::pci::device::{DeviceKind, PcieInfo, PortType};
    use pci_types::HeaderType;

    /// An nvme-like endpoint: MSI at 0x40, PCIe at 0x60, MSI-X at 0x80, ACS at 0x100, a
    /// vendor-specific extended capability at 0x140, Resizable BAR at 0x180.
    fn device() -> PciDevice {
        PciDevice {
            bdf: "0000:01:00.0".parse().unwrap(),
            vendor: 0x1b36,
            device: 0x0010,
            class: 0x010802,
            revision: 2,
            header_type: HeaderType::Endpoint,
            multifunction: false,
            kind: DeviceKind::Pcie(PortType::Endpoint),
            secondary_bus: None,
            subordinate_bus: None,
            bars: alloc::vec::Vec::new(),
            capabilities: alloc::vec![
                Capability {
                    id: CapabilityId::Msi,
                    offset: 0x40
                },
                Capability {
                    id: CapabilityId::Pcie,
                    offset: 0x60
                },
                Capability {
                    id: CapabilityId::MsiX,
                    offset: 0x80
                },
            ],
            extended_capabilities: alloc::vec![
                ExtendedCapability::Other {
                    id: 0x000d,
                    offset: 0x100
                },
                ExtendedCapability::Other {
                    id: 0x000b,
                    offset: 0x140
                },
                ExtendedCapability::Other {
                    id: 0x0015,
                    offset: 0x180
                },
            ],
            pcie: Some(PcieInfo {
                port_type: PortType::Endpoint,
                cap_offset: 0x60,
            }),
        }
    }

    #[test]
    fn the_owners_registers_are_writable() {
        let d = device();
        for (offset, width) in [
            (0x04, 2),
            (0x04, 4),
            (0x06, 2),
            (0x0c, 1),
            (0x0d, 1),
            (0x3c, 1),
        ] {
            assert_eq!(
                check_write(&d, offset, width, true),
                Ok(()),
                "{offset:#x}/{width}"
            );
        }
        // Device Control low byte (not Initiate FLR), vendor-specific space.
        assert_eq!(check_write(&d, 0x68, 1, true), Ok(()));
        assert_eq!(check_write(&d, 0x140, 4, true), Ok(()));
        assert_eq!(check_write(&d, 0xf0, 4, true), Ok(()));
        // The last dword of extended config space (on a function whose last extended
        // capability is harmless), and of conventional config space.
        let mut plain = device();
        plain.extended_capabilities.truncate(2);
        assert_eq!(check_write(&plain, 0xffc, 4, true), Ok(()));
        assert_eq!(check_write(&d, 0xfc, 4, false), Ok(()));
    }

    #[test]
    fn writes_that_break_isolation_are_refused() {
        let d = device();
        for offset in [0x10, 0x14, 0x24, 0x30, 0x18, 0x00, 0x08] {
            assert_eq!(
                check_write(&d, offset, 4, true),
                Err(ConfigDenied::Header { offset }),
                "{offset:#x}"
            );
        }
        for offset in [0x40, 0x44, 0x4c, 0x54, 0x80, 0x88] {
            assert_eq!(
                check_write(&d, offset, 4, true),
                Err(ConfigDenied::Interrupts { offset }),
                "{offset:#x}"
            );
        }
        assert_eq!(check_write(&d, 0x68, 2, true), Err(ConfigDenied::Reset));
        assert_eq!(check_write(&d, 0x69, 1, true), Err(ConfigDenied::Reset));
        assert_eq!(
            check_write(&d, 0x104, 4, true),
            Err(ConfigDenied::Isolation { capability: 0x000d })
        );
        assert_eq!(
            check_write(&d, 0x188, 4, true),
            Err(ConfigDenied::Isolation { capability: 0x0015 })
        );
    }

    #[test]
    fn bad_accesses_are_refused() {
        let d = device();
        for (offset, width, extended) in [
            (0x05, 2, true),
            (0x06, 4, true),
            (0xffe, 4, true),
            (0x100, 4, false),
            (0x04, 3, true),
        ] {
            assert_eq!(
                check_write(&d, offset, width, extended),
                Err(ConfigDenied::BadAccess { offset }),
                "{offset:#x}/{width}"
            );
        }
    }

    #[test]
    fn command_writes_keep_the_kernels_bus_master_bit() {
        // I/O, memory, parity, SERR, fast back-to-back, INTx disable.
        assert_eq!(command_for_owner(0xffff, 0x0000), 0x0743);
        assert_eq!(command_for_owner(0x0000, 0x0004), 0x0004);
        assert_eq!(command_for_owner(0x0006, 0x0000), 0x0002);
    }
}

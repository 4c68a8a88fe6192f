//! Finding the virtio structures (virtio 1.2 section 4.1.4): vendor-specific PCI capabilities
//! (ID 0x09) that name a BAR, an offset and a length for the common configuration, the
//! notification area, the ISR byte and the device-specific configuration. Read through config
//! reads only; every structure is checked to lie inside its memory BAR.

use crate::{TransportError, VirtioPciAccess};

/// PCI capability ID of a virtio structure.
const CAPABILITY_VENDOR: u8 = 0x09;
/// Status register bit: the function has a capability list.
const STATUS_CAPABILITIES: u32 = 1 << 20;
/// Most capabilities a 256-byte config space can hold (each at least 4 bytes past 0x40).
const MAX_CAPABILITIES: usize = 48;
/// Length of `struct virtio_pci_cap`.
const CAP_LEN: u8 = 16;
/// Length of `struct virtio_pci_notify_cap` (the cap plus `notify_off_multiplier`).
const NOTIFY_CAP_LEN: u8 = 20;
/// Register bytes of the common configuration the transport uses (up to `queue_device`).
pub(crate) const COMMON_LEN: u64 = 0x38;

/// Which virtio structure (`cfg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructureKind {
    /// Common configuration (`cfg_type` 1).
    Common,
    /// Notifications (`cfg_type` 2).
    Notify,
    /// ISR status (`cfg_type` 3).
    Isr,
    /// Device-specific configuration (`cfg_type` 4).
    Device,
}

impl StructureKind {
    fn from_type(cfg_type: u8) -> Option<Self> {
        match cfg_type {
            1 => Some(Self::Common),
            2 => Some(Self::Notify),
            3 => Some(Self::Isr),
            4 => Some(Self::Device),
            _ => None,
        }
    }

    fn minimum_len(self) -> u64 {
        match self {
            Self::Common => COMMON_LEN,
            Self::Notify => 2,
            Self::Isr => 1,
            Self::Device => 0,
        }
    }
}

/// One structure: a range of one memory BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// BAR index (0..=5).
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The structures of one virtio PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioStructures {
    /// Common configuration.
    pub common: Region,
    /// Notification area.
    pub notify: Region,
    /// Bytes between two queues' notify addresses per unit of `queue_notify_off`.
    pub notify_multiplier: u32,
    /// ISR status.
    pub isr: Region,
    /// Device-specific configuration, if the device has one.
    pub device: Option<Region>,
}

fn byte(dword: u32, index: u32) -> u8 {
    (dword >> (8 * index)) as u8
}

impl VirtioStructures {
    /// Walks the capability list of `access`'s function. The first usable capability of each
    /// kind wins (the spec's order of preference); one naming a BAR that is not a memory BAR is
    /// skipped, one that lies outside its BAR is an error.
    pub fn find(access: &impl VirtioPciAccess) -> Result<Self, TransportError> {
        let mut found: [Option<(Region, u32)>; 4] = [None; 4];
        if access.config_read32(0x04) & STATUS_CAPABILITIES == 0 {
            return Err(TransportError::Missing(StructureKind::Common));
        }
        let mut pointer = byte(access.config_read32(0x34), 0);
        let mut seen = 0;
        while pointer != 0 {
            if pointer < 0x40 || !pointer.is_multiple_of(4) || seen == MAX_CAPABILITIES {
                return Err(TransportError::BadCapabilityList { pointer });
            }
            seen += 1;
            let at = u16::from(pointer);
            let header = access.config_read32(at);
            if byte(header, 0) == CAPABILITY_VENDOR {
                Self::note(access, at, header, &mut found)?;
            }
            pointer = byte(header, 1);
        }
        let take = |kind: StructureKind| found[kind as usize].ok_or(TransportError::Missing(kind));
        let (common, _) = take(StructureKind::Common)?;
        let (notify, notify_multiplier) = take(StructureKind::Notify)?;
        let (isr, _) = take(StructureKind::Isr)?;
        let device = found[StructureKind::Device as usize].map(|(region, _)| region);
        Ok(Self {
            common,
            notify,
            notify_multiplier,
            isr,
            device,
        })
    }

    /// Records the capability at `at` if it is the first usable one of its kind.
    fn note(
        access: &impl VirtioPciAccess,
        at: u16,
        header: u32,
        found: &mut [Option<(Region, u32)>; 4],
    ) -> Result<(), TransportError> {
        let len = byte(header, 2);
        let Some(kind) = StructureKind::from_type(byte(header, 3)) else {
            return Ok(()); // PCI config access, shared memory, vendor data: not used here
        };
        let needed = if kind == StructureKind::Notify {
            NOTIFY_CAP_LEN
        } else {
            CAP_LEN
        };
        if len < needed || at + u16::from(needed) > 0x100 {
            return Err(TransportError::BadCapability { at: at as u8, len });
        }
        if found[kind as usize].is_some() {
            return Ok(());
        }
        let bar = byte(access.config_read32(at + 4), 0);
        let offset = u64::from(access.config_read32(at + 8));
        let region_len = u64::from(access.config_read32(at + 12));
        let multiplier = if kind == StructureKind::Notify {
            access.config_read32(at + 16)
        } else {
            0
        };
        let Some(bar_len) = (bar <= 5).then(|| access.bar_len(bar)).flatten() else {
            return Ok(()); // the spec: ignore a capability naming a reserved BAR value
        };
        let region = Region {
            bar,
            offset,
            len: region_len,
        };
        if offset
            .checked_add(region_len)
            .is_none_or(|end| end > bar_len)
        {
            return Err(TransportError::OutsideBar {
                kind,
                bar,
                offset,
                len: region_len,
            });
        }
        if region_len < kind.minimum_len() {
            return Err(TransportError::TooShort {
                kind,
                len: region_len,
            });
        }
        found[kind as usize] = Some((region, multiplier));
        Ok(())
    }
}

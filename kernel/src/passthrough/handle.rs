//! Device handles: [`Parked`] (opened, can only bind) and [`Bound`] (owned: attach, BARs,
//! config space, bus mastering, fault events). Neither is `Clone`; a failed bind hands the
//! parked handle back; dropping a bound handle starts the release (bus mastering off, reset,
//! blocked), which the kernel finishes as deferred work.

use super::config::{self, ConfigDenied};
use super::registry::with_registry;
use super::{Owner, PassthroughError};
use crate::dma::RegisterWindow;
use crate::pci::bar::BarKind;
use crate::pci::capabilities::CapabilityId;
use crate::pci::{ConfigAccess, ConfigAccessExt};
use crate::vtd::IoAddressSpace;
use core::marker::PhantomData;
use moat_iommu::Bdf;
use moat_iommu::ownership::{AddressSpaceId, DeviceState, EventBatch, GroupState, OwnerId};

/// An opened device that is not yet anyone's: it can only [`bind`](Parked::bind).
#[derive(Debug)]
pub struct Parked {
    bdf: Bdf,
}

/// Opens `bdf`: a parked handle, or why not (not registered, a bridge, already open, owned by
/// firmware through an RMRR, quarantined).
pub fn open(bdf: Bdf) -> Result<Parked, PassthroughError> {
    with_registry(|registry| {
        let record = registry.record(bdf)?;
        if record.device.is_bridge() {
            return Err(PassthroughError::NotAssignable(bdf, "a bridge"));
        }
        if crate::vtd::has_reserved_memory(record.group) {
            return Err(PassthroughError::NotAssignable(
                bdf,
                "its group keeps an RMRR identity map for the firmware",
            ));
        }
        registry.transition(|table| table.open(bdf))?;
        Ok(Parked { bdf })
    })
}

impl Parked {
    /// The device.
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// Claims the device's group for `owner`. Fails with `Busy` (handing the parked handle
    /// back, the current owner undisturbed) if another owner or the kernel's DMA API uses the
    /// group; refuses a device with MSI/MSI-X when interrupts are not remapped unless
    /// `iommu.allow_unsafe_interrupts` was given.
    pub fn bind(self, owner: &Owner) -> Result<Bound, (PassthroughError, Parked)> {
        let bdf = self.bdf;
        let result = with_registry(|registry| {
            let record = registry.record(bdf)?;
            let uses_msi = record.device.capability(CapabilityId::Msi).is_some()
                || record.device.capability(CapabilityId::MsiX).is_some();
            if uses_msi && !registry.interrupt_remapping && !registry.allow_unsafe_interrupts {
                return Err(PassthroughError::UnsafeInterrupts(bdf));
            }
            let group = record.group;
            registry.transition(|table| table.bind(owner.id(), bdf))?;
            registry.owner_names.insert(owner.id(), owner.name());
            Ok(group)
        });
        match result {
            Ok(group) => {
                core::mem::forget(self);
                Ok(Bound {
                    bdf,
                    owner: owner.id(),
                    group,
                })
            }
            Err(error) => Err((error, self)),
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let bdf = self.bdf;
        let _ = with_registry(|registry| registry.transition(|table| table.close(bdf)));
    }
}

/// A device bound to an owner. The owner captured at bind stays fixed until the handle is
/// dropped (or the owner goes away).
#[derive(Debug)]
pub struct Bound {
    bdf: Bdf,
    owner: OwnerId,
    group: u32,
}

/// One memory BAR of a bound device, valid while the handle is borrowed.
#[derive(Debug)]
pub struct BarWindow<'a> {
    window: RegisterWindow,
    _handle: PhantomData<&'a Bound>,
}

/// The window's registers: [`RegisterWindow`]'s bounds-checked accessors.
impl AsRef<RegisterWindow> for BarWindow<'_> {
    fn as_ref(&self) -> &RegisterWindow {
        &self.window
    }
}

impl BarWindow<'_> {
    /// The mapped window without the borrow: only for [`DriverDevice`](super::DriverDevice),
    /// which keeps its windows in the same value as the handle and drops them first.
    pub(super) fn into_window(self) -> RegisterWindow {
        self.window
    }
}

impl core::ops::Deref for BarWindow<'_> {
    type Target = RegisterWindow;

    fn deref(&self) -> &RegisterWindow {
        &self.window
    }
}

impl Bound {
    /// The device.
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// The device's IOMMU group.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Devices of the group the owner holds (`owner_cnt`).
    pub fn owner_count(&self) -> u32 {
        let group = moat_iommu::ownership::GroupId::new(self.group);
        with_registry(|registry| {
            Ok(match registry.table.group_state(group) {
                Some(GroupState::Owned { devices, .. }) => devices,
                _ => 0,
            })
        })
        .unwrap_or(0)
    }

    /// The device's state now (quarantine shows here).
    pub fn state(&self) -> Option<DeviceState> {
        with_registry(|registry| Ok(registry.table.device(self.bdf).map(|v| v.state)))
            .ok()
            .flatten()
    }

    /// Fails unless the device is still this handle's (not quarantined, not released).
    pub(super) fn live(&self) -> Result<(), PassthroughError> {
        match self.state() {
            Some(DeviceState::Bound { owner } | DeviceState::Attached { owner, .. })
                if owner == self.owner =>
            {
                Ok(())
            }
            Some(DeviceState::Quarantined { .. }) => Err(PassthroughError::Quarantined(self.bdf)),
            _ => Err(PassthroughError::Released(self.bdf)),
        }
    }

    /// Attaches the device to `space`: every requester ID of its group now translates through
    /// the space (a group has one space; a second device of the group joins the same one).
    pub fn attach(&mut self, space: &IoAddressSpace) -> Result<(), PassthroughError> {
        self.live()?;
        let (bdf, owner, group) = (self.bdf, self.owner, self.group);
        let id = AddressSpaceId::new(space.id());
        with_registry(|registry| {
            // A quarantined or releasing device of the group must stay blocked: attaching a
            // sibling would point its requester IDs (shared with the group) at a live space.
            if let Some(blocked) = registry.group_members(group).into_iter().find(|member| {
                matches!(
                    registry.table.device(*member).map(|v| v.state),
                    Some(DeviceState::Quarantined { .. } | DeviceState::Releasing { .. })
                )
            }) {
                return Err(PassthroughError::GroupUnsettled(blocked));
            }
            if registry.table.address_space(id).is_none() {
                registry.transition(|table| table.create_address_space(id, owner))?;
            }
            registry.transition(|table| table.attach(owner, bdf, id))?;
            let already = crate::vtd::attachment(group).map(|(space, _)| space);
            let hardware = match already {
                Some(current) if current == space.id() => Ok(()),
                Some(_) => Err(PassthroughError::GroupAttachedElsewhere(group)),
                None => crate::vtd::groups::attach(group, space)
                    .map(|_| ())
                    .map_err(PassthroughError::Remapping),
            };
            if let Err(error) = hardware {
                let _ = registry.transition(|table| table.detach(owner, bdf));
                return Err(error);
            }
            Ok(())
        })
    }

    /// Detaches the device: bus mastering off, and the group back to the blocking domain once
    /// no other device of it is attached.
    pub fn detach(&mut self) -> Result<(), PassthroughError> {
        self.live()?;
        let (bdf, owner, group) = (self.bdf, self.owner, self.group);
        super::bus_master(bdf, false)?;
        with_registry(|registry| {
            if !matches!(
                registry.table.device(bdf).map(|v| v.state),
                Some(DeviceState::Attached { owner: holder, .. }) if holder == owner
            ) {
                return registry.transition(|table| table.detach(owner, bdf));
            }
            // Hardware first: if the group cannot be blocked, the table keeps saying attached.
            if !registry.other_member_attached(group, bdf) {
                crate::vtd::groups::detach(group).map_err(PassthroughError::Remapping)?;
            }
            registry.transition(|table| table.detach(owner, bdf))
        })
    }

    /// Turns bus mastering on (only while attached: DMA goes through the owner's space) or
    /// off.
    pub fn set_bus_master(&self, on: bool) -> Result<(), PassthroughError> {
        self.live()?;
        if on && !matches!(self.state(), Some(DeviceState::Attached { .. })) {
            return Err(PassthroughError::NotAttached(self.bdf));
        }
        super::bus_master(self.bdf, on)
    }

    /// Maps memory BAR `index` (memory decoding is turned on). Never the IOMMU's registers,
    /// never a range another device decodes.
    pub fn bar(&self, index: u8) -> Result<BarWindow<'_>, PassthroughError> {
        self.live()?;
        let bdf = self.bdf;
        let bar = with_registry(|registry| {
            let record = registry.record(bdf)?;
            let bar = record
                .device
                .bars
                .iter()
                .find(|b| b.index == index)
                .copied()
                .ok_or(PassthroughError::NoSuchBar(bdf, index))?;
            if !matches!(bar.kind, BarKind::Memory32 | BarKind::Memory64) || bar.address == 0 {
                return Err(PassthroughError::NoSuchBar(bdf, index));
            }
            let end = bar.address + bar.size;
            let overlaps = |start: u64, len: u64| bar.address < start + len && start < end;
            if crate::vtd::unit_register_windows()
                .into_iter()
                .any(|(start, len)| overlaps(start, len))
            {
                return Err(PassthroughError::BarConflict(bdf, index));
            }
            let clash = crate::devices::all().is_some_and(|all| {
                all.devices.iter().filter(|d| d.bdf != bdf).any(|d| {
                    d.bars.iter().any(|other| {
                        matches!(other.kind, BarKind::Memory32 | BarKind::Memory64)
                            && other.address != 0
                            && overlaps(other.address, other.size)
                    })
                })
            });
            if clash {
                return Err(PassthroughError::BarConflict(bdf, index));
            }
            Ok(bar)
        })?;
        let config = super::config_space()?;
        let command = config.command(bdf) | pci_types::CommandRegister::MEMORY_ENABLE;
        config.write_command(bdf, command);
        let window = RegisterWindow::map(bar.address, bar.size)
            .map_err(|e| PassthroughError::Mapping(alloc::format!("{e:?}")))?;
        Ok(BarWindow {
            window,
            _handle: PhantomData,
        })
    }

    /// Reads a config dword (free).
    pub fn config_read32(&self, offset: u16) -> Result<u32, PassthroughError> {
        self.live()?;
        if !offset.is_multiple_of(4) || offset >= 4096 {
            return Err(PassthroughError::Config(ConfigDenied::BadAccess { offset }));
        }
        Ok(super::config_space()?.read32(self.bdf, offset))
    }

    /// Writes `width` (1, 2 or 4) bytes of config space, unless the write could break
    /// isolation (see [`ConfigDenied`]); Command keeps the kernel's bus-master bit.
    pub fn config_write(
        &self,
        offset: u16,
        width: u16,
        value: u32,
    ) -> Result<(), PassthroughError> {
        self.live()?;
        let config = super::config_space()?;
        let device = with_registry(|registry| Ok(registry.record(self.bdf)?.device))?;
        config::check_write(device, offset, width, config.extended())
            .map_err(PassthroughError::Config)?;
        let dword = offset & !3;
        let shift = u32::from(offset & 3) * 8;
        let mask = if width == 4 {
            u32::MAX
        } else {
            ((1u32 << (width * 8)) - 1) << shift
        };
        let mut current = config.read32(self.bdf, dword);
        if dword == 0x04 {
            // Status bits are write-1-to-clear: never write back what was read.
            current &= 0xffff;
        }
        let mut merged = (current & !mask) | ((value << shift) & mask);
        if dword == 0x04 {
            let command = config::command_for_owner(merged as u16, current as u16);
            merged = (merged & 0xffff_0000) | u32::from(command);
        }
        config.write32(self.bdf, dword, merged);
        Ok(())
    }

    /// One MSI vector whose deliveries run `handler` (in interrupt context: keep it short).
    /// With interrupt remapping the vector has its own entry, source-validated against this
    /// device's requester ID; the kernel programs the device's MSI capability.
    pub fn msi(
        &self,
        handler: Option<crate::arch::device_vectors::Callback>,
    ) -> Result<super::interrupts::Interrupt<'_>, PassthroughError> {
        self.live()?;
        let allow_unsafe = with_registry(|registry| Ok(registry.allow_unsafe_interrupts))?;
        super::interrupts::msi(self.bdf, handler, allow_unsafe)
    }

    /// MSI-X table entry `index`, delivering to `handler`, with its own remapping entry as for
    /// [`msi`](Self::msi). The kernel writes the table entry through the BAR that holds it.
    pub fn msix(
        &self,
        index: u16,
        handler: Option<crate::arch::device_vectors::Callback>,
    ) -> Result<super::interrupts::Interrupt<'_>, PassthroughError> {
        self.live()?;
        let allow_unsafe = with_registry(|registry| Ok(registry.allow_unsafe_interrupts))?;
        super::interrupts::msix(self.bdf, index, handler, allow_unsafe)
    }

    /// Takes the fault events queued for this device (settling pending faults first), with
    /// the count of events lost since the last take.
    pub fn fault_events(&self) -> Result<EventBatch, PassthroughError> {
        super::settle();
        let (owner, bdf) = (self.owner, self.bdf);
        with_registry(|registry| registry.table.take_events(owner, bdf).map_err(Into::into))
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let (owner, bdf) = (self.owner, self.bdf);
        let _ = with_registry(|registry| {
            if registry.table.release(owner, bdf).is_ok() {
                registry.deferred.push((bdf, owner));
            }
            Ok(())
        });
    }
}

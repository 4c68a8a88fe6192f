//! The passthrough API: how a device is handed to an owner safely.
//!
//! ```text
//! let owner = Owner::new("disk");
//! let dev   = passthrough::open(bdf)?;            // parked: can only bind
//! let mut dev = dev.bind(&owner).map_err(|(e, _parked)| e)?;  // claims the group, or Busy
//! let space = IoAddressSpace::new(48)?;           // IOVA -> buffers, with permissions
//! dev.attach(&space)?;                            // every requester ID of the group -> space
//! let iova = space.map(DmaBuffer::new(4096, 4096)?, Access::ReadWrite)?;
//! let bar  = dev.bar(0)?;                         // this device's registers, nothing else
//! dev.set_bus_master(true)?;                      // only while attached
//! drop(dev);                                      // bus master off, reset, blocked, released
//! ```
//!
//! The rules live in `moat_iommu::ownership` (pure logic, property-tested); this module keeps
//! that table as the kernel's one device registry and does the hardware work each transition
//! asks for. Releases and fault routing run as deferred work ([`settle`]), never inside an
//! interrupt handler or under the registry lock.

mod config;
mod device_dma;
mod driver_device;
mod handle;
mod interrupts;
mod registry;
mod release;
mod virtio_hal;
mod virtqueue;

pub use crate::vtd::Translation;
pub use config::ConfigDenied;
pub use device_dma::{DeviceDma, DmaError, DmaMapping, DmaStats};
pub use driver_device::DriverDevice;
pub use handle::{BarWindow, Bound, Parked, open};
pub use interrupts::Interrupt;
pub use release::settle;
pub use virtio_hal::{SlotError, SlotRegisters, SlotStats, VIRTIO_SLOTS, VirtioHal, VirtioSlot};
pub use virtqueue::{OwnedQueue, QueueError, UsedBuffers};

use crate::cmdline::CommandLine;
use crate::ecam::ConfigSpace;
use crate::pci::ConfigAccess;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use moat_iommu::Bdf;
use moat_iommu::ownership::{DeviceState, OwnerId, OwnershipError};
use registry::with_registry;

/// Why a passthrough operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassthroughError {
    /// The registry is not set up (remapping off: nobody can own a device safely).
    NoRegistry,
    /// No such device in the registry (not translated by any remapping unit).
    NotRegistered(Bdf),
    /// The device cannot be handed to an owner, and why.
    NotAssignable(Bdf, &'static str),
    /// Another owner or the kernel's DMA API uses the group (or the device is open already).
    Busy,
    /// The ownership rules refused the transition.
    Ownership(OwnershipError),
    /// The device uses MSI/MSI-X and interrupts are not remapped
    /// (`iommu.allow_unsafe_interrupts` not given).
    UnsafeInterrupts(Bdf),
    /// The device was quarantined after DMA faults.
    Quarantined(Bdf),
    /// The handle's device was released (its owner went away).
    Released(Bdf),
    /// Bus mastering needs the device attached to an address space.
    NotAttached(Bdf),
    /// The group is attached to another address space.
    GroupAttachedElsewhere(u32),
    /// No memory BAR with that index.
    NoSuchBar(Bdf, u8),
    /// The BAR overlaps the IOMMU's registers or another device's BAR.
    BarConflict(Bdf, u8),
    /// Mapping a BAR failed.
    Mapping(String),
    /// A config write that could break isolation.
    Config(ConfigDenied),
    /// The remapping hardware refused or failed.
    Remapping(crate::vtd::VtdError),
    /// No config space access.
    NoConfigSpace,
    /// The registry was set up already (it is set up once).
    AlreadyInitialised,
    /// A device of the group is quarantined or being released: the group stays blocked.
    GroupUnsettled(Bdf),
    /// An MSI vector could not be set up, and why.
    Interrupts(String),
}

impl From<OwnershipError> for PassthroughError {
    fn from(error: OwnershipError) -> Self {
        match error {
            OwnershipError::Busy => Self::Busy,
            other => Self::Ownership(other),
        }
    }
}

static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

/// A party that owns devices. Not `Clone`. Its devices are released when their handles are
/// dropped (a handle outliving its owner keeps the device until then).
#[derive(Debug)]
pub struct Owner {
    id: OwnerId,
    name: &'static str,
}

impl Owner {
    /// A new owner named `name` (for reports).
    ///
    /// # Panics
    ///
    /// After 2^32 - 1 owners: an ID is never handed out twice (two owners sharing one would
    /// pass each other's "same owner" checks), so running out ends the run instead.
    pub fn new(name: &'static str) -> Self {
        let id = NEXT_OWNER
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| id.checked_add(1))
            .expect("owner IDs exhausted: an ID is never reused");
        Self {
            id: OwnerId::new(id),
            name,
        }
    }

    /// The owner's number.
    pub fn id(&self) -> OwnerId {
        self.id
    }

    /// The owner's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for Owner {
    /// Devices still held through live handles stay held: their release runs when the handle
    /// is dropped, after every BAR window and MSI vector borrowed from it is gone. Releasing
    /// them here would let those borrows reach the device after it moved to a new owner.
    fn drop(&mut self) {
        let owner = self.id;
        let held = with_registry(|registry| {
            Ok(registry
                .table
                .devices()
                .filter(|view| view.state.owner() == Some(owner))
                .count())
        })
        .unwrap_or(0);
        if held > 0 {
            crate::warn!(
                "registry",
                "owner {owner} ({}) went away holding {held} device(s); each is released when its handle is dropped",
                self.name
            );
        }
    }
}

/// A use of a device by the kernel's own DMA API: while it lives, no owner can bind any
/// device of the group.
#[derive(Debug)]
pub struct KernelDmaUse {
    bdf: Bdf,
}

/// Registers a kernel DMA-API use of `bdf` (fails with `Busy` if an owner holds its group).
/// Only the kernel and its composition root use the DMA API, so it takes the root's capability.
pub fn kernel_dma(
    _root: &crate::privilege::Privileged,
    bdf: Bdf,
) -> Result<KernelDmaUse, PassthroughError> {
    with_registry(|registry| registry.transition(|table| table.claim_kernel_dma(bdf)))?;
    Ok(KernelDmaUse { bdf })
}

impl Drop for KernelDmaUse {
    fn drop(&mut self) {
        let bdf = self.bdf;
        let _ =
            with_registry(|registry| registry.transition(|table| table.release_kernel_dma(bdf)));
    }
}

/// Sets up the registry over the devices remapping placed. Call after `vtd::init`.
///
/// The composition root's alone, once: a second call is refused (it would forget every claim).
pub fn init(
    _root: &crate::privilege::Privileged,
    devices: &[crate::pci::PciDevice],
    options: &CommandLine,
    interrupt_remapping: bool,
) -> Result<usize, PassthroughError> {
    registry::install(
        devices,
        options.fault_limit,
        interrupt_remapping,
        options.allow_unsafe_interrupts,
    )
}

/// One line per registered device (group, state, owner, space, domain), for the report.
pub fn registry_lines() -> Vec<String> {
    with_registry(|registry| Ok(registry.lines())).unwrap_or_default()
}

/// How `bdf`'s last release ended: the reset method and what its check saw, or why it
/// failed.
pub fn last_release(bdf: Bdf) -> Option<String> {
    with_registry(|registry| Ok(registry.last_release.get(&bdf).cloned()))
        .ok()
        .flatten()
}

/// The state's name in the report.
pub(crate) fn state_name(state: DeviceState) -> &'static str {
    match state {
        // What a registered device with no handle is, as far as its DMA goes.
        DeviceState::Registered => "blocked",
        other => other.name(),
    }
}

/// The standard header (16 dwords) of any registered device, read-only, for reports and the
/// release scenario.
pub fn config_for_report(_root: &crate::privilege::Privileged, bdf: Bdf) -> Option<[u32; 16]> {
    let config = crate::ecam::config()?;
    let mut header = [0u32; 16];
    for (i, dword) in header.iter_mut().enumerate() {
        *dword = config.read32(bdf, (i * 4) as u16);
    }
    Some(header)
}

pub(crate) fn config_space() -> Result<&'static ConfigSpace, PassthroughError> {
    crate::ecam::config().ok_or(PassthroughError::NoConfigSpace)
}

/// Writes Command.BME for `bdf` and checks it read back (a config write also closes QEMU's
/// bus-master gate).
pub(crate) fn bus_master(bdf: Bdf, on: bool) -> Result<(), PassthroughError> {
    use crate::pci::reset::{BusMaster, bus_master};
    let state = if on {
        BusMaster::Enabled
    } else {
        BusMaster::Disabled
    };
    bus_master(config_space()?, bdf, state)
        .map_err(|e| PassthroughError::Mapping(alloc::format!("bus mastering: {e}")))
}

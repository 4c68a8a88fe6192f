//! The device registry: one [`OwnershipTable`] (the state machine and group claims, pure logic
//! from `moat_iommu::ownership`) behind one lock, and the work deferred out of handle drops and
//! the fault interrupt. What else the kernel knows of a device is not copied here: its group is
//! the table's, its PCI record the enumeration's. The lock is only ever taken with interrupts off. No reset or sleep runs under it;
//! attach and detach write the group's context entries and wait for their invalidations (short,
//! budgeted polls) under it, so the table and the hardware change together.

use super::PassthroughError;
use crate::cmdline::FaultLimit;
use crate::pci::device::PciDevice;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::num::{NonZeroU32, NonZeroUsize};
use moat_iommu::Bdf;
use moat_iommu::ownership::{FaultPolicy, GroupId, OwnerId, OwnershipError, OwnershipTable};
use spin::Mutex;

/// Fault events kept per device for its owner before further ones are counted as lost.
const EVENT_QUEUE: usize = 64;

/// A registered device as the kernel sees it: its PCI record and its group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub(crate) device: &'static PciDevice,
    pub(crate) group: u32,
}

/// The registry's contents.
#[derive(Debug)]
pub(crate) struct Registry {
    pub(crate) table: OwnershipTable,
    /// Releases to finish outside the lock: (device, owner whose claim ends).
    pub(crate) deferred: Vec<(Bdf, OwnerId)>,
    /// Owner names, for the report.
    pub(crate) owner_names: BTreeMap<OwnerId, &'static str>,
    /// Whether MSI/MSI-X of owned devices are remapped (ECAP.IR, enabled).
    pub(crate) interrupt_remapping: bool,
    /// `iommu.allow_unsafe_interrupts`.
    pub(crate) allow_unsafe_interrupts: bool,
    /// Devices that were quarantined, with why, for the report.
    pub(crate) quarantine_reasons: BTreeMap<Bdf, String>,
    /// How each device's last release ended (reset method and what its check saw).
    pub(crate) last_release: BTreeMap<Bdf, String>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Runs `f` on the registry with interrupts off.
pub(crate) fn with_registry<T>(
    f: impl FnOnce(&mut Registry) -> Result<T, PassthroughError>,
) -> Result<T, PassthroughError> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = REGISTRY.lock();
        match guard.as_mut() {
            Some(registry) => f(registry),
            None => Err(PassthroughError::NoRegistry),
        }
    })
}

/// The fault policy for `limit`.
pub(crate) fn policy(limit: FaultLimit) -> FaultPolicy {
    FaultPolicy::new(
        NonZeroU32::new(limit.count).unwrap_or(NonZeroU32::MIN),
        u64::from(limit.window_ms),
        NonZeroUsize::new(EVENT_QUEUE).unwrap_or(NonZeroUsize::MIN),
    )
}

/// Sets the registry up with every device remapping placed in a group. Devices outside any
/// group (no remapping) are not registered: nobody can own them safely.
pub(crate) fn install(
    devices: &[PciDevice],
    limit: FaultLimit,
    interrupt_remapping: bool,
    allow_unsafe_interrupts: bool,
) -> Result<usize, PassthroughError> {
    let mut registry = Registry {
        table: OwnershipTable::new(policy(limit)),
        deferred: Vec::new(),
        owner_names: BTreeMap::new(),
        interrupt_remapping,
        allow_unsafe_interrupts,
        quarantine_reasons: BTreeMap::new(),
        last_release: BTreeMap::new(),
    };
    for device in devices {
        let Some(group) = crate::vtd::group_of(device.bdf) else {
            continue;
        };
        registry
            .table
            .register(device.bdf, GroupId::new(group))
            .map_err(PassthroughError::Ownership)?;
    }
    let count = registry.table.devices().count();
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut slot = REGISTRY.lock();
        if slot.is_some() {
            return Err(PassthroughError::AlreadyInitialised);
        }
        *slot = Some(registry);
        Ok(count)
    })
}

impl Registry {
    /// The record of registered device `bdf`.
    pub(crate) fn record(&self, bdf: Bdf) -> Result<Record, PassthroughError> {
        let view = self
            .table
            .device(bdf)
            .ok_or(PassthroughError::NotRegistered(bdf))?;
        let device = crate::devices::all()
            .and_then(|all| all.device(bdf))
            .ok_or(PassthroughError::NotRegistered(bdf))?;
        Ok(Record {
            device,
            group: view.group.get(),
        })
    }

    /// Runs a table transition, mapping its error.
    pub(crate) fn transition(
        &mut self,
        f: impl FnOnce(&mut OwnershipTable) -> Result<(), OwnershipError>,
    ) -> Result<(), PassthroughError> {
        f(&mut self.table).map_err(PassthroughError::from)
    }

    /// The members of `group`.
    pub(crate) fn group_members(&self, group: u32) -> Vec<Bdf> {
        self.table
            .devices()
            .filter(|view| view.group == GroupId::new(group))
            .map(|view| view.bdf)
            .collect()
    }

    /// Whether any member of `group` other than `except` is attached.
    pub(crate) fn other_member_attached(&self, group: u32, except: Bdf) -> bool {
        self.table.devices().any(|view| {
            view.group == GroupId::new(group)
                && view.bdf != except
                && view.state.address_space().is_some()
        })
    }

    /// One line per registered device: group, state, owner, address space and domain.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for view in self.table.devices() {
            let (bdf, group) = (&view.bdf, view.group.get());
            let owner = match view.state.owner() {
                Some(owner) => format!(
                    "{owner} ({})",
                    self.owner_names.get(&owner).copied().unwrap_or("gone")
                ),
                None => "-".into(),
            };
            let (space, domain) = match crate::vtd::attachment(group) {
                Some((space, domain)) => (format!("{space}"), format!("{domain}")),
                None => ("-".into(), "blocking".into()),
            };
            let mut line = format!(
                "registry: {bdf} group {group} state {} owner {owner} space {space} domain {domain}",
                super::state_name(view.state)
            );
            if let Some(why) = self.quarantine_reasons.get(bdf) {
                line.push_str(&format!(" ({why})"));
            }
            if crate::vtd::translation_of(group) == crate::vtd::Translation::PassThrough {
                line.push_str(" pass-through: benchmark yardstick, no isolation");
            }
            lines.push(line);
        }
        lines
    }
}

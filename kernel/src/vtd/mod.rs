//! DMA remapping on the running machine: brings up every DRHD unit from the DMAR, points every
//! IOMMU group (every requester ID its devices may use, aliases included) at a blocking domain
//! and the groups of RMRR devices at identity maps before translation starts (`bring_up.rs`),
//! reports faults, and gives the ownership layer address spaces to attach groups to.
//! If remapping cannot be enabled (no or bad DMAR, a unit that does not answer, `iommu=off`),
//! the reason is recorded and DMA isolation is unavailable.

mod address_space;
mod bring_up;
mod domain_ids;
pub mod faults;
pub(crate) mod groups;
pub(crate) mod hw;
pub mod interrupt_remapping;
mod iova;
mod pass_through;
pub mod topology;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use domain_ids::DomainIds;
use groups::GroupContext;
use hw::{KernelTables, MmioRegisters};
use moat_iommu::Bdf;
use moat_iommu::engine::{RemappingUnit, UnitSummary};
use moat_iommu::entries::{ContextEntry, ContextTranslation, DomainId, FaultProcessing};
use moat_iommu::paging::{MapError, PageTable, UnmapError};
use spin::Mutex;

pub(crate) use address_space::SharedSpace;
pub use address_space::{IoAddressSpace, MapFailure};
pub use bring_up::init;
pub use groups::{
    GroupPlacement, attachment, group_of, group_of_requester, members, requester_ids,
};
pub use pass_through::{PassThroughChoice, Translation, translation_of};

/// A remapping unit as the DMAR describes it.
#[derive(Clone, Copy, Debug)]
pub struct UnitDescription {
    /// Register base.
    pub base: u64,
    /// Register window length.
    pub length: u64,
    /// PCI segment.
    pub segment: u16,
}

/// An RMRR: memory `range` that `devices` must keep reaching (identity-mapped).
#[derive(Clone, Debug)]
pub struct ReservedRegion {
    /// Physical range.
    pub range: Range<u64>,
    /// The devices in its scope.
    pub devices: Vec<Bdf>,
}

/// Why a remapping operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VtdError {
    /// Remapping is off; the string says why.
    Off(String),
    /// The device is not behind any remapping unit.
    NotTranslated(Bdf),
    /// The domain belongs to another unit than the device.
    WrongUnit,
    /// Domain IDs exhausted.
    NoDomainIds,
    /// No frames for tables.
    OutOfMemory,
    /// The hardware failed an operation.
    Hardware(String),
    /// A mapping change was refused.
    Map(MapError),
    /// An unmap was refused.
    Unmap(UnmapError),
    /// No group with this number is placed on a unit.
    NoSuchGroup(u32),
    /// The group is attached to an address space already (detach first).
    AlreadyAttached(u32),
    /// The address space has no room for the buffer below its DMA limit.
    NoIovaSpace,
    /// Nothing is mapped at that IOVA.
    NotMapped,
    /// Every address-space number was handed out (numbers are never reused).
    NoSpaceIds,
    /// Two groups claim one requester ID (the group computation and the alias walk disagree).
    SharedRequesterId(u16),
    /// A context change of the group failed half-way and could not be undone; the group is
    /// refused from now on.
    Inconsistent(u32),
}

pub(crate) struct Unit {
    description: UnitDescription,
    engine: RemappingUnit<MmioRegisters>,
    tables: KernelTables,
    blocking: PageTable<KernelTables>,
    blocking_id: DomainId,
    domain_ids: DomainIds,
}

pub(crate) struct State {
    units: Vec<Unit>,
    groups: BTreeMap<u32, GroupContext>,
    device_groups: BTreeMap<Bdf, u32>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static OFF_REASON: spin::Once<String> = spin::Once::new();

/// What `init` did, for the boot report.
#[derive(Debug)]
pub struct Summary {
    /// Per unit: base, segment and engine summary.
    pub units: Vec<(UnitDescription, UnitSummary)>,
    /// Groups placed in the blocking domain, with their requester IDs.
    pub blocked: Vec<GroupPlacement>,
    /// RMRR identity maps made.
    pub identity_mapped: Vec<ReservedRegion>,
    /// What became of each device `iommu.passthrough=` named.
    pub pass_through: Vec<PassThroughChoice>,
}

pub(crate) fn with_state<T>(
    f: impl FnOnce(&mut State) -> Result<T, VtdError>,
) -> Result<T, VtdError> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = STATE.lock();
        match guard.as_mut() {
            Some(state) => f(state),
            None => Err(VtdError::Off(
                off_reason().unwrap_or("remapping not initialised").into(),
            )),
        }
    })
}

/// Why remapping is off, if it is.
pub fn off_reason() -> Option<&'static str> {
    OFF_REASON.get().map(String::as_str)
}

/// Whether DMA isolation is available (remapping enabled on every unit).
pub fn isolation_available() -> bool {
    STATE.lock().is_some()
}

/// Records that remapping is off and says so in one line (the composition root's decision).
pub fn turn_off(_root: &crate::privilege::Privileged, reason: String) {
    crate::error!(
        "dmar",
        "DMA remapping off: {reason}; DMA isolation unavailable"
    );
    OFF_REASON.call_once(|| reason);
}

pub(crate) fn context_for(table: &PageTable<KernelTables>, domain: DomainId) -> ContextEntry {
    let Ok(entry) = ContextEntry::new(
        ContextTranslation::MultiLevel {
            table: table.root(),
        },
        table.levels().context_address_width(),
        domain,
        FaultProcessing::Report,
    ) else {
        unreachable!("table roots are 4 KiB aligned frames");
    };
    entry
}

/// Whether `group` has an RMRR identity map (firmware keeps using its memory; not assignable).
pub fn has_reserved_memory(group: u32) -> bool {
    with_state(|state| Ok(state.groups.get(&group).is_some_and(|c| c.reserved_memory)))
        .unwrap_or(false)
}

/// Every unit's register window (base, length): never handed to anyone as a BAR.
pub fn unit_register_windows() -> Vec<(u64, u64)> {
    with_state(|state| {
        Ok(state
            .units
            .iter()
            .map(|u| (u.description.base, u.description.length.max(4096)))
            .collect())
    })
    .unwrap_or_default()
}

/// Unit `unit`'s root table frame (for reports and the isolation scenarios).
pub fn root_table_address(unit: usize) -> Option<u64> {
    with_state(|state| {
        Ok(state
            .units
            .get(unit)
            .and_then(|u| u.engine.root_table())
            .map(|root| root.as_u64()))
    })
    .ok()
    .flatten()
}

/// A copy of unit `unit`'s root table (4 KiB), read-only, for the isolation scenarios.
pub fn root_table_snapshot(unit: usize) -> Option<Vec<u8>> {
    let root = root_table_address(unit)?;
    let mut bytes = alloc::vec![0u8; 4096];
    // SAFETY: the root table is a frame the remapping code allocated and never frees while
    // remapping is on; it is identity-mapped RAM and reading it changes nothing.
    unsafe { crate::arch::io::read_physical(root, &mut bytes) };
    Some(bytes)
}

/// Domain IDs in use per unit (blocking domains included), for the report.
pub fn domain_ids_in_use() -> Vec<usize> {
    with_state(|state| Ok(state.units.iter().map(|u| u.domain_ids.in_use()).collect()))
        .unwrap_or_default()
}

pub(crate) static INVALIDATIONS: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(0);

/// IOTLB invalidations issued for mapping changes since boot (for the benchmark).
pub fn invalidations() -> u64 {
    INVALIDATIONS.load(core::sync::atomic::Ordering::Relaxed)
}

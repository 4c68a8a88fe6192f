//! Interrupt remapping on the running machine. At bring-up, once translation is on, every unit
//! gets a table of [`TABLE_ENTRIES`] entries with xAPIC destinations, if every unit has ECAP.IR
//! and runs queued invalidation. Afterwards each MSI of a device gets its own entry, accepting
//! only the requester IDs that device's messages carry, held by a [`RemappedVector`] that
//! clears the entry when dropped. If remapping cannot be enabled, the reason is logged and
//! kept: MSIs are then not isolated, and the ownership layer refuses MSI devices unless
//! `iommu.allow_unsafe_interrupts`.

use super::{State, with_state};
use crate::arch::device_vectors::DeviceVector;
use crate::time::Monotonic;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::engine::{InterruptRemapping, InterruptRemappingError};
use moat_iommu::entries::{
    BusRange, InterruptIndex, InterruptTableSize, RemappableMessage, RemappedInterrupt, SourceId,
    SourceValidation,
};

/// Entries per unit: one 4 KiB table.
pub const TABLE_ENTRIES: u32 = 256;

/// Per unit (same index as the remapping state's units), its table once enabled. Locked only
/// inside `with_state`, after the remapping state, with interrupts off.
static TABLES: spin::Mutex<Vec<Option<InterruptRemapping>>> = spin::Mutex::new(Vec::new());
/// Every live entry: (unit, entry, the device it accepts). Locked like `TABLES`. A device's
/// release revokes whatever is still here for it (an `Interrupt` its owner leaked with
/// `mem::forget` never frees its entry itself).
static LIVE: spin::Mutex<Vec<(usize, InterruptIndex, Bdf)>> = spin::Mutex::new(Vec::new());
/// Entries per unit, or why remapping is off; set once by `enable`.
static STATUS: spin::Once<Result<u32, String>> = spin::Once::new();

/// Why an MSI could not get a remapping entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// Interrupt remapping is off; the string says why.
    Unavailable(String),
    /// The device is not behind a remapping unit.
    NotTranslated(Bdf),
    /// The device's requester IDs give no usable source validation.
    NoSource(Bdf),
    /// The engine refused (table full, invalidation failed, ...).
    Engine(InterruptRemappingError),
}

/// Enables interrupt remapping on every unit of `state` (called once by `bring_up`, after
/// translation). Never fails bring-up: on any problem every unit is left without it, and the
/// reason is logged and kept for [`status`].
pub(super) fn enable(state: &mut State) {
    let result = enable_all(state);
    match &result {
        Ok(entries) => crate::info!(
            "dmar",
            "interrupt remapping enabled ({entries} entries, xAPIC)"
        ),
        Err(reason) => crate::warn!(
            "dmar",
            "interrupt remapping off: {reason}; MSIs are not isolated (MSI devices need \
             iommu.allow_unsafe_interrupts)"
        ),
    }
    STATUS.call_once(|| result);
}

fn enable_all(state: &mut State) -> Result<u32, String> {
    let Some(size) = InterruptTableSize::new(TABLE_ENTRIES) else {
        unreachable!("256 entries is a valid table size");
    };
    for (index, unit) in state.units.iter().enumerate() {
        if !unit.engine.extended_capability().interrupt_remapping() {
            return Err(format!(
                "unit {index} at {:#x} lacks ECAP.IR",
                unit.description.base
            ));
        }
    }
    let mut tables = Vec::new();
    let mut failure = None;
    for (index, unit) in state.units.iter_mut().enumerate() {
        match InterruptRemapping::enable(&mut unit.engine, &mut unit.tables, &Monotonic, size) {
            Ok(table) => tables.push(Some(table)),
            Err(error) => {
                failure = Some(format!(
                    "unit {index} at {:#x}: {error}",
                    unit.description.base
                ));
                break;
            }
        }
    }
    if let Some(reason) = failure {
        // All or nothing: turn it off again where it came on.
        for (unit, table) in state.units.iter_mut().zip(tables) {
            if let Some(table) = table
                && let Err(error) = table.disable(&mut unit.engine, &mut unit.tables, &Monotonic)
            {
                crate::error!(
                    "dmar",
                    "unit at {:#x}: interrupt remapping could not be turned off: {error}",
                    unit.description.base
                );
            }
        }
        return Err(reason);
    }
    *TABLES.lock() = tables;
    Ok(TABLE_ENTRIES)
}

/// Entries per unit when interrupt remapping is on, else why not.
pub fn status() -> Result<u32, &'static str> {
    if let Some(reason) = super::off_reason() {
        return Err(reason);
    }
    match STATUS.get() {
        Some(Ok(entries)) => Ok(*entries),
        Some(Err(reason)) => Err(reason.as_str()),
        None => Err("interrupt remapping not initialised"),
    }
}

/// What an entry for a device whose requests carry `sources` (own ID first, then bridge
/// aliases) must accept: exactly its requester ID, or with aliases the buses they span
/// (SVT = 10), since a PCIe-to-PCI bridge may forward with its alias or the device's own ID.
///
/// QEMU 7.2 reads a bus range backwards (SID[15:8] as the last bus, SID[7:0] as the first;
/// the spec and Linux have start in 15:8), so there only single-bus ranges work. One bridge
/// level gives one: the device and its alias sit on the bridge's secondary bus.
fn source_validation(sources: &[u16]) -> Option<SourceValidation> {
    match sources {
        [] => None,
        [only] => Some(SourceValidation::exact(SourceId::from_raw(*only))),
        many => {
            let buses = many.iter().map(|source| (source >> 8) as u8);
            let first = buses.clone().min()?;
            let last = buses.max()?;
            BusRange::new(first, last).map(SourceValidation::BusRange)
        }
    }
}

/// Gives `vector` a remapping entry on `device`'s unit that delivers it, fixed and
/// edge-triggered, to this CPU, and accepts only `device`'s requests (see
/// [`RemappedVector`]). On failure the vector is handed back.
pub(crate) fn allocate(
    device: Bdf,
    vector: DeviceVector,
) -> Result<RemappedVector, (InterruptError, DeviceVector)> {
    if let Err(reason) = status() {
        return Err((InterruptError::Unavailable(reason.into()), vector));
    }
    let apic_id = crate::arch::apic::id();
    let allocated = with_state(|state| Ok(allocate_in(state, device, &vector, apic_id)));
    match allocated {
        Ok(Ok((unit, handle, source))) => Ok(RemappedVector {
            unit,
            handle,
            source,
            vector: Some(vector),
        }),
        Ok(Err(error)) => Err((error, vector)),
        Err(error) => Err((InterruptError::Unavailable(format!("{error:?}")), vector)),
    }
}

/// Writes the entry for `vector` of `device` into its unit's table.
fn allocate_in(
    state: &mut State,
    device: Bdf,
    vector: &DeviceVector,
    apic_id: u8,
) -> Result<(usize, InterruptIndex, SourceValidation), InterruptError> {
    let group = state
        .device_groups
        .get(&device)
        .ok_or(InterruptError::NotTranslated(device))?;
    let unit_index = state.groups[group].unit;
    // The requester IDs this device's messages may carry: its own, then the bridge aliases
    // above it (the MSI requester ID follows the DMA alias rules, facts B.1).
    let sources = crate::devices::all()
        .map(|all| super::topology::dma_sources(all, device))
        .ok_or(InterruptError::NotTranslated(device))?;
    let source = source_validation(&sources).ok_or(InterruptError::NoSource(device))?;
    let interrupt = RemappedInterrupt::fixed(vector.interrupt_vector(), apic_id, source);
    let unit = &mut state.units[unit_index];
    let mut tables = TABLES.lock();
    let table = tables
        .get_mut(unit_index)
        .and_then(Option::as_mut)
        .ok_or(InterruptError::Unavailable("the unit has no table".into()))?;
    let handle = table
        .allocate(&mut unit.engine, &mut unit.tables, &Monotonic, interrupt)
        .map_err(InterruptError::Engine)?;
    LIVE.lock().push((unit_index, handle, device));
    Ok((unit_index, handle, source))
}

/// One MSI's interrupt remapping entry, owning the vector it delivers. Not `Clone`: whoever
/// holds it owns the entry. Dropping it clears the entry (P first) and invalidates it in the
/// unit's interrupt entry cache before the vector is freed; if that fails, entry and vector
/// stay reserved for good (and it is logged), so neither is ever reused while live.
#[derive(Debug)]
pub struct RemappedVector {
    unit: usize,
    handle: InterruptIndex,
    source: SourceValidation,
    /// Taken only by `drop`, to leak it when the entry could not be cleared.
    vector: Option<DeviceVector>,
}

impl RemappedVector {
    fn device_vector(&self) -> &DeviceVector {
        let Some(vector) = &self.vector else {
            unreachable!("only drop takes the vector");
        };
        vector
    }

    /// The MSI address and data that select this entry (remappable format, SHV = 0, data 0):
    /// what the device's MSI capability must hold.
    pub fn msi_message(&self) -> (u32, u32) {
        let message = RemappableMessage::new(self.handle);
        (message.address(), message.data())
    }

    /// The entry's index (the handle in the message).
    pub fn handle(&self) -> u16 {
        self.handle.get()
    }

    /// The CPU vector it delivers.
    pub fn vector(&self) -> u8 {
        self.device_vector().number()
    }

    /// Deliveries on that vector since it was handed out.
    pub fn deliveries(&self) -> u64 {
        self.device_vector().deliveries()
    }

    /// The requests the entry accepts.
    pub fn source(&self) -> SourceValidation {
        self.source
    }
}

impl Drop for RemappedVector {
    fn drop(&mut self) {
        let (unit_index, handle) = (self.unit, self.handle);
        let result = with_state(|state| {
            let mut live = LIVE.lock();
            let Some(at) = live
                .iter()
                .position(|(unit, index, _)| *unit == unit_index && *index == handle)
            else {
                // Revoked at its device's release already.
                return Ok(Ok(()));
            };
            live.remove(at);
            drop(live);
            let unit = &mut state.units[unit_index];
            let mut tables = TABLES.lock();
            Ok(match tables.get_mut(unit_index).and_then(Option::as_mut) {
                Some(table) => table
                    .release(&mut unit.engine, &mut unit.tables, &Monotonic, handle)
                    .map_err(|error| format!("{error}")),
                None => Err("the unit has no table".into()),
            })
        });
        let failure = match result {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(error) => format!("{error:?}"),
        };
        crate::error!(
            "dmar",
            "interrupt remapping entry {} could not be freed ({failure}); it and vector {} stay \
             reserved",
            handle.get(),
            self.vector()
        );
        if let Some(vector) = self.vector.take() {
            core::mem::forget(vector);
        }
    }
}

/// Clears every entry still accepting `device` (entries whose `RemappedVector` was leaked),
/// with the interrupt entry cache invalidated for each. Called by the device's release, after
/// every vector its handle lent out is gone; returns how many were revoked.
pub(crate) fn revoke_device(device: Bdf) -> usize {
    with_state(|state| {
        let mut live = LIVE.lock();
        let mut tables = TABLES.lock();
        let mut revoked = 0;
        live.retain(|&(unit_index, handle, owner)| {
            if owner != device {
                return true;
            }
            let Some(table) = tables.get_mut(unit_index).and_then(Option::as_mut) else {
                return true;
            };
            let unit = &mut state.units[unit_index];
            match table.release(&mut unit.engine, &mut unit.tables, &Monotonic, handle) {
                Ok(()) => {
                    revoked += 1;
                    false
                }
                Err(error) => {
                    crate::error!(
                        "dmar",
                        "{device}: leaked interrupt remapping entry {} could not be revoked ({error})",
                        handle.get()
                    );
                    true
                }
            }
        });
        Ok(revoked)
    })
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_become_exact_or_bus_range_validation() {
        assert_eq!(source_validation(&[]), None);
        assert_eq!(
            source_validation(&[0x0020]),
            Some(SourceValidation::exact(SourceId::from_raw(0x0020)))
        );
        // An edu at 02:01.0 behind a PCIe-to-PCI bridge whose alias is 02:00.0.
        assert_eq!(
            source_validation(&[0x0208, 0x0200]),
            BusRange::new(2, 2).map(SourceValidation::BusRange)
        );
        // Aliases from two bridge levels span buses 1..=3.
        assert_eq!(
            source_validation(&[0x0308, 0x0300, 0x0100]),
            BusRange::new(1, 3).map(SourceValidation::BusRange)
        );
    }
}

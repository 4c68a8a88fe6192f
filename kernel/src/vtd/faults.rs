//! DMA fault reporting: the fault-event interrupt drains every unit's recording registers and
//! logs one line per fault; per-source counters are kept without allocating (the handler runs
//! in interrupt context). Thread context may drain too (scenarios do), so every drain holds the
//! reporters' lock with interrupts off: one drainer at a time, or a record written into a slot
//! another drainer is clearing would be lost.

use super::hw::MmioRegisters;
use crate::arch::interrupts::{self, Frame};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use moat_iommu::engine::fault::{Access, FaultRecord};
use moat_iommu::engine::{FaultReporter, fault_reason_name};

/// The vector the units' fault events are delivered on.
pub const FAULT_VECTOR: u8 = 40;

const SLOTS: usize = 64;
/// (segment << 16 | requester ID) + 1 per slot; 0 = free.
static SOURCES: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static UNCOUNTED: AtomicU64 = AtomicU64::new(0);
static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

const RECENT_SLOTS: usize = 16;
/// The most recent records (segment, record), oldest overwritten; for tests and the console.
/// A ring of (segment, record) and the index of the next slot to write.
type Ring = ([Option<(u16, FaultRecord)>; RECENT_SLOTS], usize);
static RECENT: spin::Mutex<Ring> = spin::Mutex::new(([None; RECENT_SLOTS], 0));

/// Records waiting to be routed to the owners of their sources (the registry's deferred work
/// takes them); a full queue counts what it drops.
static ROUTING: spin::Mutex<Ring> = spin::Mutex::new(([None; RECENT_SLOTS], 0));
static ROUTING_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Takes the records waiting to be routed, oldest first, and how many were dropped since the
/// last take because the routing queue was full.
pub(crate) fn take_for_routing() -> (alloc::vec::Vec<(u16, FaultRecord)>, u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        (
            take_ring(&mut ROUTING.lock()),
            ROUTING_DROPPED.swap(0, Ordering::Relaxed),
        )
    })
}

fn take_ring(ring: &mut Ring) -> alloc::vec::Vec<(u16, FaultRecord)> {
    let (slots, next) = ring;
    let mut out = alloc::vec::Vec::new();
    for i in 0..RECENT_SLOTS {
        if let Some(entry) = slots[(*next + i) % RECENT_SLOTS].take() {
            out.push(entry);
        }
    }
    out
}

/// Takes (and forgets) the recent fault records, oldest first.
pub fn take_recent() -> alloc::vec::Vec<(u16, FaultRecord)> {
    x86_64::instructions::interrupts::without_interrupts(|| take_ring(&mut RECENT.lock()))
}

/// Fault-event interrupts taken since boot.
pub fn interrupts_taken() -> u64 {
    INTERRUPTS.load(Ordering::Relaxed)
}

/// Each unit's one reporter, with its segment. Lock only with interrupts off (see `drain_all`).
type Reporters = spin::Mutex<alloc::vec::Vec<(u16, FaultReporter<MmioRegisters>)>>;
static REPORTERS: spin::Once<Reporters> = spin::Once::new();

/// Installs the reporters (one per enabled unit, with its segment) and the interrupt handler.
pub(super) fn install(
    reporters: alloc::vec::Vec<(u16, FaultReporter<MmioRegisters>)>,
) -> Result<(), interrupts::RegisterError> {
    REPORTERS.call_once(|| spin::Mutex::new(reporters));
    interrupts::register(FAULT_VECTOR, on_fault_event)
}

fn count(segment: u16, source: u16) {
    let key = ((u32::from(segment) << 16) | u32::from(source)) + 1;
    for (slot, counter) in SOURCES.iter().zip(&COUNTS) {
        match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(existing) if existing == key => {
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {}
        }
    }
    UNCOUNTED.fetch_add(1, Ordering::Relaxed);
}

/// Faults recorded so far for `source` (a requester ID) in `segment`.
pub fn fault_count(segment: u16, source: u16) -> u64 {
    let key = ((u32::from(segment) << 16) | u32::from(source)) + 1;
    SOURCES
        .iter()
        .zip(&COUNTS)
        .find(|(slot, _)| slot.load(Ordering::Acquire) == key)
        .map_or(0, |(_, counter)| counter.load(Ordering::Relaxed))
}

/// Faults lost because every recording register was full (FSTS.PFO seen).
pub fn overflows() -> u64 {
    OVERFLOWS.load(Ordering::Relaxed)
}

/// Logs one fault in the documented format.
fn log(segment: u16, record: &FaultRecord) {
    crate::error!(
        "dmar",
        "dmar fault: source={} addr={:#x} access={} reason={:#04x} ({})",
        record.source_bdf(segment),
        record.address,
        match record.access {
            Access::Read => "read",
            Access::Write => "write",
        },
        record.reason,
        fault_reason_name(record.reason)
    );
}

/// Drains every unit now (the interrupt does this; scenarios call it to be sure nothing is
/// pending). Returns the number of records found.
///
/// The reporters' lock is taken with interrupts off: the fault interrupt cannot then arrive on
/// this CPU while thread context drains (it would spin on the lock for ever), and a handler on
/// another CPU waits for the drain to finish instead of racing it.
pub fn drain_all() -> usize {
    let Some(reporters) = REPORTERS.get() else {
        return 0;
    };
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut reporters = reporters.lock();
        let mut found = 0;
        for (segment, reporter) in reporters.iter_mut() {
            let segment = *segment;
            let summary = reporter.drain(|record| {
                count(segment, record.source);
                log(segment, &record);
                let mut recent = RECENT.lock();
                let (slots, next) = &mut *recent;
                slots[*next] = Some((segment, record));
                *next = (*next + 1) % RECENT_SLOTS;
                let mut routing = ROUTING.lock();
                let (slots, next) = &mut *routing;
                if slots[*next].is_some() {
                    ROUTING_DROPPED.fetch_add(1, Ordering::Relaxed);
                }
                slots[*next] = Some((segment, record));
                *next = (*next + 1) % RECENT_SLOTS;
            });
            found += summary.records;
            if summary.overflowed {
                OVERFLOWS.fetch_add(1, Ordering::Relaxed);
                crate::error!(
                    "dmar",
                    "dmar fault: overflow: faults were lost while the records were full"
                );
            }
            if summary.still_pending {
                crate::error!(
                    "dmar",
                    "dmar fault: faults still arriving after a full drain; the rest waits"
                );
            }
            if summary.queue_error {
                crate::error!("dmar", "dmar fault: invalidation queue error (FSTS.IQE)");
            }
        }
        found
    })
}

fn on_fault_event(_frame: &Frame) {
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    drain_all();
    crate::arch::apic::end_of_interrupt();
}

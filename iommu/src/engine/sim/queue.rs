//! The simulated unit's invalidation queue. Descriptors are processed on each IQT write and
//! checked the way QEMU 7.2 checks them (facts file A.5): known types, reserved bits of context-
//! cache and IOTLB descriptors, granularity, exactly one of SW and IF in a wait, a tail inside
//! the queue. A bad one sets FSTS.IQE and stops the queue with IQH on it; as in QEMU, nothing is
//! fetched again until IQE is clear *and* IQT is written. A wait can be told to time out: FSTS.ITE
//! is set, its status write is aborted and fetching stops until ITE is clear and IQT written.
//! Descriptors queued while the unit hangs are fetched once it answers again and is polled
//! (FSTS or IQH read), as hardware fetches on its own and not only on IQT writes.

use super::{Event, SimUnit};
use crate::engine::registers::{FaultStatus, Global};

/// Entries in the queue (IQA.QS = 0).
const ENTRIES: u64 = 256;

/// Whether QEMU 7.2 would reject the descriptor `lo`/`hi`.
fn rejected(lo: u64, hi: u64) -> bool {
    let granularity = (lo >> 4) & 3;
    match lo & 0xf {
        1 => lo & 0xfffc_0000_0000_ffc0 != 0 || hi != 0 || granularity == 0,
        2 => lo & 0xffff_ffff_0000_ff00 != 0 || hi & 0xf80 != 0 || granularity == 0,
        // Device-IOTLB and interrupt-entry cache: accepted, nothing to model.
        3 | 4 => false,
        5 => {
            assert_ne!(lo & 0x30, 0x30, "QEMU aborts on a wait with both SW and IF");
            lo & 0x30 == 0
        }
        // PASID-based IOTLB and PASID cache: accepted as no-ops.
        6 | 7 => false,
        _ => true,
    }
}

impl SimUnit {
    fn stopped(&self) -> bool {
        FaultStatus::from_bits_retain(self.fsts.get())
            .intersects(FaultStatus::IQE | FaultStatus::ITE)
    }

    fn raise(&self, bit: FaultStatus) {
        self.fsts.set(self.fsts.get() | bit.bits());
        self.needs_tail_write.set(true);
    }

    /// Fetches what was queued while the unit hung, unless an error stopped the queue.
    pub(super) fn catch_up(&self) {
        let queued = Global::from_bits_retain(self.gsts.get()).contains(Global::QIE);
        if queued && !self.hang.get() && !self.needs_tail_write.get() {
            self.process_queue();
        }
    }

    /// Processes descriptors from IQH up to IQT (on an IQT write while QIE is on).
    pub(super) fn process_queue(&self) {
        if self.stopped() {
            return;
        }
        let queue = self.iqa.get() & !0xfff;
        let mut head = self.iqh.get() >> 4;
        let tail = self.iqt.get() >> 4;
        if tail >= ENTRIES {
            self.raise(FaultStatus::IQE);
            return;
        }
        while head != tail {
            let (lo, hi) = {
                let memory = self.memory.0.borrow();
                let slots = &memory[&queue];
                (slots[head as usize * 2], slots[head as usize * 2 + 1])
            };
            if self.fetch_errors.get()
                || rejected(lo, hi)
                || (lo & 0xf == 1 && self.context_invalidation_fails())
            {
                self.events.borrow_mut().push(Event::Rejected(lo, hi));
                self.raise(FaultStatus::IQE);
                break;
            }
            self.events.borrow_mut().push(Event::Queued(lo, hi));
            let granularity = ((lo >> 4) & 3) as u8;
            let domain = ((lo >> 16) & 0xffff) as u16;
            match lo & 0xf {
                1 => self.caches.borrow_mut().invalidate_context(
                    granularity,
                    domain,
                    ((lo >> 32) & 0xffff) as u16,
                    ((lo >> 48) & 3) as u8,
                ),
                2 => self
                    .caches
                    .borrow_mut()
                    .invalidate_iotlb(granularity, domain),
                5 if self.time_out_waits.get() > 0 => {
                    // Fetched, then aborted by the time-out: no status write.
                    self.time_out_waits.set(self.time_out_waits.get() - 1);
                    self.raise(FaultStatus::ITE);
                    head = (head + 1) % ENTRIES;
                    break;
                }
                5 if lo & 0x20 != 0 => self.write_status(hi & !0x3, (lo >> 32) as u32),
                _ => {}
            }
            head = (head + 1) % ENTRIES;
        }
        self.iqh.set(head << 4);
    }

    /// A wait descriptor's status write: 32 bits at the 4-byte aligned `address`.
    fn write_status(&self, address: u64, data: u32) {
        let frame = address & !0xfff;
        let word = ((address & 0xfff) / 8) as usize;
        let shift = (address & 4) * 8;
        let mut memory = self.memory.0.borrow_mut();
        let entry = &mut memory.get_mut(&frame).expect("status frame")[word];
        *entry = (*entry & !(0xffff_ffff << shift)) | (u64::from(data) << shift);
    }
}

//! A simulated remapping unit for host tests of the register sequencing: register widths
//! checked like QEMU's (an 8-byte access to a 32-bit register panics), commands completing at
//! once unless told to hang, register invalidations ignored while the queue is on (as QEMU
//! does), and queued descriptors processed on each IQT write with status writes into memory.
//! GCMD.SIRTP latches IRTA_REG and IRE only takes with a latched table; a GCMD write with CFI
//! panics (compatibility-format interrupts must stay blocked). When GSTS.TES turns on, the
//! context entries present at that moment are recorded, so a test sees which entries were
//! written before translation started and which only after. Chosen context-cache
//! invalidations can be made to fail, through either interface. A DMA lookup honours the
//! context entry's TT: pass-through (2) only with ECAP.PT, any other type it does not offer
//! is blocked and recorded as a violation.

mod caches;
mod queue;

pub(crate) use caches::{Cache, Caches, Invalidation, Lookup};

use super::registers::*;
use super::{Clock, Offset32, Offset64, Registers};
use crate::entries::PhysAddr;
use crate::paging::{OutOfMemory, TableMemory};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// Frames shared between the engine (as `TableMemory`) and the simulated hardware.
#[derive(Clone, Debug, Default)]
pub(super) struct SharedMemory(
    pub(super) Rc<RefCell<HashMap<u64, [u64; 512]>>>,
    Rc<Cell<u64>>,
);

impl TableMemory for SharedMemory {
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
        let next = self.1.get().max(0x10_0000);
        self.1.set(next + 0x1000);
        self.0.borrow_mut().insert(next, [0; 512]);
        Ok(PhysAddr::new(next).expect("aligned"))
    }
    fn free_table(&mut self, table: PhysAddr) {
        self.0
            .borrow_mut()
            .remove(&table.as_u64())
            .expect("double free");
    }
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.0.borrow()[&table.as_u64()][index]
    }
    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        self.0
            .borrow_mut()
            .get_mut(&table.as_u64())
            .expect("live frame")[index] = value;
    }
}

/// What the simulated hardware saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Event {
    Gcmd(u32),
    RegisterContext(u64),
    RegisterIotlb(u64),
    Queued(u64, u64),
    /// A descriptor the queue rejected (FSTS.IQE set, IQH left on it).
    Rejected(u64, u64),
    IgnoredRegisterCommand,
    /// GSTS.TES went from 0 to 1, with the (requester ID, DID) of every present context entry
    /// in the latched root table at that moment, in requester-ID order: which entries a DMA
    /// request could find from the first translated request on.
    TranslationOn(Vec<(u16, u16)>),
}

#[derive(Debug)]
pub(super) struct SimUnit {
    pub(super) cap: u64,
    pub(super) ecap: u64,
    pub(super) memory: SharedMemory,
    pub(super) gsts: Cell<u32>,
    pub(super) rtaddr: Cell<u64>,
    pub(super) ccmd: Cell<u64>,
    pub(super) iotlb: Cell<u64>,
    pub(super) iva: Cell<u64>,
    pub(super) iqa: Cell<u64>,
    pub(super) iqh: Cell<u64>,
    pub(super) iqt: Cell<u64>,
    pub(super) fsts: Cell<u32>,
    pub(super) fectl: Cell<u32>,
    pub(super) frcd: Cell<(u64, u64)>,
    /// Faults waiting for the recording register: the next one is written into it the moment
    /// software clears its F bit (a fault arriving during a drain).
    pub(super) arriving: RefCell<VecDeque<(u64, u64)>>,
    /// Commands never complete (a dead unit).
    pub(super) hang: Cell<bool>,
    /// IRTA_REG as written, and the value SIRTP latched (what IRE remaps with).
    pub(super) irta: Cell<u64>,
    pub(super) interrupt_table: Cell<Option<u64>>,
    /// This many upcoming wait descriptors time out (FSTS.ITE, status write aborted), as if a
    /// device-TLB invalidation before them never completed.
    pub(super) time_out_waits: Cell<u32>,
    /// Every descriptor fetch fails (IQE with IQEI 2 on hardware): a queue that cannot recover.
    pub(super) fetch_errors: Cell<bool>,
    /// Context-cache invalidations are numbered from 1 as the unit takes them (see
    /// [`fail_context_invalidations`](SimUnit::fail_context_invalidations)); these fail.
    failing_context_invalidations: RefCell<Vec<u32>>,
    context_invalidations_taken: Cell<u32>,
    /// An IQE or ITE stopped the queue: as in QEMU, only an IQT write (after clearing the bit)
    /// resumes it.
    needs_tail_write: Cell<bool>,
    pub(super) events: RefCell<Vec<Event>>,
    /// Context cache and IOTLB, with every invalidation recorded with its DID.
    pub(crate) caches: RefCell<Caches>,
}

/// QEMU 7.2 defaults (aw-bits=39) from the facts file.
pub(super) const QEMU_CAP: u64 = 0x00d2_008c_2226_0206;
pub(super) const QEMU_ECAP: u64 = 0x0000_0000_00f0_0f4a;

impl SimUnit {
    pub(super) fn new(cap: u64, ecap: u64, memory: SharedMemory) -> Rc<Self> {
        Rc::new(Self {
            cap,
            ecap,
            memory,
            gsts: Cell::new(0),
            rtaddr: Cell::new(0),
            ccmd: Cell::new(0),
            iotlb: Cell::new(0),
            iva: Cell::new(0),
            iqa: Cell::new(0),
            iqh: Cell::new(0),
            iqt: Cell::new(0),
            fsts: Cell::new(0),
            fectl: Cell::new(FECTL_IM),
            frcd: Cell::new((0, 0)),
            arriving: RefCell::new(VecDeque::new()),
            hang: Cell::new(false),
            irta: Cell::new(0),
            interrupt_table: Cell::new(None),
            time_out_waits: Cell::new(0),
            needs_tail_write: Cell::new(false),
            fetch_errors: Cell::new(false),
            failing_context_invalidations: RefCell::new(Vec::new()),
            context_invalidations_taken: Cell::new(0),
            events: RefCell::new(Vec::new()),
            caches: RefCell::new(Caches::default()),
        })
    }

    /// (requester ID, DID) of every present context entry reachable from RTADDR_REG.
    pub(super) fn present_context_entries(&self) -> Vec<(u16, u16)> {
        let memory = self.memory.0.borrow();
        let Some(root) = memory.get(&(self.rtaddr.get() & !0xfff)) else {
            return Vec::new();
        };
        let mut present = Vec::new();
        for bus in 0..256u16 {
            let root_entry = root[usize::from(bus) * 2];
            if root_entry & 1 == 0 {
                continue;
            }
            let table = &memory[&(root_entry & !0xfff)];
            for devfn in 0..256u16 {
                let index = usize::from(devfn) * 2;
                if table[index] & 1 == 1 {
                    let domain = ((table[index + 1] >> 8) & 0xffff) as u16;
                    present.push((bus << 8 | devfn, domain));
                }
            }
        }
        present
    }

    /// From now on, the context-cache invalidations numbered `numbers` (the next one is 1) fail:
    /// the descriptor is rejected (FSTS.IQE) on the queue, CCMD.ICC never clears on registers.
    pub(super) fn fail_context_invalidations(&self, numbers: &[u32]) {
        self.context_invalidations_taken.set(0);
        *self.failing_context_invalidations.borrow_mut() = numbers.to_vec();
    }

    /// Counts a context-cache invalidation the unit takes; whether it is one that fails.
    fn context_invalidation_fails(&self) -> bool {
        let number = self.context_invalidations_taken.get() + 1;
        self.context_invalidations_taken.set(number);
        self.failing_context_invalidations
            .borrow()
            .contains(&number)
    }

    fn caching_mode(&self) -> bool {
        Capability(self.cap).caching_mode()
    }

    /// A DMA request from `source` while translation is on: what the unit's caches or tables
    /// say about it. Context entries whose DID the rules forbid are recorded as violations.
    pub(crate) fn dma(&self, source: u16) -> Lookup {
        assert!(
            Global::from_bits_retain(self.gsts.get()).contains(Global::TE),
            "DMA is only looked up while translating"
        );
        let walk = || {
            let memory = self.memory.0.borrow();
            let root = memory[&(self.rtaddr.get() & !0xfff)][usize::from(source >> 8) * 2];
            if root & 1 == 0 {
                return Lookup::Blocked;
            }
            let table = &memory[&(root & !0xfff)];
            let index = usize::from(source & 0xff) * 2;
            if table[index] & 1 == 0 {
                return Lookup::Blocked;
            }
            let domain = ((table[index + 1] >> 8) & 0xffff) as u16;
            let limit = 1u32 << (4 + 2 * u32::from(Capability(self.cap).nd()));
            let mut caches = self.caches.borrow_mut();
            if domain == 0 && self.caching_mode() {
                caches.violations.push(format!(
                    "context entry of {source:#x} uses DID 0, reserved with CAP.CM = 1"
                ));
            }
            if u32::from(domain) >= limit {
                caches.violations.push(format!(
                    "context entry of {source:#x} uses DID {domain}, not below CAP.ND's {limit}"
                ));
            }
            // TT (bits 3:2): 2 passes the request through, and only with ECAP.PT; QEMU faults
            // any other type it does not offer with reason 3 (here: blocked, and a violation).
            match (table[index] >> 2) & 3 {
                0 => Lookup::Translated { domain },
                2 if ExtendedCapability(self.ecap).pass_through() => Lookup::PassThrough { domain },
                other => {
                    caches.violations.push(format!(
                        "context entry of {source:#x} uses TT {other}, not offered (ECAP {:#x})",
                        self.ecap
                    ));
                    Lookup::Blocked
                }
            }
        };
        let found = walk();
        self.caches
            .borrow_mut()
            .lookup(source, self.caching_mode(), || found)
    }

    fn iro(&self) -> u16 {
        ExtendedCapability(self.ecap).iro()
    }

    fn fro(&self) -> u16 {
        Capability(self.cap).fro()
    }
}

impl Registers for Rc<SimUnit> {
    fn read32(&self, offset: Offset32) -> u32 {
        match offset.get() {
            0x00 => 0x10,
            0x1c => self.gsts.get(),
            0x34 => {
                self.catch_up();
                self.fsts.get()
                    | if self.frcd.get().1 >> 63 == 1 {
                        FaultStatus::PPF.bits()
                    } else {
                        0
                    }
            }
            0x38 => self.fectl.get(),
            o if o == self.fro() * 16 + 12 => (self.frcd.get().1 >> 32) as u32,
            o => panic!("32-bit read of {o:#x}"),
        }
    }

    fn write32(&self, offset: Offset32, value: u32) {
        match offset.get() {
            0x18 => {
                self.events.borrow_mut().push(Event::Gcmd(value));
                if self.hang.get() {
                    return;
                }
                let command = Global::from_bits_retain(value);
                assert!(
                    !command.contains(Global::CFI),
                    "GCMD.CFI set: compatibility-format interrupts must stay blocked"
                );
                let mut status =
                    Global::from_bits_retain(self.gsts.get()) - Global::SRTP - Global::SIRTP;
                status.set(Global::TE, command.contains(Global::TE));
                status.set(Global::QIE, command.contains(Global::QIE));
                if command.contains(Global::SRTP) {
                    status |= Global::SRTP;
                }
                // SIRTP latches IRTA_REG; IRE only takes with a latched table.
                if command.contains(Global::SIRTP) {
                    self.interrupt_table.set(Some(self.irta.get()));
                    status |= Global::SIRTP;
                }
                status.set(
                    Global::IRE,
                    command.contains(Global::IRE) && self.interrupt_table.get().is_some(),
                );
                if command.contains(Global::QIE)
                    && !Global::from_bits_retain(self.gsts.get()).contains(Global::QIE)
                {
                    self.iqh.set(0);
                }
                let was_translating =
                    Global::from_bits_retain(self.gsts.get()).contains(Global::TE);
                self.gsts.set(status.bits());
                if status.contains(Global::TE) && !was_translating {
                    let present = self.present_context_entries();
                    self.events.borrow_mut().push(Event::TranslationOn(present));
                }
            }
            0x34 => self.fsts.set(self.fsts.get() & !(value & 0x71)),
            0x38 => self.fectl.set(value & FECTL_IM),
            0x3c | 0x40 | 0x44 => {}
            o if o == self.fro() * 16 + 12 => {
                if value & (1 << 31) != 0 {
                    let next = self.arriving.borrow_mut().pop_front();
                    self.frcd.set(next.unwrap_or((0, 0)));
                }
            }
            o => panic!("32-bit write of {o:#x}"),
        }
    }

    fn read64(&self, offset: Offset64) -> u64 {
        match offset.get() {
            0x08 => self.cap,
            0x10 => self.ecap,
            0x20 => self.rtaddr.get(),
            0x28 => self.ccmd.get(),
            0x80 => {
                self.catch_up();
                self.iqh.get()
            }
            0x88 => self.iqt.get(),
            0x90 => self.iqa.get(),
            0xb8 => self.irta.get(),
            o if o == self.iro() * 16 + 8 => self.iotlb.get(),
            o if o == self.fro() * 16 => self.frcd.get().0,
            o if o == self.fro() * 16 + 8 => self.frcd.get().1,
            o => panic!("64-bit read of {o:#x}"),
        }
    }

    fn write64(&self, offset: Offset64, value: u64) {
        let queued = Global::from_bits_retain(self.gsts.get()).contains(Global::QIE);
        match offset.get() {
            0x20 => self.rtaddr.set(value),
            0x28 => {
                if queued {
                    self.events.borrow_mut().push(Event::IgnoredRegisterCommand);
                    self.ccmd.set(value);
                } else if self.hang.get() || self.context_invalidation_fails() {
                    self.ccmd.set(value);
                } else {
                    self.events.borrow_mut().push(Event::RegisterContext(value));
                    self.caches.borrow_mut().invalidate_context(
                        ((value >> 61) & 3) as u8,
                        value as u16,
                        (value >> 16) as u16,
                        ((value >> 32) & 3) as u8,
                    );
                    // ICC clears; CAIG (60:59) reports the requested granularity (62:61).
                    self.ccmd
                        .set((value & !(1 << 63)) | ((value >> 61) & 3) << 59);
                }
            }
            0x88 => {
                self.iqt.set(value);
                self.needs_tail_write.set(false);
                if queued && !self.hang.get() {
                    self.process_queue();
                }
            }
            0x90 => self.iqa.set(value),
            0xb8 => self.irta.set(value),
            o if o == self.iro() * 16 => self.iva.set(value),
            o if o == self.iro() * 16 + 8 => {
                if queued {
                    self.events.borrow_mut().push(Event::IgnoredRegisterCommand);
                    self.iotlb.set(value);
                } else if self.hang.get() {
                    self.iotlb.set(value);
                } else {
                    self.events.borrow_mut().push(Event::RegisterIotlb(value));
                    self.caches
                        .borrow_mut()
                        .invalidate_iotlb(((value >> 60) & 3) as u8, (value >> 32) as u16);
                    // IVT clears; IAIG (58:57) reports the requested granularity (61:60).
                    self.iotlb
                        .set((value & !(1 << 63)) | ((value >> 60) & 3) << 57);
                }
            }
            o => panic!("64-bit write of {o:#x}"),
        }
    }
}

/// A clock that advances 10 us per reading, so budgets run out in bounded steps.
#[derive(Default)]
pub(super) struct StepClock(Cell<u64>);

impl Clock for StepClock {
    fn now_us(&self) -> u64 {
        self.0.set(self.0.get() + 10);
        self.0.get()
    }
}

/// A clock that never advances, like the kernel's when TSC calibration failed. It panics when
/// read far more often than any capped poll reads it, so a poll without an iteration cap fails
/// the test instead of hanging it.
#[derive(Default)]
pub(crate) struct FrozenClock {
    readings: Cell<u64>,
}

impl FrozenClock {
    /// Four times what a capped wait of [`COMMAND_BUDGET_US`](super::COMMAND_BUDGET_US) reads.
    const LIMIT: u64 = 4 * super::COMMAND_BUDGET_US * super::POLLS_PER_MICROSECOND;
}

impl Clock for FrozenClock {
    fn now_us(&self) -> u64 {
        self.readings.set(self.readings.get() + 1);
        assert!(
            self.readings.get() < Self::LIMIT,
            "a poll spun {} times on a frozen clock: its budget does not hold without a clock",
            Self::LIMIT
        );
        0
    }
}

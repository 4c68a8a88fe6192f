//! A simulated NVMe controller held in memory, for the host tests: registers, admin and I/O
//! queues in a simulated DMA memory, a disk, MSI-X delivery counters and a clock, behind the
//! driver's [`Platform`](crate::Platform) traits. Faults the tests need (never ready, fatal
//! status, unknown command IDs, lost interrupts, ...) are switches in [`Config`] and
//! [`Faults`]. The test keeps a clone of [`Sim`] to look inside while the driver owns another.

mod controller;
mod memory;
mod transfer;

use crate::platform::{
    Clock, Direction, DmaError, DmaMemory, InterruptError, Interrupts, RegisterError, Registers,
    WaitTimeout,
};
use controller::{Cq, Sq};
pub(crate) use memory::{Memory, SimRegion};
use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// QEMU 7.2's CAP: MQES 0x7ff, CQR, TO 0xf (7.5 s), DSTRD 0, CSS NVM, MPSMAX 4.
pub(crate) const QEMU_CAP: u64 = 0x0040_0020_0f01_07ff;

/// How the simulated controller is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) cap: u64,
    pub(crate) mdts: u8,
    /// The namespace (ID 1): blocks and log2 block size; `None` for no namespace.
    pub(crate) namespace: Option<(u64, u8)>,
    pub(crate) max_queue_pairs: u16,
    pub(crate) vectors: u16,
    /// CSTS.RDY never becomes 1.
    pub(crate) never_ready: bool,
    /// CSTS.CFS is set on enable.
    pub(crate) fatal_on_enable: bool,
    /// CSTS.RDY never drops after CC.EN = 0.
    pub(crate) stuck_ready: bool,
    /// CSTS.SHST stays "occurring".
    pub(crate) never_shutdown: bool,
    /// The controller starts enabled (as firmware might leave it).
    pub(crate) start_enabled: bool,
    /// Commands run when the driver waits for an interrupt, not at the doorbell.
    pub(crate) deferred: bool,
    /// The commands fetched together complete in reverse order.
    pub(crate) reverse: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cap: QEMU_CAP,
            mdts: 7,
            namespace: Some((2048, 9)),
            max_queue_pairs: 64,
            vectors: 65,
            never_ready: false,
            fatal_on_enable: false,
            stuck_ready: false,
            never_shutdown: false,
            start_enabled: false,
            deferred: false,
            reverse: false,
        }
    }
}

/// Faults switched on while the driver runs; each `next` one applies to the next I/O completion.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    pub(crate) corrupt_next_id: Option<u16>,
    pub(crate) repeat_next: bool,
    pub(crate) bad_head_next: bool,
    pub(crate) fail_next_io: Option<(u8, u8)>,
    pub(crate) swallow_io: bool,
    pub(crate) drop_interrupts: bool,
}

/// Everything the simulated machine holds.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) faults: Faults,
    pub(crate) memory: Memory,
    pub(crate) disk: Vec<u8>,
    pub(crate) cc: u32,
    pub(crate) csts: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    sqs: BTreeMap<u16, Sq>,
    cqs: BTreeMap<u16, Cq>,
    /// Completions waiting for room in their completion queue: (CQ, entry without phase).
    held: VecDeque<(u16, [u8; 16])>,
    pub(crate) deliveries: Vec<u64>,
    pub(crate) enabled: Vec<bool>,
    pub(crate) clock: u64,
    /// Register writes, in order.
    pub(crate) register_writes: Vec<(u64, u32)>,
    /// Register accesses at offsets the controller does not have.
    pub(crate) bad_accesses: Vec<u64>,
    /// Admin opcodes executed, in order.
    pub(crate) admin_log: Vec<u8>,
    /// (queue, opcode) of every I/O command executed.
    pub(crate) io_log: Vec<(u16, u8)>,
    /// I/O commands whose data needed a PRP list.
    pub(crate) prp_lists: usize,
    /// The most I/O commands fetched in one go (commands in flight at once).
    pub(crate) largest_batch: usize,
    pub(crate) flushes: usize,
}

/// The simulated platform: a shared handle on [`State`].
#[derive(Clone)]
pub(crate) struct Sim(Rc<RefCell<State>>);

impl Sim {
    pub(crate) fn new(config: Config) -> Self {
        let disk_bytes = config
            .namespace
            .map_or(0, |(blocks, shift)| (blocks << shift) as usize);
        let vectors = usize::from(config.vectors);
        let (cc, csts) = if config.start_enabled {
            (crate::registers::configuration::ENABLED, 1)
        } else {
            (0, 0)
        };
        Self(Rc::new(RefCell::new(State {
            config,
            faults: Faults::default(),
            memory: Memory::default(),
            disk: vec![0; disk_bytes],
            cc,
            csts,
            aqa: 0,
            asq: 0,
            acq: 0,
            sqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            held: VecDeque::new(),
            deliveries: vec![0; vectors],
            enabled: vec![false; vectors],
            clock: 0,
            register_writes: Vec::new(),
            bad_accesses: Vec::new(),
            admin_log: Vec::new(),
            io_log: Vec::new(),
            prp_lists: 0,
            largest_batch: 0,
            flushes: 0,
        })))
    }

    /// The state, to look at or to switch faults on.
    pub(crate) fn state(&self) -> RefMut<'_, State> {
        self.0.borrow_mut()
    }
}

impl Registers for Sim {
    fn read32(&mut self, offset: u64) -> Result<u32, RegisterError> {
        Ok(self.state().read_register(offset))
    }
    fn write32(&mut self, offset: u64, value: u32) -> Result<(), RegisterError> {
        self.state().write_register(offset, value);
        Ok(())
    }
}

impl DmaMemory for Sim {
    type Region = SimRegion;
    fn allocate(&mut self, len: usize, direction: Direction) -> Result<SimRegion, DmaError> {
        self.state().memory.allocate(len, direction)
    }
    fn read(&mut self, region: &SimRegion, offset: usize, out: &mut [u8]) -> Result<(), DmaError> {
        self.state().memory.cpu_read(region, offset, out)
    }
    fn write(&mut self, region: &SimRegion, offset: usize, data: &[u8]) -> Result<(), DmaError> {
        self.state().memory.cpu_write(region, offset, data)
    }
    fn retire(&mut self, region: SimRegion) {
        self.state().memory.retire(region);
    }
}

impl Interrupts for Sim {
    fn enable_vector(&mut self, vector: u16) -> Result<(), InterruptError> {
        let mut state = self.state();
        let slot = state
            .enabled
            .get_mut(usize::from(vector))
            .ok_or(InterruptError { vector })?;
        *slot = true;
        Ok(())
    }
    fn deliveries(&mut self, vector: u16) -> u64 {
        self.state().deliveries[usize::from(vector)]
    }
    fn wait_for_interrupt(
        &mut self,
        vector: u16,
        seen: u64,
        budget_us: u64,
    ) -> Result<u64, WaitTimeout> {
        let mut state = self.state();
        if state.config.deferred {
            state.run();
        }
        state.clock += 1;
        let count = state.deliveries[usize::from(vector)];
        if count > seen {
            Ok(count)
        } else {
            state.clock += budget_us;
            Err(WaitTimeout { budget_us })
        }
    }
}

impl Clock for Sim {
    fn now_us(&mut self) -> u64 {
        let mut state = self.state();
        // Each look at the clock costs 10 us: polls run out of their budget quickly.
        state.clock += 10;
        state.clock
    }
}

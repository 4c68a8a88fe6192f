//! A simulated 82574 held in memory: registers, DMA regions keyed by IOVA (each device access
//! checked against the region's direction, as the IOMMU would), the legacy rings as
//! QEMU 7.2 processes them (transmit on a TDT write, receive into the head descriptor), causes
//! routed through IVAR to MSI-X delivery counters, and a clock that moves on every read.

use crate::registers::*;
use crate::{
    Clock, DmaDirection, DmaFailure, DmaMemory, InterruptFailure, Interrupts, Registers,
    WaitTimeout,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// The simulated device; clones share it, so a test keeps one while the driver owns another.
#[derive(Clone)]
pub(super) struct Sim(pub(super) Rc<RefCell<State>>);

pub(super) struct State {
    pub(super) registers: HashMap<u32, u32>,
    /// Live regions: IOVA -> bytes.
    pub(super) regions: BTreeMap<u64, Vec<u8>>,
    /// Who may read and write each live region (the device's accesses are checked).
    pub(super) directions: HashMap<u64, DmaDirection>,
    /// Allocations fail (out of memory) while set.
    pub(super) refuse_allocations: bool,
    next_iova: u64,
    /// IOVAs of retired regions, in order.
    pub(super) retired: Vec<u64>,
    /// CTRL.RST clears after this many CTRL reads; None: never.
    pub(super) reset_clears_after: Option<u32>,
    ctrl_reads: u32,
    /// STATUS.LU comes up after this many waits on the other vector; None: never.
    pub(super) link_after_waits: Option<u32>,
    link_waits: u32,
    /// The transmit engine is stopped (descriptors are not processed).
    pub(super) transmit_paused: bool,
    pub(super) enabled: [bool; 5],
    pub(super) deliveries: [u64; 5],
    /// Frames the device sent, in order.
    pub(super) sent: Vec<Vec<u8>>,
    /// Device accesses outside every live region (what the IOMMU would fault).
    pub(super) faults: Vec<u64>,
    pub(super) now_us: u64,
    /// Microseconds the clock moves per read (0: a stuck clock).
    pub(super) tick_us: u64,
}

pub(super) const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

impl Sim {
    pub(super) fn new() -> Self {
        let mut registers = HashMap::new();
        registers.insert(CTRL, Control::FULL_DUPLEX.bits());
        registers.insert(STATUS, 0);
        registers.insert(RAL0, u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]]));
        registers.insert(
            RAH0,
            u32::from_le_bytes([MAC[4], MAC[5], 0, 0]) | RAH_ADDRESS_VALID,
        );
        Self(Rc::new(RefCell::new(State {
            registers,
            regions: BTreeMap::new(),
            directions: HashMap::new(),
            refuse_allocations: false,
            next_iova: 0x10_0000,
            retired: Vec::new(),
            reset_clears_after: Some(2),
            ctrl_reads: 0,
            link_after_waits: Some(1),
            link_waits: 0,
            transmit_paused: false,
            enabled: [false; 5],
            deliveries: [0; 5],
            sent: Vec::new(),
            faults: Vec::new(),
            now_us: 0,
            tick_us: 10,
        })))
    }

    pub(super) fn state(&self) -> std::cell::RefMut<'_, State> {
        self.0.borrow_mut()
    }

    pub(super) fn register(&self, offset: u32) -> u32 {
        self.state().reg(offset)
    }

    /// The device receives `frame`: written to the head descriptor's buffer, DD and EOP set.
    /// False if the ring had no free descriptor (the frame is dropped, as the model does).
    pub(super) fn inject(&self, frame: &[u8]) -> bool {
        let mut state = self.state();
        let Some((descriptor, buffer)) = state.rx_head() else {
            return false;
        };
        state.dma_write(buffer, frame);
        state.finish_rx(descriptor, frame.len() as u16, 0b11, 0);
        true
    }

    /// The device writes back the head receive descriptor with these fields and no data.
    pub(super) fn inject_write_back(&self, length: u16, status: u8, errors: u8) -> bool {
        let mut state = self.state();
        let Some((descriptor, _)) = state.rx_head() else {
            return false;
        };
        state.finish_rx(descriptor, length, status, errors);
        true
    }

    /// The buffer IOVA in each receive descriptor the device owns (RDH up to RDT).
    pub(super) fn handed_rx_buffers(&self) -> Vec<u64> {
        let (head, tail, count) = {
            let state = self.state();
            let count = (state.reg(RDLEN) / 16).max(1);
            (state.reg(RDH), state.reg(RDT), count)
        };
        let owned = (0..(tail + count - head) % count).map(|step| (head + step) % count);
        owned
            .map(|index| self.rx_descriptor_buffer(index))
            .collect()
    }

    /// The buffer IOVA written in receive descriptor `index`.
    pub(super) fn rx_descriptor_buffer(&self, index: u32) -> u64 {
        let mut state = self.state();
        let address = state.ring_base(RDBAL, RDBAH) + u64::from(index) * 16;
        let descriptor = state.dma_read(address, 16);
        u64::from_le_bytes(descriptor[..8].try_into().expect("8 bytes"))
    }

    /// Resumes a paused transmit engine and processes what is queued.
    pub(super) fn resume_transmit(&self) {
        let mut state = self.state();
        state.transmit_paused = false;
        state.transmit();
    }
}

impl State {
    pub(super) fn reg(&self, offset: u32) -> u32 {
        self.registers.get(&offset).copied().unwrap_or(0)
    }

    fn set(&mut self, offset: u32, value: u32) {
        self.registers.insert(offset, value);
    }

    fn ring_base(&self, low: u32, high: u32) -> u64 {
        u64::from(self.reg(low)) | u64::from(self.reg(high)) << 32
    }

    /// The live region holding `iova..iova + len` that the device may access for `use_`
    /// (`ToDevice`: a read, `FromDevice`: a write); anything else is a fault.
    fn locate(&mut self, iova: u64, len: usize, use_: DmaDirection) -> Option<(u64, usize)> {
        let found = self
            .regions
            .range(..=iova)
            .next_back()
            .and_then(|(base, bytes)| {
                let offset = (iova - base) as usize;
                (offset + len <= bytes.len()).then_some((*base, offset))
            })
            .filter(|(base, _)| {
                let allowed = self.directions[base];
                allowed == use_ || allowed == DmaDirection::Bidirectional
            });
        if found.is_none() {
            self.faults.push(iova);
        }
        found
    }

    fn dma_read(&mut self, iova: u64, len: usize) -> Vec<u8> {
        match self.locate(iova, len, DmaDirection::ToDevice) {
            Some((base, offset)) => self.regions[&base][offset..offset + len].to_vec(),
            None => vec![0; len],
        }
    }

    fn dma_write(&mut self, iova: u64, data: &[u8]) {
        if let Some((base, offset)) = self.locate(iova, data.len(), DmaDirection::FromDevice) {
            let region = self.regions.get_mut(&base).expect("located");
            region[offset..offset + data.len()].copy_from_slice(data);
        }
    }

    /// Raises `cause`: sets it in ICR and, when unmasked, delivers the vector IVAR names.
    fn raise(&mut self, cause: Causes) {
        let icr = self.reg(ICR) | cause.bits();
        self.set(ICR, icr);
        if self.reg(IMS) & cause.bits() == 0 {
            return;
        }
        let shift = if cause == Causes::RX_QUEUE0 {
            0
        } else if cause == Causes::TX_QUEUE0 {
            8
        } else {
            16
        };
        let entry = (self.reg(IVAR) >> shift) & 0xf;
        let vector = (entry & 0x7) as usize;
        if entry & 0x8 != 0 && vector < 5 && self.enabled[vector] {
            self.deliveries[vector] += 1;
        }
    }

    fn transmit(&mut self) {
        if self.transmit_paused || self.reg(TCTL) & TransmitControl::ENABLE.bits() == 0 {
            return;
        }
        let base = self.ring_base(TDBAL, TDBAH);
        let count = self.reg(TDLEN) / 16;
        let mut head = self.reg(TDH);
        let mut any = false;
        while head != self.reg(TDT) && count > 0 {
            let address = base + u64::from(head) * 16;
            let mut descriptor = self.dma_read(address, 16);
            let buffer = u64::from_le_bytes(descriptor[..8].try_into().expect("8 bytes"));
            let length = u16::from_le_bytes([descriptor[8], descriptor[9]]);
            let frame = self.dma_read(buffer, usize::from(length));
            self.sent.push(frame);
            if descriptor[11] & (1 << 3) != 0 {
                descriptor[12] |= 1;
                self.dma_write(address, &descriptor);
            }
            head = (head + 1) % count;
            any = true;
        }
        self.set(TDH, head);
        if any {
            self.raise(Causes::TX_QUEUE0);
        }
    }

    /// The head receive descriptor's address and buffer, if the device owns one.
    fn rx_head(&mut self) -> Option<(u64, u64)> {
        let count = self.reg(RDLEN) / 16;
        let head = self.reg(RDH);
        if self.reg(RCTL) & ReceiveControl::ENABLE.bits() == 0
            || count == 0
            || head == self.reg(RDT)
        {
            return None;
        }
        let address = self.ring_base(RDBAL, RDBAH) + u64::from(head) * 16;
        let descriptor = self.dma_read(address, 16);
        let buffer = u64::from_le_bytes(descriptor[..8].try_into().expect("8 bytes"));
        Some((address, buffer))
    }

    fn finish_rx(&mut self, address: u64, length: u16, status: u8, errors: u8) {
        let mut descriptor = self.dma_read(address, 16);
        descriptor[8..10].copy_from_slice(&length.to_le_bytes());
        descriptor[12] = status;
        descriptor[13] = errors;
        self.dma_write(address, &descriptor);
        let count = self.reg(RDLEN) / 16;
        let head = (self.reg(RDH) + 1) % count;
        self.set(RDH, head);
        self.raise(Causes::RX_QUEUE0);
    }
}

impl Registers for Sim {
    fn read32(&self, offset: u32) -> u32 {
        let mut state = self.state();
        if offset == CTRL && state.reg(CTRL) & Control::RESET.bits() != 0 {
            state.ctrl_reads += 1;
            if state
                .reset_clears_after
                .is_some_and(|after| state.ctrl_reads >= after)
            {
                let value = state.reg(CTRL) & !Control::RESET.bits();
                state.set(CTRL, value);
            }
        }
        state.reg(offset)
    }

    fn write32(&self, offset: u32, value: u32) {
        let mut state = self.state();
        match offset {
            ICR => {
                let value = state.reg(ICR) & !value;
                state.set(ICR, value);
            }
            IMS => {
                let value = state.reg(IMS) | value;
                state.set(IMS, value);
            }
            IMC => {
                let value = state.reg(IMS) & !value;
                state.set(IMS, value);
            }
            TDT => {
                state.set(TDT, value);
                state.transmit();
            }
            STATUS => {}
            _ => state.set(offset, value),
        }
    }
}

/// A region of the simulated DMA memory (not Clone: the driver owns it until it retires it).
#[derive(Debug)]
pub(super) struct SimRegion {
    iova: u64,
    len: usize,
}

impl DmaMemory for Sim {
    type Region = SimRegion;

    fn allocate(&mut self, len: usize, direction: DmaDirection) -> Result<SimRegion, DmaFailure> {
        let mut state = self.state();
        if state.refuse_allocations {
            return Err(DmaFailure);
        }
        let iova = state.next_iova;
        state.next_iova += (len as u64).div_ceil(0x1000).max(1) * 0x1000;
        state.regions.insert(iova, vec![0; len]);
        state.directions.insert(iova, direction);
        Ok(SimRegion { iova, len })
    }

    fn iova(&self, region: &SimRegion) -> u64 {
        region.iova
    }

    fn read(
        &mut self,
        region: &SimRegion,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), DmaFailure> {
        if offset + out.len() > region.len {
            return Err(DmaFailure);
        }
        let state = self.state();
        let bytes = state.regions.get(&region.iova).ok_or(DmaFailure)?;
        out.copy_from_slice(&bytes[offset..offset + out.len()]);
        Ok(())
    }

    fn write(&mut self, region: &SimRegion, offset: usize, data: &[u8]) -> Result<(), DmaFailure> {
        if offset + data.len() > region.len {
            return Err(DmaFailure);
        }
        let mut state = self.state();
        let bytes = state.regions.get_mut(&region.iova).ok_or(DmaFailure)?;
        bytes[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn retire(&mut self, region: SimRegion) {
        let mut state = self.state();
        state.regions.remove(&region.iova);
        state.directions.remove(&region.iova);
        state.retired.push(region.iova);
    }
}

impl Interrupts for Sim {
    fn enable(&mut self, vector: u16) -> Result<(), InterruptFailure> {
        let mut state = self.state();
        *state
            .enabled
            .get_mut(usize::from(vector))
            .ok_or(InterruptFailure)? = true;
        Ok(())
    }

    fn deliveries(&self, vector: u16) -> u64 {
        self.state().deliveries[usize::from(vector)]
    }

    fn wait(&mut self, vector: u16, seen: u64, budget_us: u64) -> Result<u64, WaitTimeout> {
        let mut state = self.state();
        if vector == crate::OTHER_VECTOR {
            state.link_waits += 1;
            if state
                .link_after_waits
                .is_some_and(|after| state.link_waits >= after)
            {
                let status = state.reg(STATUS) | Status::LINK_UP.bits();
                state.set(STATUS, status);
                drop(state);
                self.state()
                    .raise(Causes::LINK_STATUS_CHANGE | Causes::OTHER);
                state = self.state();
            }
        }
        let count = state.deliveries[usize::from(vector)];
        if count > seen {
            return Ok(count);
        }
        state.now_us += budget_us;
        Err(WaitTimeout)
    }
}

impl Clock for Sim {
    fn now_us(&self) -> u64 {
        let mut state = self.state();
        state.now_us += state.tick_us;
        state.now_us
    }
}

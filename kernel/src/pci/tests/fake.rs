//! A configuration space held in memory: one 4 KiB array per function, BARs that answer the
//! all-ones write with their size mask, a status register whose error bits are
//! write-one-to-clear, and a log that checks how discovery used it. Resets (FLR, PM, secondary
//! bus reset) act on it as in QEMU 7.2 (see [`reset`]), and routing through bridges' bus
//! numbers can be turned on.

mod reset;

pub(super) use reset::ResetBehaviour;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use moat_iommu::Bdf;

use crate::pci::{ConfigAccess, ConfigSpaceSize};

/// Offset of BAR 0.
const BAR0: u16 = 0x10;
/// Command and status dword.
const COMMAND: u16 = 0x04;
/// Memory and I/O decode enables in the command register.
const DECODE: u32 = 0b11;

/// The address `text` names; panics on a typo in a test.
pub(super) fn bdf(text: &str) -> Bdf {
    text.parse().expect("test BDF")
}

/// One function's configuration space.
#[derive(Clone)]
pub(super) struct Function {
    /// The 4 KiB of configuration space.
    pub(super) bytes: [u8; 4096],
    /// For each BAR slot that is a BAR, the bits a write can change (the size mask); `None`
    /// for dwords that are not BARs in this header layout.
    pub(super) bar_writable: [Option<u32>; 6],
    /// How the function reacts to resets.
    pub(super) behaviour: ResetBehaviour,
    /// The function stopped answering: reads return all ones.
    pub(super) silent: bool,
}

impl core::fmt::Debug for Function {
    // Proptest prints failing inputs; 4 KiB of bytes would bury the interesting ones.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Function")
            .field("header", &&self.bytes[..0x40])
            .field("bar_writable", &self.bar_writable)
            .finish_non_exhaustive()
    }
}

impl Function {
    /// An all-zero function with `bar_count` unimplemented BAR slots.
    pub(super) fn new(bar_count: usize) -> Function {
        let mut bar_writable = [None; 6];
        for slot in bar_writable.iter_mut().take(bar_count) {
            *slot = Some(0);
        }
        Function {
            bytes: [0; 4096],
            bar_writable,
            behaviour: ResetBehaviour::default(),
            silent: false,
        }
    }

    pub(super) fn get32(&self, offset: u16) -> u32 {
        let at = usize::from(offset);
        u32::from_le_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    pub(super) fn put32(&mut self, offset: u16, value: u32) {
        let at = usize::from(offset);
        self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    pub(super) fn put16(&mut self, offset: u16, value: u16) {
        let at = usize::from(offset);
        self.bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    pub(super) fn put8(&mut self, offset: u16, value: u8) {
        self.bytes[usize::from(offset)] = value;
    }

    /// Which BAR slot `offset` is, if it is a BAR in this function.
    fn bar_slot(&self, offset: u16) -> Option<(usize, u32)> {
        if !(BAR0..BAR0 + 24).contains(&offset) {
            return None;
        }
        let slot = usize::from((offset - BAR0) / 4);
        self.bar_writable[slot].map(|writable| (slot, writable))
    }
}

/// A whole segment's configuration space, behind [`ConfigAccess`].
pub(super) struct FakeConfig {
    functions: RefCell<BTreeMap<Bdf, Function>>,
    limit: u16,
    routing: bool,
    writes: RefCell<Vec<(Bdf, u16, u32)>>,
    writes16: RefCell<Vec<(Bdf, u16, u16)>>,
    violations: RefCell<Vec<String>>,
}

impl FakeConfig {
    /// An empty segment reached with `size` (reads at or beyond its limit panic).
    pub(super) fn new(size: ConfigSpaceSize) -> FakeConfig {
        FakeConfig {
            functions: RefCell::new(BTreeMap::new()),
            limit: size.limit(),
            routing: false,
            writes: RefCell::new(Vec::new()),
            writes16: RefCell::new(Vec::new()),
            violations: RefCell::new(Vec::new()),
        }
    }

    /// Adds or replaces the function at `at`.
    pub(super) fn insert(&mut self, at: Bdf, function: Function) {
        self.functions.get_mut().insert(at, function);
    }

    /// From now on a function below bus 0 answers only if bridges' bus numbers lead to it, as
    /// on a real (or QEMU) bus; by default every function answers wherever it is.
    pub(super) fn route_by_bus_numbers(&mut self) {
        self.routing = true;
    }

    /// Changes how the function at `at` reacts to resets.
    pub(super) fn behave(&mut self, at: &str, behaviour: ResetBehaviour) {
        self.edit(at, |function| function.behaviour = behaviour);
    }

    /// The dword at `offset` of `at` as stored, whether or not it would answer.
    pub(super) fn peek(&self, at: &str, offset: u16) -> u32 {
        self.functions.borrow()[&bdf(at)].get32(offset)
    }

    /// Forgets the writes logged so far.
    pub(super) fn clear_writes(&self) {
        self.writes.borrow_mut().clear();
    }

    /// Removes the function at `at`.
    pub(super) fn remove(&mut self, at: Bdf) {
        self.functions.get_mut().remove(&at);
    }

    /// Changes the function at `at` (which must exist).
    pub(super) fn edit(&mut self, at: &str, change: impl FnOnce(&mut Function)) {
        let function = self
            .functions
            .get_mut()
            .get_mut(&bdf(at))
            .expect("edited function exists");
        change(function);
    }

    /// A copy of every function's bytes.
    pub(super) fn snapshot(&self) -> BTreeMap<Bdf, Vec<u8>> {
        self.functions
            .borrow()
            .iter()
            .map(|(at, function)| (*at, function.bytes.to_vec()))
            .collect()
    }

    /// Every write discovery made: (function, offset, value).
    pub(super) fn writes(&self) -> Vec<(Bdf, u16, u32)> {
        self.writes.borrow().clone()
    }

    /// Every 16-bit write: (function, offset, value).
    pub(super) fn writes16(&self) -> Vec<(Bdf, u16, u16)> {
        self.writes16.borrow().clone()
    }

    /// All-ones BAR writes made while the function was decoding.
    pub(super) fn violations(&self) -> Vec<String> {
        self.violations.borrow().clone()
    }

    fn check(&self, offset: u16) {
        assert_eq!(offset % 4, 0, "unaligned config access at {offset:#x}");
        assert!(
            offset < self.limit,
            "config access at {offset:#x} beyond reachable {:#x}",
            self.limit
        );
    }
}

impl ConfigAccess for FakeConfig {
    fn read32(&self, at: Bdf, offset: u16) -> u32 {
        self.check(offset);
        let functions = self.functions.borrow();
        if self.routing && !reset::reachable(&functions, at) {
            return u32::MAX;
        }
        functions
            .get(&at)
            .filter(|function| !function.silent)
            .map_or(u32::MAX, |function| function.get32(offset))
    }

    fn write32(&self, at: Bdf, offset: u16, value: u32) {
        self.check(offset);
        self.writes.borrow_mut().push((at, offset, value));
        let mut functions = self.functions.borrow_mut();
        if self.routing && !reset::reachable(&functions, at) {
            return;
        }
        let Some(function) = functions.get_mut(&at) else {
            return;
        };
        if function.silent || function.behaviour.read_only {
            return;
        }
        let old = function.get32(offset);
        if offset == COMMAND {
            // Command is read/write; status bits are read-only or write-one-to-clear.
            let old = function.get32(COMMAND);
            let status = (old >> 16) & !(value >> 16);
            function.put32(COMMAND, (status << 16) | (value & 0xffff));
        } else if let Some((slot, writable)) = function.bar_slot(offset) {
            if value == u32::MAX && function.get32(COMMAND) & DECODE != 0 {
                self.violations
                    .borrow_mut()
                    .push(format!("{at}: BAR {slot} sized while decoding"));
            }
            let old = function.get32(offset);
            function.put32(offset, (value & writable) | (old & !writable));
        } else {
            function.put32(offset, value);
        }
        reset::after_write(&mut functions, at, offset, old);
    }

    fn write16(&self, at: Bdf, offset: u16, value: u16) {
        assert_eq!(
            offset % 2,
            0,
            "unaligned 16-bit config write at {offset:#x}"
        );
        assert!(
            offset < self.limit,
            "config write at {offset:#x} beyond reachable {:#x}",
            self.limit
        );
        self.writes16.borrow_mut().push((at, offset, value));
        if let Some(function) = self.functions.borrow_mut().get_mut(&at) {
            function.put16(offset, value);
        }
    }
}

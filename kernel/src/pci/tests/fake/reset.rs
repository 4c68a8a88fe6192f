//! What resets do to the fake configuration space, as QEMU 7.2 does them: Initiate FLR
//! resets the function inside the config write and reads back 0 (facts H.2); a D3hot -> D0
//! transition does nothing (H.3) unless a test asks for a PM reset that works; the 0 -> 1
//! edge of Bridge Control's Secondary Bus Reset resets every function below the bridge, but
//! not the bridge (H.4). A function reset is QEMU's `pci_do_device_reset`: Command, Cache Line
//! Size, Interrupt Line, BAR addresses, MSI enable and message, MSI-X Enable and Function
//! Mask; for bridges also bus numbers, windows, Bridge Control and ACS Control.

use alloc::collections::BTreeMap;

use moat_iommu::Bdf;

use super::Function;

/// How a fake function reacts to resets; the default is QEMU 7.2's behaviour.
#[derive(Debug, Clone, Copy, Default)]
pub(in crate::pci::tests) struct ResetBehaviour {
    /// A D3hot -> D0 transition with No_Soft_Reset clear resets the function (QEMU 7.2 never
    /// does).
    pub(in crate::pci::tests) pm_resets: bool,
    /// Initiate FLR is accepted but resets nothing.
    pub(in crate::pci::tests) flr_ignored: bool,
    /// After an FLR the function answers nothing until a bus reset.
    pub(in crate::pci::tests) flr_silences: bool,
    /// A bridge whose Secondary Bus Reset resets nothing.
    pub(in crate::pci::tests) bus_reset_ignored: bool,
    /// A bridge whose Secondary Bus Reset also resets the bridge itself.
    pub(in crate::pci::tests) bus_reset_resets_issuer: bool,
    /// After any reset the BARs no longer take writes.
    pub(in crate::pci::tests) reset_freezes_bars: bool,
    /// Every write is ignored.
    pub(in crate::pci::tests) read_only: bool,
}

/// Capability IDs and registers the fake reacts to.
const PM: u8 = 0x01;
const MSI: u8 = 0x05;
const PCIE: u8 = 0x10;
const MSIX: u8 = 0x11;
const ACS: u16 = 0x000d;
const FLR_CAPABLE: u32 = 1 << 28;
const INITIATE_FLR: u32 = 1 << 15;
const NO_SOFT_RESET: u32 = 1 << 3;
const D3HOT: u32 = 0b11;
const SECONDARY_BUS_RESET: u32 = 1 << 22;

impl Function {
    /// Offset of the first standard capability with `id`.
    fn find_capability(&self, id: u8) -> Option<u16> {
        let mut pointer = self.bytes[0x34] & !3;
        for _ in 0..48 {
            if pointer < 0x40 {
                return None;
            }
            if self.bytes[usize::from(pointer)] == id {
                return Some(u16::from(pointer));
            }
            pointer = self.bytes[usize::from(pointer) + 1] & !3;
        }
        None
    }

    /// Offset of the extended capability with `id`.
    fn find_extended(&self, id: u16) -> Option<u16> {
        let mut offset = 0x100;
        for _ in 0..960 {
            let header = self.get32(offset);
            if header as u16 == id {
                return Some(offset);
            }
            offset = ((header >> 20) & 0xffc) as u16;
            if offset < 0x100 {
                return None;
            }
        }
        None
    }

    fn is_bridge(&self) -> bool {
        self.bytes[0x0e] & 0x7f == 1
    }

    /// QEMU's `pci_do_device_reset`, plus a bridge's bus registers.
    fn reset(&mut self) {
        self.put16(0x04, 0);
        self.put8(0x0c, 0);
        self.put8(0x3c, 0);
        for slot in 0..6 {
            if let Some(writable) = self.bar_writable[slot] {
                let offset = 0x10 + 4 * slot as u16;
                self.put32(offset, self.get32(offset) & !writable);
                if self.behaviour.reset_freezes_bars {
                    self.bar_writable[slot] = Some(0);
                }
            }
        }
        if self.is_bridge() {
            for offset in [0x18, 0x20, 0x24, 0x28, 0x2c, 0x30] {
                self.put32(offset, 0);
            }
            self.put16(0x1c, 0);
            self.put16(0x3e, 0);
        }
        if let Some(msi) = self.find_capability(MSI) {
            let control = self.get32(msi) >> 16;
            self.put16(msi + 2, (control & !1) as u16);
            let words = if control & 0x80 != 0 { 3 } else { 2 };
            for word in 0..words {
                self.put32(msi + 4 + 4 * word, 0);
            }
        }
        if let Some(msix) = self.find_capability(MSIX) {
            let control = self.get32(msix) >> 16;
            self.put16(msix + 2, (control & !0xc000) as u16);
        }
        if let Some(acs) = self.find_extended(ACS) {
            self.put16(acs + 6, 0);
        }
        self.silent = false;
    }
}

/// Whether configuration requests reach `at`: on bus 0 always, below it only through a
/// chain of bridges whose secondary..=subordinate range holds its bus.
pub(super) fn reachable(functions: &BTreeMap<Bdf, Function>, at: Bdf) -> bool {
    let mut bus = 0u8;
    for _ in 0..=u8::MAX {
        if bus == at.bus() {
            return true;
        }
        let next = functions.iter().find_map(|(place, function)| {
            let forwards = place.segment() == at.segment()
                && place.bus() == bus
                && function.is_bridge()
                && !function.silent;
            let (secondary, subordinate) = (function.bytes[0x19], function.bytes[0x1a]);
            (forwards && secondary > bus && (secondary..=subordinate).contains(&at.bus()))
                .then_some(secondary)
        });
        match next {
            Some(secondary) => bus = secondary,
            None => return false,
        }
    }
    false
}

/// Applies what a write of the dword at `offset` of `at` (which held `old`) triggers.
pub(super) fn after_write(functions: &mut BTreeMap<Bdf, Function>, at: Bdf, offset: u16, old: u32) {
    let Some(function) = functions.get_mut(&at) else {
        return;
    };
    let new = function.get32(offset);
    if let Some(pcie) = function.find_capability(PCIE)
        && offset == pcie + 8
        && new & INITIATE_FLR != 0
    {
        function.put32(offset, new & !INITIATE_FLR);
        if function.get32(pcie + 4) & FLR_CAPABLE != 0 && !function.behaviour.flr_ignored {
            function.reset();
            function.silent = function.behaviour.flr_silences;
        }
    }
    if let Some(pm) = function.find_capability(PM)
        && offset == pm + 4
    {
        let soft_reset = new & NO_SOFT_RESET == 0;
        if old & 0b11 == D3HOT && new & 0b11 == 0 && soft_reset && function.behaviour.pm_resets {
            function.reset();
        }
    }
    if function.is_bridge()
        && !function.behaviour.bus_reset_ignored
        && offset == 0x3c
        && old & SECONDARY_BUS_RESET == 0
        && new & SECONDARY_BUS_RESET != 0
    {
        let buses = function.bytes[0x19]..=function.bytes[0x1a];
        let itself = function.behaviour.bus_reset_resets_issuer;
        for (place, below) in functions.iter_mut() {
            let under = place.segment() == at.segment() && buses.contains(&place.bus());
            if under || (itself && *place == at) {
                below.reset();
            }
        }
    }
}

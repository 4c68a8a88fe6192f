//! VT-d remapping-unit registers (VT-d spec 10.4): offsets with their width in the type, and
//! decoders for the capability registers. A 32-bit register can only be reached through
//! [`Offset32`], so an 8-byte access to it (which aborts QEMU) cannot be written.

use bitflags::bitflags;

/// A 32-bit register offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset32(u16);

/// A 64-bit register offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset64(u16);

impl Offset32 {
    /// The byte offset.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl Offset64 {
    /// The byte offset.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// Version (10.4.1).
pub const VER: Offset32 = Offset32(0x00);
/// Capability (10.4.2).
pub const CAP: Offset64 = Offset64(0x08);
/// Extended capability (10.4.3).
pub const ECAP: Offset64 = Offset64(0x10);
/// Global command (10.4.4).
pub const GCMD: Offset32 = Offset32(0x18);
/// Global status (10.4.5).
pub const GSTS: Offset32 = Offset32(0x1c);
/// Root table address (10.4.6).
pub const RTADDR: Offset64 = Offset64(0x20);
/// Context command (10.4.7).
pub const CCMD: Offset64 = Offset64(0x28);
/// Fault status (10.4.9).
pub const FSTS: Offset32 = Offset32(0x34);
/// Fault event control (10.4.10).
pub const FECTL: Offset32 = Offset32(0x38);
/// Fault event data (10.4.11).
pub const FEDATA: Offset32 = Offset32(0x3c);
/// Fault event address (10.4.12).
pub const FEADDR: Offset32 = Offset32(0x40);
/// Fault event upper address (10.4.13).
pub const FEUADDR: Offset32 = Offset32(0x44);
/// Invalidation queue head (10.4.22).
pub const IQH: Offset64 = Offset64(0x80);
/// Invalidation queue tail (10.4.23).
pub const IQT: Offset64 = Offset64(0x88);
/// Invalidation queue address (10.4.24).
pub const IQA: Offset64 = Offset64(0x90);
/// Interrupt remapping table address (10.4, IRTA_REG).
pub const IRTA: Offset64 = Offset64(0xb8);

/// The size of the register window a unit must decode.
pub const REGISTER_WINDOW: u64 = 0x1000;

/// IVA_REG for a unit whose ECAP.IRO is `iro` (10.4.8.2).
pub const fn iva(iro: u16) -> Offset64 {
    Offset64(iro * 16)
}

/// IOTLB_REG for a unit whose ECAP.IRO is `iro` (10.4.8.1).
pub const fn iotlb(iro: u16) -> Offset64 {
    Offset64(iro * 16 + 8)
}

/// Low half of fault recording register `index` for CAP.FRO `fro` (10.4.14).
pub const fn frcd_low(fro: u16, index: u16) -> Offset64 {
    Offset64(fro * 16 + index * 16)
}

/// The 32-bit word holding F (bit 31 here, bit 127 of the record), for clearing it.
pub const fn frcd_top(fro: u16, index: u16) -> Offset32 {
    Offset32(fro * 16 + index * 16 + 12)
}

/// High half of fault recording register `index`.
pub const fn frcd_high(fro: u16, index: u16) -> Offset64 {
    Offset64(fro * 16 + index * 16 + 8)
}

bitflags! {
    /// GCMD / GSTS bits (10.4.4, 10.4.5).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Global: u32 {
        /// Translation enable / status.
        const TE = 1 << 31;
        /// Set root table pointer / status.
        const SRTP = 1 << 30;
        /// Set fault log (unused).
        const SFL = 1 << 29;
        /// Enable advanced fault logging (unused).
        const EAFL = 1 << 28;
        /// Write buffer flush / status.
        const WBF = 1 << 27;
        /// Queued invalidation enable / status.
        const QIE = 1 << 26;
        /// Interrupt remapping enable / status.
        const IRE = 1 << 25;
        /// Set interrupt remap table pointer / status.
        const SIRTP = 1 << 24;
        /// Compatibility format interrupts.
        const CFI = 1 << 23;
    }
}

impl Global {
    /// The persistent enables in GSTS that a GCMD write must carry along (the one-shot bits
    /// SRTP, SFL, WBF and SIRTP are not persistent).
    pub const PERSISTENT: Global = Global::TE
        .union(Global::EAFL)
        .union(Global::QIE)
        .union(Global::IRE)
        .union(Global::CFI);
}

bitflags! {
    /// FSTS bits (10.4.9).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FaultStatus: u32 {
        /// Primary fault overflow (W1C).
        const PFO = 1 << 0;
        /// Primary pending fault (read-only, derived from the records' F bits).
        const PPF = 1 << 1;
        /// Invalidation queue error (W1C).
        const IQE = 1 << 4;
        /// Invalidation completion error (W1C).
        const ICE = 1 << 5;
        /// Invalidation time-out error (W1C).
        const ITE = 1 << 6;
    }
}

/// FECTL.IM: interrupt mask (set at reset).
pub const FECTL_IM: u32 = 1 << 31;

/// The capability register (10.4.2), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability(pub u64);

impl Capability {
    const fn bits(self, low: u32, count: u32) -> u64 {
        (self.0 >> low) & ((1 << count) - 1)
    }
    /// ND: number of domain IDs is 2^(4 + 2*ND).
    pub const fn nd(self) -> u8 {
        self.bits(0, 3) as u8
    }
    /// RWBF: write-buffer flushing required.
    pub const fn rwbf(self) -> bool {
        self.bits(4, 1) == 1
    }
    /// CM: caching mode (not-present and faulting entries may be cached).
    pub const fn caching_mode(self) -> bool {
        self.bits(7, 1) == 1
    }
    /// SAGAW: supported adjusted guest address widths (bit 1: 39-bit, bit 2: 48-bit, bit 3: 57).
    pub const fn sagaw(self) -> u8 {
        self.bits(8, 5) as u8
    }
    /// MGAW: maximum guest address width in bits.
    pub const fn mgaw(self) -> u8 {
        self.bits(16, 6) as u8 + 1
    }
    /// FRO: fault-recording register offset, in 16-byte units.
    pub const fn fro(self) -> u16 {
        self.bits(24, 10) as u16
    }
    /// SLLPS: second-level large pages (bit 0: 2 MiB, bit 1: 1 GiB).
    pub const fn sllps(self) -> u8 {
        self.bits(34, 4) as u8
    }
    /// PSI: page-selective invalidation.
    pub const fn psi(self) -> bool {
        self.bits(39, 1) == 1
    }
    /// NFR: number of fault-recording registers.
    pub const fn fault_records(self) -> u16 {
        self.bits(40, 8) as u16 + 1
    }
    /// MAMV: maximum address mask value for page-selective invalidation.
    pub const fn mamv(self) -> u8 {
        self.bits(48, 6) as u8
    }
    /// DWD: write draining.
    pub const fn dwd(self) -> bool {
        self.bits(54, 1) == 1
    }
    /// DRD: read draining.
    pub const fn drd(self) -> bool {
        self.bits(55, 1) == 1
    }
}

/// The extended capability register (10.4.3), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedCapability(pub u64);

impl ExtendedCapability {
    const fn bit(self, n: u32) -> bool {
        (self.0 >> n) & 1 == 1
    }
    /// C: page walks snoop the CPU caches (coherent).
    pub const fn coherent(self) -> bool {
        self.bit(0)
    }
    /// QI: queued invalidation.
    pub const fn queued_invalidation(self) -> bool {
        self.bit(1)
    }
    /// DT: device-TLBs.
    pub const fn device_tlb(self) -> bool {
        self.bit(2)
    }
    /// IR: interrupt remapping.
    pub const fn interrupt_remapping(self) -> bool {
        self.bit(3)
    }
    /// EIM: extended interrupt mode (x2APIC).
    pub const fn extended_interrupt_mode(self) -> bool {
        self.bit(4)
    }
    /// PT: pass-through.
    pub const fn pass_through(self) -> bool {
        self.bit(6)
    }
    /// SC: snoop control.
    pub const fn snoop_control(self) -> bool {
        self.bit(7)
    }
    /// IRO: IOTLB register offset, in 16-byte units.
    pub const fn iro(self) -> u16 {
        ((self.0 >> 8) & 0x3ff) as u16
    }
    /// SMTS: scalable mode.
    pub const fn scalable_mode(self) -> bool {
        self.bit(43)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_default_capabilities_decode() {
        // QEMU 7.2, aw-bits=39 and 48 (facts file A.2).
        let cap = Capability(0x00d2_008c_2226_0206);
        assert_eq!(
            (cap.nd(), cap.sagaw(), cap.mgaw(), cap.fro()),
            (6, 0x2, 39, 0x22)
        );
        assert_eq!(
            (cap.sllps(), cap.psi(), cap.fault_records(), cap.mamv()),
            (0b11, true, 1, 18)
        );
        assert!(!cap.caching_mode() && !cap.rwbf() && cap.dwd() && cap.drd());
        let cap48 = Capability(0x00d2_008c_222f_0606);
        assert_eq!((cap48.sagaw(), cap48.mgaw()), (0x6, 48));
        let ecap = ExtendedCapability(0xf0_0f4a);
        assert!(!ecap.coherent() && ecap.queued_invalidation() && ecap.interrupt_remapping());
        assert!(ecap.pass_through() && !ecap.device_tlb() && !ecap.snoop_control());
        assert_eq!(ecap.iro(), 0x0f);
        assert_eq!(iotlb(ecap.iro()).get(), 0xf8);
        assert_eq!(iva(ecap.iro()).get(), 0xf0);
        assert_eq!(frcd_low(cap.fro(), 0).get(), 0x220);
        assert_eq!(frcd_top(cap.fro(), 0).get(), 0x22c);
    }

    #[test]
    fn persistent_bits_exclude_one_shots() {
        assert!(!Global::PERSISTENT.contains(Global::SRTP));
        assert!(!Global::PERSISTENT.contains(Global::WBF));
        assert_eq!(
            Global::PERSISTENT.bits() & 0x96ff_ffff,
            Global::PERSISTENT.bits()
        );
    }
}

//! Primary fault recording (VT-d spec 7.1.3, 10.4.14): draining the fault-recording registers,
//! decoding each record and clearing it and the overflow bit. Needs only register access, so it
//! runs from the fault interrupt without the unit's lock.
//!
//! Draining is safe only from one drainer at a time: a second one could read a record, lose
//! the race to clear it, and then clear the *next* record the hardware wrote into the freed
//! slot without reporting it. So [`FaultReporter::drain`] takes `&mut self` and the reporter is
//! not `Clone`: whoever shares it (the interrupt handler and thread context) must hold it behind
//! a lock, taken with interrupts off. And because a record may arrive in a slot the moment it
//! is cleared, a drain re-reads FSTS.PPF after clearing and goes round again until it is clear.

use super::Registers;
use super::registers::{self, FSTS, FaultStatus};
use crate::Bdf;

/// Direction of the faulting request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A DMA read (T = 1).
    Read,
    /// A DMA write (T = 0).
    Write,
}

/// One decoded fault record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// Requester ID of the faulting request, as the IOMMU saw it (an alias, behind bridges).
    pub source: u16,
    /// The faulting address, 4 KiB granular (FI).
    pub address: u64,
    /// Read or write.
    pub access: Access,
    /// Fault reason (FR).
    pub reason: u8,
}

impl FaultRecord {
    /// The source as a BDF in segment `segment`.
    pub fn source_bdf(&self, segment: u16) -> Bdf {
        Bdf::from_requester_id(segment, self.source)
    }

    /// Decodes a record from its two halves; `None` when F (bit 127) is clear.
    pub const fn decode(low: u64, high: u64) -> Option<FaultRecord> {
        if high >> 63 == 0 {
            return None;
        }
        Some(FaultRecord {
            source: high as u16,
            address: low & !0xfff,
            access: if (high >> 62) & 1 == 1 {
                Access::Read
            } else {
                Access::Write
            },
            reason: (high >> 32) as u8,
        })
    }
}

/// The name of fault reason `reason` (VT-d spec appendix A, legacy mode).
pub const fn fault_reason_name(reason: u8) -> &'static str {
    match reason {
        0x1 => "root entry not present",
        0x2 => "context entry not present",
        0x3 => "invalid context entry",
        0x4 => "address beyond the address width",
        0x5 => "write not permitted",
        0x6 => "read not permitted",
        0x7 => "paging entry unreadable",
        0x8 => "root table unreadable",
        0x9 => "context table unreadable",
        0xa => "root entry reserved bits set",
        0xb => "context entry reserved bits set",
        0xc => "paging entry reserved bits set",
        0xd => "translation type blocked",
        0xe => "translated address in the interrupt range",
        0x20..=0x26 => "interrupt remapping fault",
        _ => "unknown reason",
    }
}

/// Reads and clears a unit's fault-recording registers. One per unit, not `Clone`: see the
/// module text.
#[derive(Debug)]
pub struct FaultReporter<R> {
    registers: R,
    fro: u16,
    records: u16,
}

/// What one drain found besides the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainSummary {
    /// Records read and cleared.
    pub records: usize,
    /// FSTS.PFO was set: faults were lost because every record was full.
    pub overflowed: bool,
    /// FSTS.IQE was set: the invalidation queue hit a bad descriptor (the invalidation code
    /// repairs the queue and clears it).
    pub queue_error: bool,
    /// FSTS.PPF was still set after [`MAX_DRAIN_ROUNDS`] rounds: faults keep arriving faster
    /// than they are drained, and the records left will be read by the next drain.
    pub still_pending: bool,
}

/// How many times one drain reads every record and re-checks FSTS.PPF.
///
/// TIMEOUT: each round clears every record, so a new round is needed only for faults that
/// arrived during the previous one; 16 rounds end a fault storm's drain in bounded time (the
/// interrupt handler must return) while leaving nothing behind in any ordinary burst.
pub const MAX_DRAIN_ROUNDS: u32 = 16;

impl<R: Registers> FaultReporter<R> {
    /// A reporter for a unit with CAP.FRO `fro` and `records` recording registers (made only by
    /// [`RemappingUnit::take_fault_reporter`](super::RemappingUnit::take_fault_reporter)).
    pub(crate) const fn new(registers: R, fro: u16, records: u16) -> Self {
        Self {
            registers,
            fro,
            records,
        }
    }

    /// Reads every recording register, hands each valid record to `report`, clears it, then
    /// clears the overflow bit; then re-reads FSTS.PPF and goes round again while it is set
    /// (records that arrived meanwhile), at most [`MAX_DRAIN_ROUNDS`] times. The records are
    /// cleared even if `report` does nothing.
    pub fn drain(&mut self, mut report: impl FnMut(FaultRecord)) -> DrainSummary {
        let mut summary = DrainSummary::default();
        for _ in 0..MAX_DRAIN_ROUNDS {
            for index in 0..self.records {
                let high = self.registers.read64(registers::frcd_high(self.fro, index));
                let low = self.registers.read64(registers::frcd_low(self.fro, index));
                if let Some(record) = FaultRecord::decode(low, high) {
                    summary.records += 1;
                    report(record);
                    // F is write-1-to-clear; a 4-byte write to the top word touches nothing else.
                    self.registers
                        .write32(registers::frcd_top(self.fro, index), 1 << 31);
                }
            }
            let status = FaultStatus::from_bits_retain(self.registers.read32(FSTS));
            summary.queue_error |= status.contains(FaultStatus::IQE);
            if status.contains(FaultStatus::PFO) {
                summary.overflowed = true;
                self.registers.write32(FSTS, FaultStatus::PFO.bits());
            }
            summary.still_pending = status.contains(FaultStatus::PPF);
            if !summary.still_pending {
                break;
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_like_qemu_writes_them() {
        // SID 03:00.0, reason 5 (write), address 0x1234_5000, F set, T = 0.
        let high = (1u64 << 63) | (5u64 << 32) | 0x0300;
        let record = FaultRecord::decode(0x1234_5678, high).unwrap();
        assert_eq!(record.source, 0x0300);
        assert_eq!(record.address, 0x1234_5000);
        assert_eq!(record.access, Access::Write);
        assert_eq!(record.reason, 5);
        assert_eq!(record.source_bdf(0).to_string(), "0000:03:00.0");
        let read = FaultRecord::decode(0, (1u64 << 63) | (1 << 62) | (6u64 << 32) | 0x20).unwrap();
        assert_eq!(
            (read.access, read.reason, read.source),
            (Access::Read, 6, 0x20)
        );
        assert_eq!(FaultRecord::decode(0x1000, 5u64 << 32), None);
        assert_eq!(fault_reason_name(6), "read not permitted");
        assert_eq!(fault_reason_name(0x7f), "unknown reason");
    }
}

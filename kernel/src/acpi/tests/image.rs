//! Test images of physical memory holding ACPI tables: a sparse byte map behind `PhysRead`
//! and builders for each structure. A captured dump (address + bytes per table) can be loaded
//! into the same `SparseMemory` later.

use crate::acpi::{PhysRead, ReadError};
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// Physical memory made of separate readable chunks; everything else is unreadable.
#[derive(Debug, Clone, Default)]
pub(super) struct SparseMemory {
    chunks: BTreeMap<u64, Vec<u8>>,
}

impl SparseMemory {
    /// Makes `[start, start + length)` readable, zero filled.
    pub(super) fn add_zeroed(&mut self, start: u64, length: usize) {
        let overlaps = self
            .chunks
            .iter()
            .any(|(&s, bytes)| s < start + length as u64 && start < s + bytes.len() as u64);
        assert!(!overlaps, "test chunks must not overlap");
        self.chunks.insert(start, vec![0; length]);
    }

    /// Overwrites readable memory at `address` with `bytes`.
    pub(super) fn write(&mut self, address: u64, bytes: &[u8]) {
        for (offset, &byte) in bytes.iter().enumerate() {
            *self
                .byte_mut(address + offset as u64)
                .expect("writes stay inside readable chunks") = byte;
        }
    }

    /// Adds `value` to the byte at `address` (breaks a checksum).
    pub(super) fn corrupt(&mut self, address: u64) {
        let byte = self.byte_mut(address).expect("readable");
        *byte = byte.wrapping_add(0x5a);
    }

    fn chunk_for(&self, address: u64) -> Option<(u64, &Vec<u8>)> {
        let (&start, bytes) = self.chunks.range(..=address).next_back()?;
        ((address - start) < bytes.len() as u64).then_some((start, bytes))
    }

    fn byte_mut(&mut self, address: u64) -> Option<&mut u8> {
        let (start, _) = self.chunk_for(address)?;
        self.chunks
            .get_mut(&start)?
            .get_mut((address - start) as usize)
    }
}

impl PhysRead for SparseMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        for (offset, slot) in buf.iter_mut().enumerate() {
            let address = addr.checked_add(offset as u64).ok_or(ReadError)?;
            let (start, bytes) = self.chunk_for(address).ok_or(ReadError)?;
            *slot = bytes[(address - start) as usize];
        }
        Ok(())
    }
}

/// OEM ID used by QEMU's firmware.
pub(super) const OEM: [u8; 6] = *b"BOCHS ";

/// Where the QEMU-like image puts things (SeaBIOS on q35 uses similar addresses).
pub(super) const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);
pub(super) const TABLE_AREA: (u64, u64) = (0x1ffe_0000, 0x2000_0000);
pub(super) const RSDP_AT: u64 = 0xf_5a60;
pub(super) const FACS_AT: u64 = 0x1ffe_0000;
pub(super) const DSDT_AT: u64 = 0x1ffe_0040;
pub(super) const FACP_AT: u64 = 0x1ffe_2000;
pub(super) const APIC_AT: u64 = 0x1ffe_2100;
pub(super) const MCFG_AT: u64 = 0x1ffe_2200;
pub(super) const DMAR_AT: u64 = 0x1ffe_2300;
pub(super) const RSDT_AT: u64 = 0x1ffe_2400;
pub(super) const XSDT_AT: u64 = 0x1ffe_2500;
/// Free space in the table area for tests to add tables.
pub(super) const SPARE_AT: u64 = 0x1ffe_3000;

/// Sets byte `at` so that all of `bytes` sums to zero.
pub(super) fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = 0u8.wrapping_sub(sum);
}

/// A System Description Table with a correct length and checksum.
pub(super) fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(signature);
    bytes.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
    bytes.push(revision);
    bytes.push(0); // checksum, fixed below
    bytes.extend_from_slice(&OEM);
    bytes.extend_from_slice(b"BXPC    ");
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(b"BXPC");
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(body);
    fix_checksum(&mut bytes, 9);
    bytes
}

/// An ACPI 1.0 RSDP (revision 0, 20 bytes).
pub(super) fn rsdp_v0(rsdt: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RSD PTR ");
    bytes.push(0);
    bytes.extend_from_slice(&OEM);
    bytes.push(0);
    bytes.extend_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut bytes, 8);
    bytes
}

/// An ACPI 2.0+ RSDP (revision 2, 36 bytes) with both checksums correct.
pub(super) fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut bytes = rsdp_v0(rsdt);
    bytes[15] = 2;
    bytes.extend_from_slice(&36u32.to_le_bytes());
    bytes.extend_from_slice(&xsdt.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    fix_checksum(&mut bytes[..20], 8);
    fix_checksum(&mut bytes, 32);
    bytes
}

pub(super) fn rsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries
        .iter()
        .flat_map(|&e| {
            u32::try_from(e)
                .expect("RSDT entries are 32-bit")
                .to_le_bytes()
        })
        .collect();
    sdt(b"RSDT", 1, &body)
}

pub(super) fn xsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

/// A FADT of `length` bytes (116 for ACPI 1.0, 244 for 2.0+) with the four table pointers.
pub(super) fn fadt(length: usize, facs: u32, dsdt: u32, x_facs: u64, x_dsdt: u64) -> Vec<u8> {
    let mut body = vec![0u8; length - 36];
    body[0..4].copy_from_slice(&facs.to_le_bytes());
    body[4..8].copy_from_slice(&dsdt.to_le_bytes());
    if length >= 148 {
        body[96..104].copy_from_slice(&x_facs.to_le_bytes());
        body[104..112].copy_from_slice(&x_dsdt.to_le_bytes());
    }
    sdt(b"FACP", if length >= 148 { 3 } else { 1 }, &body)
}

/// A FACS: 64-byte fixed structure, no checksum.
pub(super) fn facs(length: u32, version: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; 64];
    bytes[0..4].copy_from_slice(b"FACS");
    bytes[4..8].copy_from_slice(&length.to_le_bytes());
    bytes[32] = version;
    bytes
}

/// A DMAR like QEMU's with one DRHD: 80 bytes.
pub(super) fn dmar() -> Vec<u8> {
    let mut body = vec![38u8, 0x01];
    body.extend_from_slice(&[0; 10]);
    // DRHD: type 0, length 32, INCLUDE_PCI_ALL, segment 0, base 0xfed90000, one scope entry.
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&32u16.to_le_bytes());
    body.extend_from_slice(&[1, 0, 0, 0]);
    body.extend_from_slice(&0xfed9_0000u64.to_le_bytes());
    body.extend_from_slice(&[3, 8, 0, 0, 0, 0x1f, 0, 0]);
    body.extend_from_slice(&[0; 8]);
    sdt(b"DMAR", 1, &body)
}

/// Where a QEMU-like firmware would point the RSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Root {
    /// ACPI 1.0: RSDP revision 0, RSDT only.
    Rsdt,
    /// ACPI 2.0+: RSDP revision 2 with both an RSDT and an XSDT.
    Both,
}

/// A QEMU-like machine: RSDP in the BIOS area, then FACS, DSDT, FACP, APIC, MCFG and DMAR
/// in a reserved area near the top of 512 MiB, listed by an RSDT (and an XSDT).
pub(super) fn qemu_image(root: Root) -> SparseMemory {
    let mut mem = SparseMemory::default();
    mem.add_zeroed(BIOS_AREA.0, (BIOS_AREA.1 - BIOS_AREA.0) as usize);
    mem.add_zeroed(TABLE_AREA.0, (TABLE_AREA.1 - TABLE_AREA.0) as usize);
    mem.write(FACS_AT, &facs(64, 1));
    mem.write(DSDT_AT, &sdt(b"DSDT", 1, &[0x5b, 0x82, 0x10, 0x2e]));
    mem.write(
        FACP_AT,
        &fadt(244, FACS_AT as u32, DSDT_AT as u32, 0, DSDT_AT),
    );
    mem.write(APIC_AT, &sdt(b"APIC", 1, &[0; 44]));
    mem.write(MCFG_AT, &sdt(b"MCFG", 1, &[0; 24]));
    mem.write(DMAR_AT, &dmar());
    let entries = [FACP_AT, APIC_AT, MCFG_AT, DMAR_AT];
    mem.write(RSDT_AT, &rsdt(&entries));
    match root {
        Root::Rsdt => mem.write(RSDP_AT, &rsdp_v0(RSDT_AT as u32)),
        Root::Both => {
            mem.write(XSDT_AT, &xsdt(&entries));
            mem.write(RSDP_AT, &rsdp_v2(RSDT_AT as u32, XSDT_AT));
        }
    }
    mem
}

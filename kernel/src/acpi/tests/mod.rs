//! Tests for RSDP discovery and the table listing, on QEMU-like memory images built in
//! `image` and then damaged in the ways real firmware (or a hostile device) can.

mod captured;
mod damage;
mod fadt;
mod image;
mod listing;
mod rsdp;

use super::*;
use alloc::vec::Vec;
use image::*;

/// Reads the RSDP of an image and lists its tables, both of which must succeed.
fn listed(mem: &SparseMemory) -> TableList {
    let rsdp = read_rsdp(mem, RSDP_AT).expect("valid RSDP");
    list_tables(mem, &rsdp).expect("valid root")
}

/// `(signature, address, status)` of every listed table, for whole-list comparisons.
fn summary(list: &TableList) -> Vec<(&[u8; 4], u64, TableStatus)> {
    list.iter()
        .map(|t| (&t.signature, t.address, t.status))
        .collect()
}

/// The summary from the `from`th table on.
fn tail(list: &TableList, from: usize) -> Vec<(&[u8; 4], u64, TableStatus)> {
    summary(list).into_iter().skip(from).collect()
}

const OK: TableStatus = TableStatus::Ok;

/// A QEMU-like image whose RSDT lists `extra` after the usual tables, with `tables` written in.
fn with_extra_entries(extra: &[u64], tables: &[(u64, Vec<u8>)]) -> SparseMemory {
    let mut mem = qemu_image(Root::Rsdt);
    for (address, bytes) in tables {
        mem.write(*address, bytes);
    }
    let mut entries = Vec::from([FACP_AT, APIC_AT, MCFG_AT, DMAR_AT]);
    entries.extend_from_slice(extra);
    mem.write(RSDT_AT, &rsdt(&entries));
    mem
}

/// The listing of a QEMU-like image whose FADT is replaced by `fadt_bytes`.
fn with_fadt(fadt_bytes: Vec<u8>, extra: &[(u64, Vec<u8>)]) -> TableList {
    let mut mem = qemu_image(Root::Rsdt);
    mem.write(FACP_AT, &fadt_bytes);
    for (address, bytes) in extra {
        mem.write(*address, bytes);
    }
    listed(&mem)
}

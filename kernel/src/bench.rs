//! `test=bench-vtd`: the cost of domain map and unmap (4 KiB and 2 MiB), each as time per
//! operation and as a ratio to a raw page-table store loop measured in the same boot, and the
//! IOTLB invalidations issued per 1000 unmapped pages. Prints `bench: ...` lines that
//! `cargo xtask bench` collects; it asserts nothing about speed.

use crate::arch::io;
use crate::vtd::hw::KernelTables;
use crate::vtd::{self, Domain};
use alloc::format;
use alloc::string::String;
use moat_iommu::entries::{Access, Iova, PageSize, PhysAddr};
use moat_iommu::paging::TableMemory;

const PAGES_4K: u64 = 1024;
const PAGES_2M: u64 = 64;
const BASE_4K: u64 = 0x1000_0000;
const BASE_2M: u64 = 0x4000_0000;

fn cycles_to_ns(cycles: u64) -> f64 {
    cycles as f64 * 1e9 / crate::time::tsc_hz().max(1) as f64
}

fn report(name: &str, ops: u64, cycles: u64, store_ns: f64) {
    let per_op = cycles_to_ns(cycles) / ops as f64;
    crate::kprintln!(
        "bench: name={name} ops={ops} ns_per_op={per_op:.1} ratio_to_store={:.2}",
        per_op / store_ns
    );
}

fn err(e: impl core::fmt::Debug) -> String {
    format!("{e:?}")
}

/// Runs the benchmark on the first remapping unit.
pub fn run() -> Result<(), String> {
    if let Some(reason) = vtd::off_reason() {
        return Err(format!("DMA remapping is off ({reason})"));
    }
    let mut domain = Domain::new(0).map_err(err)?;
    let phys = crate::dma::DmaBuffer::new(2 << 20, 2 << 20)
        .map_err(err)?
        .phys();
    let phys = PhysAddr::new(phys).map_err(err)?;

    // Baseline: plain stores into a table frame through the same memory path the tables use.
    let mut tables = KernelTables { coherent: false };
    let frame = tables.alloc_table().map_err(err)?;
    let stores = 4096u64;
    let start = io::rdtsc();
    for i in 0..stores {
        tables.write(frame, (i % 512) as usize, i | 3);
    }
    let store_ns = cycles_to_ns(io::rdtsc() - start) / stores as f64;
    tables.free_table(frame);
    crate::kprintln!(
        "bench: name=raw-store ops={stores} ns_per_op={store_ns:.1} ratio_to_store=1.00"
    );

    let iova = |base: u64, i: u64, size: u64| Iova::new(base + i * size).map_err(err);
    for (label, size, count, base) in [
        ("4k", PageSize::Size4K, PAGES_4K, BASE_4K),
        ("2m", PageSize::Size2M, PAGES_2M, BASE_2M),
    ] {
        let bytes = size.bytes();
        let start = io::rdtsc();
        for i in 0..count {
            let flush = domain
                .map(iova(base, i, bytes)?, phys, size, Access::ReadWrite)
                .map_err(err)?;
            domain.complete_map(flush).map_err(err)?;
        }
        report(
            &format!("map-{label}"),
            count,
            io::rdtsc() - start,
            store_ns,
        );
        let before = vtd::invalidations();
        let start = io::rdtsc();
        for i in 0..count {
            let flush = domain
                .unmap(iova(base, i, bytes)?..iova(base, i + 1, bytes)?)
                .map_err(err)?;
            domain.complete_unmap(flush).map_err(err)?;
        }
        report(
            &format!("unmap-{label}"),
            count,
            io::rdtsc() - start,
            store_ns,
        );
        let one_by_one = vtd::invalidations() - before;
        // The same pages again, unmapped as one batch.
        for i in 0..count {
            let flush = domain
                .map(iova(base, i, bytes)?, phys, size, Access::ReadWrite)
                .map_err(err)?;
            domain.complete_map(flush).map_err(err)?;
        }
        let before = vtd::invalidations();
        let start = io::rdtsc();
        let flush = domain
            .unmap(iova(base, 0, bytes)?..iova(base, count, bytes)?)
            .map_err(err)?;
        domain.complete_unmap(flush).map_err(err)?;
        report(
            &format!("unmap-{label}-batched"),
            count,
            io::rdtsc() - start,
            store_ns,
        );
        let batched = vtd::invalidations() - before;
        let pages = count * bytes / 4096;
        crate::kprintln!(
            "bench: name=invalidations-{label} pages={pages} one_by_one_per_1000_pages={:.2} batched_per_1000_pages={:.3}",
            one_by_one as f64 * 1000.0 / pages as f64,
            batched as f64 * 1000.0 / pages as f64
        );
    }
    Ok(())
}

//! `test=bench-vtd`: the cost of domain map and unmap (4 KiB and 2 MiB), each as time per
//! operation and as a ratio to a raw page-table store loop measured in the same boot, and the
//! IOTLB invalidations issued per 1000 unmapped pages. Prints `bench: ...` lines that
//! `cargo xtask bench` collects; it asserts nothing about speed.

use crate::arch::io;
use crate::dma::DmaBuffer;
use crate::vtd::hw::KernelTables;
use crate::vtd::{self, IoAddressSpace};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::entries::Access;
use moat_iommu::paging::TableMemory;

const PAGES_4K: u64 = 1024;
const PAGES_2M: u64 = 48;

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

/// Runs the benchmark on an address space of the first unit, attached to the first placed
/// group so that every change is invalidated as it would be for a device.
pub(crate) fn run() -> Result<(), String> {
    if let Some(reason) = vtd::off_reason() {
        return Err(format!("DMA remapping is off ({reason})"));
    }
    let space = IoAddressSpace::new(48).map_err(err)?;
    let group = crate::devices::all()
        .and_then(|all| all.devices.iter().find_map(|d| vtd::group_of(d.bdf)))
        .ok_or("no IOMMU group to attach the benchmark's address space to")?;
    vtd::groups::attach(group, &space).map_err(err)?;
    let result = measure(&space);
    vtd::groups::detach(group).map_err(err)?;
    result
}

fn measure(space: &IoAddressSpace) -> Result<(), String> {
    // Baseline: plain stores into a table frame through the same memory path the tables use.
    let mut tables = KernelTables::new(false);
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

    for (label, bytes, count) in [("4k", 4096u64, PAGES_4K), ("2m", 2 << 20, PAGES_2M)] {
        // Warm-up: under TCG the first run of a code path pays for its translation; one map
        // and unmap of this size first keeps that out of the figures.
        let warm = space
            .map(
                DmaBuffer::new(bytes, bytes).map_err(err)?,
                Access::ReadWrite,
            )
            .map_err(err)?;
        drop(space.unmap(warm).map_err(err)?);
        let mut buffers = Vec::new();
        for _ in 0..count {
            buffers.push(DmaBuffer::new(bytes, bytes).map_err(err)?);
        }
        let start = io::rdtsc();
        let mut iovas = Vec::new();
        for buffer in buffers.drain(..) {
            iovas.push(space.map(buffer, Access::ReadWrite).map_err(err)?);
        }
        report(
            &format!("map-{label}"),
            count,
            io::rdtsc() - start,
            store_ns,
        );
        let before = vtd::invalidations();
        let start = io::rdtsc();
        for iova in iovas.drain(..) {
            buffers.push(space.unmap(iova).map_err(err)?);
        }
        report(
            &format!("unmap-{label}"),
            count,
            io::rdtsc() - start,
            store_ns,
        );
        let one_by_one = vtd::invalidations() - before;
        // The same buffers again, unmapped as one batch.
        for buffer in buffers.drain(..) {
            iovas.push(space.map(buffer, Access::ReadWrite).map_err(err)?);
        }
        let before = vtd::invalidations();
        let start = io::rdtsc();
        let back = space.unmap_many(&iovas).map_err(err)?;
        report(
            &format!("unmap-{label}-batched"),
            count,
            io::rdtsc() - start,
            store_ns,
        );
        drop(back);
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

//! The benchmark yardstick on real VT-d, booted with `iommu.passthrough=` naming the root-bus
//! edu. `dma-passthrough`: that edu's group gets pass-through context entries (TT = 2) when
//! attached, so its DMA reaches a physical address nothing maps; the edu behind the
//! PCIe-to-PCI bridge stays translated and faults on the same address; the registry says which
//! is which. `driver-edu-passthrough` (with `drivers=edu`): the edu driver's `DeviceDma`
//! hands the pass-through edu physical addresses, maps and invalidates nothing for it, and
//! still maps and invalidates per request for the translated edu.

use super::rig::{Rig, dma_source, edus, err, expect_fault, faults_after, pattern};
use crate::drivers::{self, Driver, EduDriver};
use alloc::format;
use alloc::string::String;
use moat_edu::Direction;
use moat_iommu::engine::fault::Access as FaultAccess;
use moat_kernel::dma::DmaBuffer;
use moat_kernel::passthrough::{self, Translation};
use moat_kernel::vtd::{self, faults};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[
    (
        "dma-passthrough",
        "with iommu.passthrough=<root-bus edu>: that edu DMAs to physical addresses \
         untranslated, the bridged edu stays translated and faults there",
    ),
    (
        "driver-edu-passthrough",
        "with drivers=edu and iommu.passthrough=<root-bus edu>: DeviceDma gives that edu \
         physical addresses and no invalidation, the bridged edu IOVAs and invalidations",
    ),
];

/// Runs `name`, or `None` if it is not this family's.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    match name {
        "dma-passthrough" => Some(passes_through()),
        "driver-edu-passthrough" => Some(driver_dma()),
        _ => None,
    }
}

/// One edu driver round trip on `bdf`: (its translation, invalidations it caused, mappings
/// left in its space, its DMA counters).
fn driver_round_trip(
    bdf: moat_iommu::Bdf,
) -> Result<(Translation, u64, usize, passthrough::DmaStats), String> {
    drivers::with::<EduDriver, _>(bdf, |edu| {
        let before = vtd::invalidations();
        edu.round_trip(0x7a)?;
        let caused = vtd::invalidations() - before;
        let dma = edu.device().dma_ref();
        Ok((dma.translation(), caused, dma.mappings().len(), dma.stats()))
    })
    .ok_or(format!("no edu driver runs on {bdf}"))?
}

fn driver_dma() -> Result<(), String> {
    let alone = moat_iommu::Bdf::new(0, 0, 4, 0).map_err(err)?;
    let bridged = moat_iommu::Bdf::new(0, 2, 1, 0).map_err(err)?;
    let (translation, caused, mapped, stats) = driver_round_trip(alone)?;
    if translation != Translation::PassThrough || caused != 0 || mapped != 0 || stats.flushes != 0 {
        return Err(format!(
            "{alone}: {translation:?}, {caused} invalidation(s), {mapped} mapping(s) left, {stats:?}: \
             expected pass-through with nothing mapped or invalidated"
        ));
    }
    moat_kernel::info!(
        "test",
        "driver-edu-passthrough: {alone}: round trip at physical addresses, 0 invalidations, {} maps, nothing mapped",
        stats.maps
    );
    let (translation, caused, _, stats) = driver_round_trip(bridged)?;
    if translation != Translation::Strict || caused == 0 {
        return Err(format!(
            "{bridged}: {translation:?} with {caused} invalidation(s): expected strict, invalidated"
        ));
    }
    moat_kernel::info!(
        "test",
        "driver-edu-passthrough: ok ({bridged} strict: {caused} invalidation(s) for one round trip, {} flushes in all)",
        stats.flushes
    );
    Ok(())
}

fn passes_through() -> Result<(), String> {
    if let Some(reason) = vtd::off_reason() {
        return Err(format!("DMA remapping is off ({reason})"));
    }
    let all = edus();
    let alone = all
        .iter()
        .copied()
        .find(|bdf| dma_source(*bdf).is_ok_and(|s| s == bdf.requester_id()))
        .ok_or("no edu on the root bus")?;
    let bridged = all
        .iter()
        .copied()
        .find(|bdf| dma_source(*bdf).is_ok_and(|s| s != bdf.requester_id()))
        .ok_or("no edu behind a PCIe-to-PCI bridge")?;

    let yardstick = Rig::new(alone, "pass-through")?;
    if yardstick.device.translation() != Translation::PassThrough {
        return Err(format!(
            "{alone} is translated strictly: boot with iommu.passthrough={alone}"
        ));
    }
    let data = pattern(1024, 29);
    let buffer = DmaBuffer::new(4096, 4096).map_err(err)?;
    buffer.write(0, &data).map_err(err)?;
    // Nothing is mapped for this buffer anywhere: in pass-through the device's DMA address is
    // the physical address.
    let phys = buffer.physical_address();
    let before = faults::interrupts_taken();
    yardstick.transfer(Direction::ToDevice, phys, 0, 1024)?;
    yardstick.transfer(Direction::FromDevice, phys + 2048, 0, 1024)?;
    let records = faults_after(before);
    if !records.is_empty() {
        return Err(format!("pass-through DMA faulted: {records:?}"));
    }
    let mut back = alloc::vec![0u8; 1024];
    buffer.read(2048, &mut back).map_err(err)?;
    if back != data {
        return Err(format!(
            "{alone}: the data did not arrive at PA {:#x}",
            phys + 2048
        ));
    }
    moat_kernel::info!(
        "test",
        "dma-passthrough: {alone} copied 1024 bytes out of PA {phys:#x} and back to PA {:#x} untranslated",
        phys + 2048
    );

    let strict = Rig::new(bridged, "strict")?;
    if strict.device.translation() != Translation::Strict {
        return Err(format!(
            "{bridged} passes through too; only {alone} was asked for"
        ));
    }
    buffer.fill(0x5a);
    let source = dma_source(bridged)?;
    let before = faults::interrupts_taken();
    strict.transfer(Direction::FromDevice, phys, 0, 256)?;
    expect_fault(&faults_after(before), source, phys, FaultAccess::Write, 5)?;
    let mut check = alloc::vec![0u8; 4096];
    buffer.read(0, &mut check).map_err(err)?;
    if check.iter().any(|&b| b != 0x5a) {
        return Err(format!(
            "{bridged} is translated but its DMA to PA {phys:#x} changed memory"
        ));
    }

    let marked = " pass-through: benchmark yardstick, no isolation";
    let lines = passthrough::registry_lines();
    let line_of = |bdf: moat_iommu::Bdf| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("registry: {bdf} ")))
            .cloned()
            .unwrap_or_default()
    };
    if !line_of(alone).ends_with(marked) || line_of(bridged).contains("pass-through") {
        return Err(format!("registry lines wrong: {lines:?}"));
    }
    for line in &lines {
        moat_kernel::info!("test", "{line}");
    }
    moat_kernel::info!(
        "test",
        "dma-passthrough: ok ({alone} untranslated; {bridged} translated, its write to PA {phys:#x} faulted and changed nothing)"
    );
    Ok(())
}

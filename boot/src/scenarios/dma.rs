//! DMA isolation scenarios (`test=dma-...`), proven with QEMU's edu DMA engine: translation,
//! blocking, permissions, invalidation, superpages and bridge aliases. Each edu is bound once
//! through the passthrough API and gets a fresh address space per test. Each checks what the
//! hardware did — data where the mapping says, the IOMMU's fault record (source, address,
//! direction, reason), memory left untouched — not what the kernel believes.

use super::rig::{Rig, dma_source, edus, err, expect_fault, faults_after, pattern};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_edu::Direction;
use moat_iommu::Bdf;
use moat_iommu::engine::fault::Access as FaultAccess;
use moat_iommu::entries::{Access, Iova};
use moat_kernel::dma::DmaBuffer;
use moat_kernel::info;
use moat_kernel::vtd::{self, faults};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[
    (
        "dma-translate",
        "edu copies through an IOVA != PA; data lands where the mapping says",
    ),
    (
        "dma-blocked",
        "DMA to unmapped IOVAs faults (write and read) and leaves memory unchanged",
    ),
    (
        "dma-readonly",
        "a device write into a read-only mapping faults and changes nothing",
    ),
    (
        "dma-unmap",
        "map, DMA, unmap, DMA again: the second DMA faults (the IOTLB was invalidated)",
    ),
    (
        "dma-superpage",
        "a 2 MiB mapping serves DMA at offsets inside it",
    ),
    (
        "dma-alias",
        "an edu behind a PCIe-to-PCI bridge DMAs with the bridge's alias requester ID",
    ),
    ("dma-all", "all of the above in one boot"),
];

/// An IOVA nothing is mapped at (below edu's 28-bit mask, above every allocation here).
const IOVA_UNMAPPED: u64 = 0x0bad_0000;

/// One DMA test on a rig: a description of what it saw, or why it failed.
type DmaTest = fn(&mut Rig) -> Result<String, String>;

/// Runs `name`, or `None` if it is not a DMA scenario.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    let tests: &[(&str, bool, DmaTest)] = &[
        ("dma-translate", false, translate),
        ("dma-blocked", false, blocked),
        ("dma-readonly", false, readonly),
        ("dma-unmap", false, unmap_invalidates),
        ("dma-superpage", false, superpage),
        ("dma-alias", true, alias),
    ];
    let selected: Vec<_> = if name == "dma-all" {
        tests.iter().collect()
    } else {
        tests.iter().filter(|(n, _, _)| *n == name).collect()
    };
    if selected.is_empty() {
        return None;
    }
    if let Some(reason) = vtd::off_reason() {
        return Some(Err(format!("DMA remapping is off ({reason})")));
    }
    let mut rigs: [Option<Rig>; 2] = [None, None];
    for (test, behind_bridge, body) in selected {
        let slot = usize::from(*behind_bridge);
        let rig = match rigs[slot].take() {
            Some(mut rig) => rig.fresh_space().map(|()| rig),
            None => find_edu(*behind_bridge).and_then(|bdf| Rig::new(bdf, "dma-scenarios")),
        };
        let mut rig = match rig {
            Ok(rig) => rig,
            Err(why) => return Some(Err(format!("{test}: {why}"))),
        };
        let _ = faults::take_recent();
        match body(&mut rig) {
            Ok(detail) => info!("test", "{test}: ok ({detail})"),
            Err(why) => return Some(Err(format!("{test}: {why}"))),
        }
        rigs[slot] = Some(rig);
    }
    Some(Ok(()))
}

/// An edu whose DMA carries its own requester ID (`behind_bridge` false) or a bridge alias.
fn find_edu(behind_bridge: bool) -> Result<Bdf, String> {
    edus()
        .into_iter()
        .find(|bdf| dma_source(*bdf).is_ok_and(|s| (s != bdf.requester_id()) == behind_bridge))
        .ok_or(format!(
            "no edu {} in this machine",
            if behind_bridge {
                "behind a PCIe-to-PCI bridge"
            } else {
                "without bridge aliases"
            }
        ))
}

fn buffer_with(data: &[u8]) -> Result<DmaBuffer, String> {
    let buffer = DmaBuffer::new(4096, 4096).map_err(err)?;
    buffer.write(0, data).map_err(err)?;
    Ok(buffer)
}

fn read_back(rig: &Rig, iova: Iova, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    let mut back = alloc::vec![0u8; len];
    rig.space
        .with_buffer(iova, |b| b.read(offset, &mut back))
        .ok_or("the buffer is not mapped")?
        .map_err(err)?;
    Ok(back)
}

fn translate(rig: &mut Rig) -> Result<String, String> {
    let data = pattern(1024, 3);
    let buffer = buffer_with(&data)?;
    let phys = buffer.physical_address();
    let iova = rig
        .space
        .map(buffer, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    if iova.as_u64() == phys {
        return Err("the buffer happens to sit at its IOVA; the test would prove nothing".into());
    }
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, iova.as_u64(), 0, 1024)?;
    rig.transfer(Direction::FromDevice, iova.as_u64() + 2048, 0, 1024)?;
    let back = read_back(rig, iova, 2048, 1024)?;
    let records = faults_after(before);
    if !records.is_empty() {
        return Err(format!("unexpected faults: {records:?}"));
    }
    if back != data {
        return Err("the data did not arrive at buffer+2048 through the IOVA".into());
    }
    Ok(format!(
        "{}: IOVA {:#x} -> PA {phys:#x}, 1024 bytes out and back",
        rig.bdf,
        iova.as_u64()
    ))
}

fn blocked(rig: &mut Rig) -> Result<String, String> {
    let source = dma_source(rig.bdf)?;
    let sentinel = DmaBuffer::new(4096, 4096).map_err(err)?;
    sentinel.fill(0xa5);
    let before = faults::interrupts_taken();
    // A write to the sentinel's own physical address: identity would hit it; the space has
    // no mapping there, so the IOMMU must stop it.
    let target = sentinel.physical_address();
    rig.transfer(Direction::FromDevice, target, 0, 256)?;
    let records = faults_after(before);
    expect_fault(&records, source, target, FaultAccess::Write, 5)?;
    let mut check = alloc::vec![0u8; 4096];
    sentinel.read(0, &mut check).map_err(err)?;
    if check.iter().any(|&b| b != 0xa5) {
        return Err("the sentinel memory changed although the DMA was blocked".into());
    }
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_UNMAPPED, 0, 64)?;
    let records = faults_after(before);
    expect_fault(&records, source, IOVA_UNMAPPED, FaultAccess::Read, 6)?;
    let count = faults::fault_count(rig.bdf.segment(), source);
    if count < 2 {
        return Err(format!(
            "per-device fault counter is {count}, expected >= 2"
        ));
    }
    Ok(format!(
        "{}: write to {target:#x} and read from {IOVA_UNMAPPED:#x} faulted, memory unchanged, {count} faults counted",
        rig.bdf
    ))
}

fn readonly(rig: &mut Rig) -> Result<String, String> {
    let source = dma_source(rig.bdf)?;
    let data = pattern(512, 11);
    let iova = rig
        .space
        .map(buffer_with(&data)?, Access::Read)
        .map_err(|f| err(f.error))?;
    // The write comes first: QEMU records a fault only on a page walk; once a read has cached
    // the read-only translation in its IOTLB, a write through it is dropped without a record.
    let before = faults::interrupts_taken();
    rig.transfer(Direction::FromDevice, iova.as_u64() + 1024, 0, 512)?;
    let records = faults_after(before);
    expect_fault(&records, source, iova.as_u64(), FaultAccess::Write, 5)?;
    if read_back(rig, iova, 1024, 512)?.iter().any(|&b| b != 0) {
        return Err("the read-only page was written".into());
    }
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, iova.as_u64(), 0, 512)?;
    let records = faults_after(before);
    if !records.is_empty() {
        return Err(format!(
            "a read of a read-only mapping faulted: {records:?}"
        ));
    }
    Ok(format!(
        "{}: read allowed, write faulted with reason 5, page unchanged",
        rig.bdf
    ))
}

fn unmap_invalidates(rig: &mut Rig) -> Result<String, String> {
    let source = dma_source(rig.bdf)?;
    let iova = rig
        .space
        .map(DmaBuffer::new(4096, 4096).map_err(err)?, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, iova.as_u64(), 0, 256)?;
    if !faults_after(before).is_empty() {
        return Err("the mapped DMA faulted".into());
    }
    let invalidations = vtd::invalidations();
    let buffer = rig.space.unmap(iova).map_err(err)?;
    let issued = vtd::invalidations() - invalidations;
    if issued == 0 {
        return Err("the unmap issued no IOTLB invalidation".into());
    }
    drop(buffer);
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, iova.as_u64(), 0, 256)?;
    let records = faults_after(before);
    expect_fault(&records, source, iova.as_u64(), FaultAccess::Read, 6)?;
    Ok(format!(
        "{}: DMA after unmap faulted ({issued} IOTLB invalidation issued; the buffer came back and was freed)",
        rig.bdf
    ))
}

fn superpage(rig: &mut Rig) -> Result<String, String> {
    let data = pattern(512, 29);
    let small = rig
        .space
        .map(buffer_with(&data)?, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    let big = DmaBuffer::new(2 << 20, 2 << 20).map_err(err)?;
    let phys = big.physical_address();
    let big = rig
        .space
        .map(big, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    rig.transfer(Direction::ToDevice, small.as_u64(), 0, 512)?;
    let before = faults::interrupts_taken();
    for offset in [0x1234u64, 0x1f_f000] {
        rig.transfer(Direction::FromDevice, big.as_u64() + offset, 0, 512)?;
        if read_back(rig, big, offset, 512)? != data {
            return Err(format!("data missing at 2 MiB page offset {offset:#x}"));
        }
    }
    let records = faults_after(before);
    if !records.is_empty() {
        return Err(format!("unexpected faults: {records:?}"));
    }
    let translation = rig
        .space
        .translate(Iova::new(big.as_u64() + 0x1f_f000).map_err(err)?);
    if translation.map(|t| t.size) != Some(moat_iommu::entries::PageSize::Size2M) {
        return Err(format!(
            "the 2 MiB buffer was not mapped with a 2 MiB page: {translation:?}"
        ));
    }
    Ok(format!(
        "{}: 2 MiB page {:#x} -> {phys:#x}, offsets 0x1234 and 0x1ff000 ({translation:?})",
        rig.bdf,
        big.as_u64()
    ))
}

fn alias(rig: &mut Rig) -> Result<String, String> {
    let alias = dma_source(rig.bdf)?;
    let data = pattern(256, 41);
    let iova = rig
        .space
        .map(buffer_with(&data)?, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, iova.as_u64(), 0, 256)?;
    rig.transfer(Direction::FromDevice, iova.as_u64() + 1024, 0, 256)?;
    let back = read_back(rig, iova, 1024, 256)?;
    if !faults_after(before).is_empty() || back != data {
        return Err("DMA through the alias context entry did not work".into());
    }
    let before = faults::interrupts_taken();
    rig.transfer(Direction::FromDevice, IOVA_UNMAPPED, 0, 64)?;
    let records = faults_after(before);
    expect_fault(&records, alias, IOVA_UNMAPPED, FaultAccess::Write, 5)?;
    Ok(format!(
        "{} (requester ID {:#06x}) DMAs as alias {}, and its fault names the alias",
        rig.bdf,
        rig.bdf.requester_id(),
        Bdf::from_requester_id(rig.bdf.segment(), alias)
    ))
}

//! DMA isolation scenarios (`test=dma-...`), proven with QEMU's edu DMA engine: translation,
//! blocking, permissions, invalidation, superpages and bridge aliases. Each checks what the
//! hardware did — data where the mapping says, the IOMMU's fault record (source, address,
//! direction, reason), memory left untouched — not what the kernel believes.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_edu::{Direction, Edu, EduRegisters};
use moat_iommu::Bdf;
use moat_iommu::engine::fault::Access as FaultAccess;
use moat_iommu::entries::{Access, Iova, PageSize, PhysAddr};
use moat_kernel::dma::{DmaBuffer, RegisterWindow};
use moat_kernel::pci::{BarKind, ConfigAccessExt};
use moat_kernel::vtd::{self, Domain, faults};
use moat_kernel::{devices, ecam, info, time};

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

/// IOVAs used: below edu's 28-bit DMA mask, away from the interrupt window.
const IOVA_A: u64 = 0x0700_0000;
const IOVA_B: u64 = 0x0710_0000;
const IOVA_C: u64 = 0x0720_0000;
const IOVA_UNMAPPED: u64 = 0x0bad_0000;
const IOVA_SUPER: u64 = 0x0a00_0000;

/// One DMA test: a description of what it saw, or why it failed.
type DmaTest = fn() -> Result<String, String>;

/// Runs `name`, or `None` if it is not a DMA scenario.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    let tests: &[(&str, DmaTest)] = &[
        ("dma-translate", translate),
        ("dma-blocked", blocked),
        ("dma-readonly", readonly),
        ("dma-unmap", unmap_invalidates),
        ("dma-superpage", superpage),
        ("dma-alias", alias),
    ];
    let selected: Vec<_> = if name == "dma-all" {
        tests.iter().collect()
    } else {
        tests.iter().filter(|(n, _)| *n == name).collect()
    };
    if selected.is_empty() {
        return None;
    }
    if let Some(reason) = vtd::off_reason() {
        return Some(Err(format!("DMA remapping is off ({reason})")));
    }
    for (test, body) in selected {
        match body() {
            Ok(detail) => info!("test", "{test}: ok ({detail})"),
            Err(why) => return Some(Err(format!("{test}: {why}"))),
        }
    }
    Some(Ok(()))
}

/// The edu's BAR 0 as the driver sees it.
pub(crate) struct Window(RegisterWindow);

impl EduRegisters for Window {
    fn read32(&self, offset: u64) -> u32 {
        self.0.read32(offset).unwrap_or(u32::MAX)
    }
    fn write32(&self, offset: u64, value: u32) {
        let _ = self.0.write32(offset, value);
    }
    fn read64(&self, offset: u64) -> u64 {
        self.0.read64(offset).unwrap_or(u64::MAX)
    }
    fn write64(&self, offset: u64, value: u64) {
        let _ = self.0.write64(offset, value);
    }
}

/// An edu with its own domain attached.
pub(crate) struct Rig {
    pub(crate) bdf: Bdf,
    pub(crate) edu: Edu<Window>,
    pub(crate) domain: Domain,
    pub(crate) sources: Vec<u16>,
}

pub(crate) fn now_us() -> u64 {
    time::now_ns() / 1000
}

/// Finds edus: those without a bridge alias first when `behind_bridge` is false.
fn find_edu(behind_bridge: bool) -> Result<Bdf, String> {
    let all = devices::all().ok_or("no PCI enumeration")?;
    all.devices
        .iter()
        .filter(|d| d.vendor == moat_edu::VENDOR_ID && d.device == moat_edu::DEVICE_ID)
        .map(|d| d.bdf)
        .find(|bdf| vtd::sources_of(*bdf).is_ok_and(|s| (s.len() > 1) == behind_bridge))
        .ok_or(format!(
            "no edu {} in this machine",
            if behind_bridge {
                "behind a PCIe-to-PCI bridge"
            } else {
                "without bridge aliases"
            }
        ))
}

pub(crate) fn rig(bdf: Bdf) -> Result<Rig, String> {
    let device = devices::all()
        .and_then(|all| all.device(bdf))
        .ok_or("device vanished")?;
    let bar = device
        .bars
        .iter()
        .find(|bar| bar.index == 0 && matches!(bar.kind, BarKind::Memory32 | BarKind::Memory64))
        .ok_or(format!("{bdf}: no memory BAR 0"))?;
    let window =
        RegisterWindow::map(bar.address, bar.size).map_err(|e| format!("mapping BAR 0: {e:?}"))?;
    let config = ecam::config().ok_or("no config space")?;
    let mut command = config.command(bdf);
    command |=
        pci_types::CommandRegister::MEMORY_ENABLE | pci_types::CommandRegister::BUS_MASTER_ENABLE;
    config.write_command(bdf, command);
    let edu = Edu::new(Window(window)).map_err(|e| format!("{bdf}: {e:?}"))?;
    let unit = vtd::unit_of(bdf).map_err(|e| format!("{e:?}"))?;
    let domain = Domain::new(unit).map_err(|e| format!("{e:?}"))?;
    domain.attach(bdf).map_err(|e| format!("attach: {e:?}"))?;
    let sources = vtd::sources_of(bdf).map_err(|e| format!("{e:?}"))?;
    let _ = faults::take_recent();
    Ok(Rig {
        bdf,
        edu,
        domain,
        sources,
    })
}

impl Rig {
    fn transfer(
        &mut self,
        direction: Direction,
        iova: u64,
        device_offset: u16,
        len: u16,
    ) -> Result<(), String> {
        self.edu
            .transfer(direction, iova, device_offset, len, &now_us)
            .map_err(|e| format!("edu: {e:?}"))
    }

    pub(crate) fn map(
        &mut self,
        iova: u64,
        buffer: &DmaBuffer,
        size: PageSize,
        access: Access,
    ) -> Result<(), String> {
        let iova = Iova::new(iova).map_err(|e| format!("{e:?}"))?;
        let phys = PhysAddr::new(buffer.phys()).map_err(|e| format!("{e:?}"))?;
        let flush = self
            .domain
            .map(iova, phys, size, access)
            .map_err(|e| format!("map: {e:?}"))?;
        self.domain
            .complete_map(flush)
            .map_err(|e| format!("map flush: {e:?}"))
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Waits for the fault interrupt (the handler drains and records), then takes the records.
fn faults_after(interrupts_before: u64) -> Vec<moat_iommu::engine::FaultRecord> {
    // TIMEOUT: the fault MSI arrives as soon as the DMA runs; 500 ms is generous.
    let _ = time::poll(500_000, || {
        (faults::interrupts_taken() > interrupts_before).then_some(())
    });
    faults::drain_all();
    faults::take_recent()
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

fn expect_fault(
    records: &[moat_iommu::engine::FaultRecord],
    source: u16,
    address: u64,
    access: FaultAccess,
    reason: u8,
) -> Result<(), String> {
    match records {
        [record]
            if record.source == source
                && record.address == address
                && record.access == access
                && record.reason == reason =>
        {
            Ok(())
        }
        _ => Err(format!(
            "expected one fault (source {source:#06x} addr {address:#x} {access:?} reason {reason:#x}), got {records:?}"
        )),
    }
}

fn translate() -> Result<String, String> {
    let mut rig = rig(find_edu(false)?)?;
    let buffer = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    if buffer.phys() == IOVA_A {
        return Err("buffer happens to sit at the IOVA; the test would prove nothing".into());
    }
    let data = pattern(1024, 3);
    buffer.write(0, &data).map_err(|e| format!("{e:?}"))?;
    rig.map(IOVA_A, &buffer, PageSize::Size4K, Access::ReadWrite)?;
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_A, 0, 1024)?;
    rig.transfer(Direction::FromDevice, IOVA_A + 2048, 0, 1024)?;
    let mut back = alloc::vec![0u8; 1024];
    buffer.read(2048, &mut back).map_err(|e| format!("{e:?}"))?;
    let records = faults_after(before);
    if !records.is_empty() {
        return Err(format!("unexpected faults: {records:?}"));
    }
    if back != data {
        return Err("the data did not arrive at buffer+2048 through the IOVA".into());
    }
    Ok(format!(
        "{}: IOVA {IOVA_A:#x} -> PA {:#x}, 1024 bytes out and back",
        rig.bdf,
        buffer.phys()
    ))
}

fn blocked() -> Result<String, String> {
    let mut rig = rig(find_edu(false)?)?;
    let sentinel = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    sentinel.fill(0xa5);
    let before = faults::interrupts_taken();
    // A write to the sentinel's own physical address: identity would hit it; the domain has
    // no mapping there, so the IOMMU must stop it.
    rig.transfer(Direction::FromDevice, sentinel.phys(), 0, 256)?;
    let records = faults_after(before);
    expect_fault(
        &records,
        rig.sources[0],
        sentinel.phys(),
        FaultAccess::Write,
        5,
    )?;
    let mut check = alloc::vec![0u8; 4096];
    sentinel.read(0, &mut check).map_err(|e| format!("{e:?}"))?;
    if check.iter().any(|&b| b != 0xa5) {
        return Err("the sentinel memory changed although the DMA was blocked".into());
    }
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_UNMAPPED, 0, 64)?;
    let records = faults_after(before);
    expect_fault(
        &records,
        rig.sources[0],
        IOVA_UNMAPPED,
        FaultAccess::Read,
        6,
    )?;
    let count = faults::fault_count(rig.bdf.segment(), rig.sources[0]);
    if count < 2 {
        return Err(format!(
            "per-device fault counter is {count}, expected >= 2"
        ));
    }
    Ok(format!(
        "{}: write to {:#x} and read from {IOVA_UNMAPPED:#x} faulted, memory unchanged, {count} faults counted",
        rig.bdf,
        sentinel.phys()
    ))
}

fn readonly() -> Result<String, String> {
    let mut rig = rig(find_edu(false)?)?;
    let buffer = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    let data = pattern(512, 11);
    buffer.write(0, &data).map_err(|e| format!("{e:?}"))?;
    rig.map(IOVA_B, &buffer, PageSize::Size4K, Access::Read)?;
    // The write comes first: QEMU records a fault only on a page walk; once a read has cached
    // the read-only translation in its IOTLB, a write through it is dropped without a record.
    let before = faults::interrupts_taken();
    rig.transfer(Direction::FromDevice, IOVA_B + 1024, 0, 512)?;
    let records = faults_after(before);
    expect_fault(&records, rig.sources[0], IOVA_B, FaultAccess::Write, 5)?;
    let mut check = alloc::vec![0u8; 512];
    buffer
        .read(1024, &mut check)
        .map_err(|e| format!("{e:?}"))?;
    if check.iter().any(|&b| b != 0) {
        return Err("the read-only page was written".into());
    }
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_B, 0, 512)?;
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

fn unmap_invalidates() -> Result<String, String> {
    let mut rig = rig(find_edu(false)?)?;
    let buffer = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    rig.map(IOVA_C, &buffer, PageSize::Size4K, Access::ReadWrite)?;
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_C, 0, 256)?;
    if !faults_after(before).is_empty() {
        return Err("the mapped DMA faulted".into());
    }
    let invalidations = vtd::invalidations();
    let start = Iova::new(IOVA_C).map_err(|e| format!("{e:?}"))?;
    let end = Iova::new(IOVA_C + 4096).map_err(|e| format!("{e:?}"))?;
    let flush = rig.domain.unmap(start..end).map_err(|e| format!("{e:?}"))?;
    rig.domain
        .complete_unmap(flush)
        .map_err(|e| format!("{e:?}"))?;
    let issued = vtd::invalidations() - invalidations;
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_C, 0, 256)?;
    let records = faults_after(before);
    expect_fault(&records, rig.sources[0], IOVA_C, FaultAccess::Read, 6)?;
    Ok(format!(
        "{}: DMA after unmap faulted ({issued} IOTLB invalidation issued)",
        rig.bdf
    ))
}

fn superpage() -> Result<String, String> {
    let mut rig = rig(find_edu(false)?)?;
    let source = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    let data = pattern(512, 29);
    source.write(0, &data).map_err(|e| format!("{e:?}"))?;
    rig.map(IOVA_A, &source, PageSize::Size4K, Access::ReadWrite)?;
    let big = DmaBuffer::new(2 << 20, 2 << 20).map_err(|e| format!("{e:?}"))?;
    rig.map(IOVA_SUPER, &big, PageSize::Size2M, Access::ReadWrite)?;
    rig.transfer(Direction::ToDevice, IOVA_A, 0, 512)?;
    let before = faults::interrupts_taken();
    for offset in [0x1234u64, 0x1f_f000] {
        rig.transfer(Direction::FromDevice, IOVA_SUPER + offset, 0, 512)?;
        let mut back = alloc::vec![0u8; 512];
        big.read(offset, &mut back).map_err(|e| format!("{e:?}"))?;
        if back != data {
            return Err(format!("data missing at 2 MiB page offset {offset:#x}"));
        }
    }
    let records = faults_after(before);
    if !records.is_empty() {
        return Err(format!("unexpected faults: {records:?}"));
    }
    let translation = rig
        .domain
        .translate(Iova::new(IOVA_SUPER + 0x1f_f000).map_err(|e| format!("{e:?}"))?);
    Ok(format!(
        "{}: 2 MiB page {IOVA_SUPER:#x} -> {:#x}, offsets 0x1234 and 0x1ff000 ({translation:?})",
        rig.bdf,
        big.phys()
    ))
}

fn alias() -> Result<String, String> {
    let mut rig = rig(find_edu(true)?)?;
    let own = rig.sources[0];
    let alias = *rig.sources.last().ok_or("no alias")?;
    let buffer = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    let data = pattern(256, 41);
    buffer.write(0, &data).map_err(|e| format!("{e:?}"))?;
    rig.map(IOVA_A, &buffer, PageSize::Size4K, Access::ReadWrite)?;
    let before = faults::interrupts_taken();
    rig.transfer(Direction::ToDevice, IOVA_A, 0, 256)?;
    rig.transfer(Direction::FromDevice, IOVA_A + 1024, 0, 256)?;
    let mut back = alloc::vec![0u8; 256];
    buffer.read(1024, &mut back).map_err(|e| format!("{e:?}"))?;
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
        own,
        Bdf::from_requester_id(rig.bdf.segment(), alias)
    ))
}

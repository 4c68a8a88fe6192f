//! Ownership scenarios (`test=own-...`), on real edus through the passthrough API: isolation
//! between owners, conflicts, a multi-device group, release with reset, fault routing and
//! quarantine. The machine (xtask `Machine::ownership`) has an edu alone below each of two
//! root ports and two edus behind a PCIe-to-PCI bridge.

use super::rig::{KernelPage, Rig, dma_source, edus, err, expect_fault, faults_after, pattern};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_edu::Direction;
use moat_iommu::Bdf;
use moat_iommu::engine::fault::Access as FaultAccess;
use moat_iommu::entries::Access;
use moat_kernel::dma::DmaBuffer;
use moat_kernel::info;
use moat_kernel::passthrough::{self, Owner, PassthroughError};
use moat_kernel::vtd::{self, faults};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[
    (
        "own-isolation",
        "two owners, two spaces: A's DMA into B's buffer, kernel memory and the IOMMU's tables faults",
    ),
    (
        "own-conflict",
        "a second owner's bind is Busy and the first keeps working; a kernel DMA user blocks binds",
    ),
    (
        "own-group",
        "two edus behind one bridge: one owner claims the group (owner_cnt 2), others are Busy",
    ),
    (
        "own-release",
        "release turns bus mastering off, resets (checked) and blocks the device's DMA",
    ),
    (
        "own-faults",
        "the owner reads its fault events; a storm quarantines only that device",
    ),
    (
        "own-msix",
        "an nvme bound by an owner completes Identify through MSI-X entry 0 on the owner's vector",
    ),
    (
        "own-reset-methods",
        "release resets an nvme by FLR, an e1000e by bus reset after an ineffective PM reset, \
         and leaves a root-bus edu (no reset method) blocked with the reason",
    ),
    (
        "own-frames",
        "an owner's devices, spaces, buffers and domain IDs are all given back on release",
    ),
    ("own-all", "all of the above in one boot"),
];

mod msix;
mod release;

use release::{fault_storm, frames, release, reset_methods};

type Test = fn() -> Result<String, String>;

/// Runs `name`, or `None` if it is not an ownership scenario.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    let tests: &[(&str, Test)] = &[
        ("own-isolation", isolation),
        ("own-conflict", conflict),
        ("own-group", group),
        ("own-release", release),
        ("own-faults", fault_storm),
        ("own-msix", msix::msix_identify),
        ("own-reset-methods", reset_methods),
        ("own-frames", frames),
    ];
    let selected: Vec<_> = if name == "own-all" {
        tests.iter().collect()
    } else {
        tests.iter().filter(|(n, _)| *n == name).collect()
    };
    if selected.is_empty() {
        return None;
    }
    for (test, body) in selected {
        let _ = faults::take_recent();
        let result = body();
        passthrough::settle();
        match result {
            Ok(detail) => info!("test", "{test}: ok ({detail})"),
            Err(why) => return Some(Err(format!("{test}: {why}"))),
        }
    }
    for line in passthrough::registry_lines() {
        info!("test", "{line}");
    }
    Some(Ok(()))
}

/// The edus alone below a root port (their own requester ID, their own group), in BDF order.
pub(super) fn lone_edus() -> Result<(Bdf, Bdf), String> {
    let lone: Vec<Bdf> = edus()
        .into_iter()
        .filter(|bdf| {
            bdf.bus() != 0
                && dma_source(*bdf).is_ok_and(|s| s == bdf.requester_id())
                && vtd::group_of(*bdf)
                    .and_then(|g| vtd::members(g).ok())
                    .is_some_and(|m| m.len() == 1)
        })
        .collect();
    match lone.as_slice() {
        [a, b, ..] => Ok((*a, *b)),
        _ => Err(format!(
            "needs two edus alone below root ports, found {lone:?}"
        )),
    }
}

/// The two edus behind the PCIe-to-PCI bridge.
fn bridged_edus() -> Result<(Bdf, Bdf), String> {
    let bridged: Vec<Bdf> = edus()
        .into_iter()
        .filter(|bdf| dma_source(*bdf).is_ok_and(|s| s != bdf.requester_id()))
        .collect();
    match bridged.as_slice() {
        [a, b, ..] => Ok((*a, *b)),
        _ => Err(format!(
            "needs two edus behind a PCIe-to-PCI bridge, found {bridged:?}"
        )),
    }
}

/// A's DMA aimed at `address`: must fault as a write from A's source and change nothing in
/// `check` (which reads the target memory).
fn must_not_reach(
    a: &Rig,
    address: u64,
    what: &str,
    check: &dyn Fn() -> Vec<u8>,
) -> Result<(), String> {
    let before_bytes = check();
    let before = faults::interrupts_taken();
    a.transfer(Direction::FromDevice, address, 0, 256)?;
    let records = faults_after(before);
    expect_fault(
        &records,
        a.bdf.requester_id(),
        address & !0xfff,
        FaultAccess::Write,
        5,
    )
    .map_err(|e| format!("{what}: {e}"))?;
    if check() != before_bytes {
        return Err(format!("{what} changed although the DMA faulted"));
    }
    Ok(())
}

fn isolation() -> Result<String, String> {
    let (a_bdf, b_bdf) = lone_edus()?;
    let a = Rig::new(a_bdf, "owner-a")?;
    let b = Rig::new(b_bdf, "owner-b")?;
    // A's own buffer works.
    let mine = DmaBuffer::new(4096, 4096).map_err(err)?;
    let data = pattern(256, 5);
    mine.write(0, &data).map_err(err)?;
    let mine = a
        .space
        .map(mine, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    a.transfer(Direction::ToDevice, mine.as_u64(), 0, 256)?;
    // B's buffer, at B's IOVA (nothing there in A's space: B maps a filler first, so the
    // buffer's IOVA is one A never used) and at its physical address.
    let filler = DmaBuffer::new(4096, 4096).map_err(err)?;
    b.space
        .map(filler, Access::Read)
        .map_err(|f| err(f.error))?;
    let theirs = DmaBuffer::new(4096, 4096).map_err(err)?;
    theirs.fill(0x3c);
    let theirs_phys = theirs.physical_address();
    let theirs = b
        .space
        .map(theirs, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    let read_b = || {
        let mut bytes = alloc::vec![0u8; 4096];
        let _ = b.space.with_buffer(theirs, |buf| buf.read(0, &mut bytes));
        bytes
    };
    must_not_reach(&a, theirs.as_u64(), "B's buffer at B's IOVA", &read_b)?;
    must_not_reach(
        &a,
        theirs_phys,
        "B's buffer at its physical address",
        &read_b,
    )?;
    // Kernel memory.
    static KERNEL: KernelPage = KernelPage([0x77; 4096]);
    let kernel_address = core::ptr::addr_of!(KERNEL) as u64;
    let read_kernel = || KERNEL.0.to_vec();
    must_not_reach(&a, kernel_address, "kernel memory", &read_kernel)?;
    // The IOMMU's own root table.
    let root = vtd::root_table_address(0).ok_or("no root table")?;
    let read_root = || vtd::root_table_snapshot(0).unwrap_or_default();
    must_not_reach(&a, root, "the IOMMU's root table", &read_root)?;
    // And A's own DMA still works after all that.
    let before = faults::interrupts_taken();
    a.transfer(Direction::FromDevice, mine.as_u64() + 1024, 0, 256)?;
    let mut back = alloc::vec![0u8; 256];
    a.space
        .with_buffer(mine, |buf| buf.read(1024, &mut back))
        .ok_or("A's buffer vanished")?
        .map_err(err)?;
    if back != data || !faults_after(before).is_empty() {
        return Err("A's DMA into its own buffer did not work".into());
    }
    Ok(format!(
        "{a_bdf} (space {}) could not reach {b_bdf}'s buffer (IOVA {:#x}, PA {theirs_phys:#x}), kernel memory {kernel_address:#x} or the root table {root:#x}; its own DMA worked",
        a.space.id(),
        theirs.as_u64()
    ))
}

fn conflict() -> Result<String, String> {
    let (a_bdf, _) = lone_edus()?;
    let first = Rig::new(a_bdf, "first")?;
    let second = Owner::new("second");
    let parked = passthrough::open(a_bdf);
    if !matches!(parked, Err(PassthroughError::Busy)) {
        return Err(format!("a second open of a bound device gave {parked:?}"));
    }
    // The first owner's DMA keeps working.
    let data = pattern(128, 9);
    let buffer = DmaBuffer::new(4096, 4096).map_err(err)?;
    buffer.write(0, &data).map_err(err)?;
    let iova = first
        .space
        .map(buffer, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    first.transfer(Direction::ToDevice, iova.as_u64(), 0, 128)?;
    first.transfer(Direction::FromDevice, iova.as_u64() + 512, 0, 128)?;
    let mut back = alloc::vec![0u8; 128];
    first
        .space
        .with_buffer(iova, |b| b.read(512, &mut back))
        .ok_or("buffer vanished")?
        .map_err(err)?;
    if back != data {
        return Err("the first owner's DMA stopped working".into());
    }
    // A kernel DMA-API user on one edu behind the bridge: binding its sibling (same group)
    // is Busy; once the kernel user is gone the bind succeeds.
    let (one, two) = bridged_edus()?;
    let kernel_use = passthrough::kernel_dma(&crate::ROOT, two).map_err(err)?;
    let refused = passthrough::open(one).map_err(err)?.bind(&second);
    let Err((PassthroughError::Busy, parked_one)) = refused else {
        return Err(format!(
            "binding a device whose group has a kernel DMA user gave {:?}",
            refused.map(|_| ()).map_err(|(e, _)| e)
        ));
    };
    drop(kernel_use);
    let bound_one = parked_one
        .bind(&second)
        .map_err(|(e, _)| format!("bind after the kernel user left: {e:?}"))?;
    drop(bound_one);
    // After release, the second owner can bind A.
    drop(first);
    passthrough::settle();
    let after = passthrough::open(a_bdf)
        .map_err(|e| format!("open after release: {e:?}"))?
        .bind(&second)
        .map_err(|(e, _)| format!("bind after release: {e:?}"))?;
    drop(after);
    Ok(format!(
        "{a_bdf}: second open Busy while bound, first owner's DMA fine; {one}: Busy while the kernel's DMA API used its group sibling {two}, bound once it left; {a_bdf} bound by the second owner after release"
    ))
}

fn group() -> Result<String, String> {
    let (one, two) = bridged_edus()?;
    let owner = Owner::new("group-owner");
    let other = Owner::new("other");
    let first = passthrough::open(one)
        .map_err(err)?
        .bind(&owner)
        .map_err(|(e, _)| err(e))?;
    let refused = passthrough::open(two).map_err(err)?.bind(&other);
    let Err((PassthroughError::Busy, parked)) = refused else {
        return Err("another owner could bind the sibling".into());
    };
    let second = parked.bind(&owner).map_err(|(e, _)| err(e))?;
    let count = second.owner_count();
    if count != 2 {
        return Err(format!("owner_cnt is {count}, expected 2"));
    }
    let rig_one = Rig::with_device(one, first, owner)?;
    let mut second = second;
    second.attach(&rig_one.space).map_err(err)?;
    second.set_bus_master(true).map_err(err)?;
    let data = pattern(200, 17);
    let buffer = DmaBuffer::new(4096, 4096).map_err(err)?;
    buffer.write(0, &data).map_err(err)?;
    let iova = rig_one
        .space
        .map(buffer, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    rig_one.transfer(Direction::ToDevice, iova.as_u64(), 0, 200)?;
    // The sibling, through the same space: copy the pattern to +2048 via its own engine.
    let sibling = Rig {
        bdf: two,
        device: second,
        space: moat_kernel::vtd::IoAddressSpace::new(28).map_err(err)?,
        owner: Owner::new("unused"),
    };
    sibling.transfer(Direction::ToDevice, iova.as_u64(), 0, 200)?;
    sibling.transfer(Direction::FromDevice, iova.as_u64() + 2048, 0, 200)?;
    let mut back = alloc::vec![0u8; 200];
    rig_one
        .space
        .with_buffer(iova, |b| b.read(2048, &mut back))
        .ok_or("buffer vanished")?
        .map_err(err)?;
    if back != data {
        return Err("the sibling's DMA through the shared alias did not land".into());
    }
    drop(sibling);
    drop(rig_one);
    passthrough::settle();
    let again = passthrough::open(two)
        .map_err(|e| format!("open after release: {e:?}"))?
        .bind(&other)
        .map_err(|(e, _)| format!("the group did not come back: {e:?}"))?;
    drop(again);
    Ok(format!(
        "{one} and {two} (alias {}) share one group: owner_cnt 2, one space, another owner Busy until both were released",
        Bdf::from_requester_id(0, dma_source(one)?)
    ))
}

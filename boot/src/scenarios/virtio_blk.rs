//! virtio-blk scenarios: data integrity checked outside the guest. The driver the table
//! started writes the shared pattern (`pattern.rs`) over a range with several requests in
//! flight and sizes from one sector to 128, flushes, reads the range back the same way and
//! compares; the host then checks every byte of the image (xtask `disk_check`). On a machine
//! that also has a virtio-blk the driver refused, that one stays blocked and reported while
//! this one works.

use super::pattern;
use crate::drivers::{self, Block};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use moat_kernel::{info, passthrough, vtd};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[(
    "virtio-blk-integrity",
    "the virtio-blk driver writes the pattern over a range with requests in flight, flushes, reads it back and compares (the host checks the image)",
)];

/// The pattern's seed; xtask checks the image against the same one.
pub(crate) const SEED: u64 = 0x0b1c_5eed;
/// First sector written: odd, so requests straddle 4 KiB pages.
pub(crate) const FIRST_SECTOR: u64 = 2049;
/// Sectors written (about 2 MiB).
pub(crate) const SECTORS: u64 = 4100;
/// Requests kept in flight.
const DEPTH: usize = 8;
/// Request sizes in sectors, in turn.
const SIZES: [u64; 6] = [128, 1, 8, 64, 3, 128];

/// Runs `name`, or `None` if it is not one of these.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    (name == "virtio-blk-integrity").then(integrity)
}

/// The requests covering the range: (first sector, sectors).
fn requests() -> Vec<(u64, u32)> {
    let mut list = Vec::new();
    let (mut at, end) = (FIRST_SECTOR, FIRST_SECTOR + SECTORS);
    for size in SIZES.iter().cycle() {
        if at >= end {
            break;
        }
        let sectors = (*size).min(end - at);
        list.push((at, sectors as u32));
        at += sectors;
    }
    list
}

/// Starts one request: (device, first sector, sectors) -> its tag.
type Submit<'a> = dyn FnMut(&mut dyn Block, u64, u32) -> Result<u16, String> + 'a;

/// Submits every request through `submit`, keeping at most [`DEPTH`] in flight, and checks
/// each completion with `check`. Returns the most requests that were in flight at once.
fn pipeline(
    blk: &mut dyn Block,
    requests: &[(u64, u32)],
    submit: &mut Submit<'_>,
    check: &mut dyn FnMut(&moat_virtio_blk::Completion) -> Result<(), String>,
) -> Result<usize, String> {
    let mut in_flight = 0;
    let mut most = 0;
    let mut pending: VecDeque<(u64, u32)> = requests.iter().copied().collect();
    while !pending.is_empty() || in_flight > 0 {
        if in_flight < DEPTH
            && let Some((sector, sectors)) = pending.pop_front()
        {
            submit(blk, sector, sectors)?;
            in_flight += 1;
            most = most.max(in_flight);
            continue;
        }
        let completion = blk.wait_any().map_err(|e| format!("waiting: {e:?}"))?;
        completion.result.clone().map_err(|e| {
            format!(
                "{:?} at sector {}: {e:?}",
                completion.kind, completion.sector
            )
        })?;
        check(&completion)?;
        in_flight -= 1;
    }
    Ok(most)
}

fn integrity() -> Result<(), String> {
    let devices = drivers::devices_of("virtio-blk");
    let bdf = *devices
        .first()
        .ok_or("the table started no virtio-blk driver")?;
    drivers::with_any(bdf, |driver| {
        let blk = drivers::block(driver).ok_or("the driver is not a virtio-blk")?;
        exercise(blk, bdf)
    })
    .ok_or(format!("{bdf}: driver vanished"))??;
    report_refused()
}

/// Every virtio-blk the driver refused: its registry line once its release settled (it must
/// be blocked, with no owner).
fn report_refused() -> Result<(), String> {
    passthrough::settle();
    for problem in drivers::lines() {
        let Some(rest) = problem.strip_prefix("driver: ") else {
            continue;
        };
        let Some((bdf, why)) = rest.split_once(": virtio-blk failed: ") else {
            continue;
        };
        let line = passthrough::registry_lines()
            .into_iter()
            .find(|line| line.starts_with(&format!("registry: {bdf} ")))
            .unwrap_or_default();
        info!("test", "virtio-blk: refused {bdf} ({why}), now: {line}");
        if !line.contains("state blocked owner -") {
            return Err(format!("the refused {bdf} is not blocked: {line}"));
        }
    }
    Ok(())
}

fn exercise(blk: &mut dyn Block, bdf: moat_iommu::Bdf) -> Result<(), String> {
    if blk.capacity() < FIRST_SECTOR + SECTORS {
        return Err(format!("{bdf}: {} sectors is too small", blk.capacity()));
    }
    let requests = requests();
    let invalidations_before = vtd::invalidations();
    let stats_before = blk.dma_stats();
    let interrupts_before = blk.interrupts();
    let written = pipeline(
        blk,
        &requests,
        &mut |blk, sector, sectors| {
            let mut data = vec![0u8; sectors as usize * 512];
            pattern::fill(SEED, sector * 512, &mut data);
            blk.submit_write(sector, data)
                .map_err(|e| format!("write at {sector}: {e:?}"))
        },
        &mut |_| Ok(()),
    )?;
    blk.flush().map_err(|e| format!("flush: {e:?}"))?;
    let read = pipeline(
        blk,
        &requests,
        &mut |blk, sector, sectors| {
            blk.submit_read(sector, sectors)
                .map_err(|e| format!("read at {sector}: {e:?}"))
        },
        &mut |completion| match pattern::first_mismatch(
            SEED,
            completion.sector * 512,
            &completion.data,
        ) {
            None => Ok(()),
            Some(at) => Err(format!(
                "read back at sector {} differs at byte {at}",
                completion.sector
            )),
        },
    )?;
    let stats = blk.dma_stats();
    let ios = 2 * requests.len() as u64 + 1;
    let invalidations = vtd::invalidations() - invalidations_before;
    info!(
        "test",
        "virtio-blk: {bdf}: wrote, flushed, read back and compared {} bytes in {} requests each way (up to {written} and {read} in flight); {} interrupts",
        SECTORS * 512,
        requests.len(),
        blk.interrupts() - interrupts_before
    );
    info!(
        "test",
        "virtio-blk: {bdf}: {} buffers mapped, {} ranged unmaps, {invalidations} IOTLB invalidations for {ios} I/Os ({}.{:02} per I/O); HAL {:?}",
        stats.maps - stats_before.maps,
        stats.flushes - stats_before.flushes,
        invalidations / ios,
        invalidations * 100 / ios % 100,
        blk.hal_stats()
    );
    if written < 2 || read < 2 {
        return Err(format!(
            "never more than one request in flight ({written}, {read})"
        ));
    }
    Ok(())
}

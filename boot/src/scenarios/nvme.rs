//! NVMe driver scenarios on real QEMU controllers started by the driver table: the block
//! pattern written with several commands in flight on two queues, read back, flushed, and the
//! controller shut down (the host then checks every byte of the image); and controllers QEMU
//! can make bad (no namespace, a namespace smaller than the range asked), each a clear error
//! for that device alone while the rest of the machine works.
//!
//! Cases QEMU cannot produce (CSTS.RDY never set, CSTS.CFS, a completion with an unknown
//! command ID) are host tests of `moat-nvme` against its simulated controller.

use super::pattern;
use crate::drivers::{self, Driver, EduDriver, NvmeDriver};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_kernel::{info, passthrough, vtd};
use moat_nvme::{Nvme, NvmeError, Platform, Tag};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[
    (
        "nvme-pattern",
        "the nvme driver writes the block pattern with several commands in flight on two queues, reads it back, flushes and shuts down; the host checks the image",
    ),
    (
        "nvme-bad-input",
        "an nvme without a namespace and one smaller than the range: a clear error each, blocked and reported, while another nvme and an edu work",
    ),
];

/// Runs `name`, or `None` if it is not one of these.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    match name {
        "nvme-pattern" => Some(nvme_pattern()),
        "nvme-bad-input" => Some(nvme_bad_input()),
        _ => None,
    }
}

/// The pattern's seed and first block; xtask/src/scenarios/nvme.rs checks the image for the
/// same seed over the byte range this scenario prints.
const SEED: u64 = 0x6e76_6d65;
const FIRST_BLOCK: u64 = 2051;
/// Transfer sizes in blocks, in order: one block and PRP1 only, PRP2, PRP lists, the MDTS
/// limit (1024 blocks of 512 B), odd sizes; the list is written twice over.
const CHUNKS: [u64; 12] = [1, 7, 8, 16, 17, 24, 64, 256, 1024, 1024, 3, 512];
const ROUNDS: usize = 2;
/// Commands in flight per queue at most.
const DEPTH: usize = 8;

/// (first block, blocks) of every command, consecutive from [`FIRST_BLOCK`].
fn transfers() -> Vec<(u64, u64)> {
    let mut next = FIRST_BLOCK;
    CHUNKS
        .iter()
        .cycle()
        .take(CHUNKS.len() * ROUNDS)
        .map(|&blocks| {
            let at = next;
            next += blocks;
            (at, blocks)
        })
        .collect()
}

fn total_blocks() -> u64 {
    CHUNKS.iter().sum::<u64>() * ROUNDS as u64
}

/// What one pass did.
struct Pass {
    commands: usize,
    most_in_flight: usize,
}

/// Writes (or reads back and compares) the pattern over [`transfers`], spreading commands over
/// the I/O queues and keeping up to [`DEPTH`] in flight on each.
fn pass<P: Platform>(nvme: &mut Nvme<P>, write: bool) -> Result<Pass, String> {
    let block = u64::from(nvme.namespace().block_size);
    let queues = nvme.io_queues();
    let mut in_flight: Vec<VecDeque<(Tag, u64)>> = (0..queues).map(|_| VecDeque::new()).collect();
    let mut most = 0;
    let list = transfers();
    for (i, &(first, blocks)) in list.iter().enumerate() {
        let queue = i % queues;
        if in_flight[queue].len() == DEPTH {
            complete_one(nvme, queue, &mut in_flight[queue])?;
        }
        let tag = if write {
            let mut data = vec![0; (blocks * block) as usize];
            pattern::fill(SEED, first * block, &mut data);
            nvme.submit_write(queue, first, &data)
        } else {
            nvme.submit_read(queue, first, blocks as u32)
        }
        .map_err(|e| format!("blocks {first}+{blocks}: {e}"))?;
        in_flight[queue].push_back((tag, first * block));
        most = most.max(in_flight.iter().map(VecDeque::len).sum());
    }
    for (queue, waiting) in in_flight.iter_mut().enumerate() {
        while !waiting.is_empty() {
            complete_one(nvme, queue, waiting)?;
        }
    }
    Ok(Pass {
        commands: list.len(),
        most_in_flight: most,
    })
}

/// Takes the next completion of `queue`; a read's data must be the pattern at its offset.
fn complete_one<P: Platform>(
    nvme: &mut Nvme<P>,
    queue: usize,
    in_flight: &mut VecDeque<(Tag, u64)>,
) -> Result<(), String> {
    let completion = nvme
        .next_completion(queue)
        .map_err(|e| format!("queue {queue}: {e}"))?;
    let at = in_flight
        .iter()
        .position(|(tag, _)| *tag == completion.tag)
        .ok_or_else(|| format!("a completion for {:?} nobody waited for", completion.tag))?;
    let (_, offset) = in_flight.remove(at).ok_or("vanished")?;
    let data = completion
        .outcome
        .map_err(|e| format!("at byte {offset:#x}: {e}"))?;
    match pattern::first_mismatch(SEED, offset, &data) {
        Some(i) => Err(format!(
            "read back: byte {:#x} is {:#04x}, not the pattern's",
            offset + i as u64,
            data[i]
        )),
        None => Ok(()),
    }
}

/// Writes, reads back, compares and flushes; returns the report line.
fn write_and_check<P: Platform>(nvme: &mut Nvme<P>) -> Result<String, String> {
    let block = u64::from(nvme.namespace().block_size);
    let written = pass(nvme, true)?;
    let read = pass(nvme, false)?;
    nvme.flush().map_err(|e| format!("flush: {e}"))?;
    Ok(format!(
        "bytes {:#x}..{:#x} written with {} commands and read back with {} (up to {} in flight on {} queues), compared, flushed",
        FIRST_BLOCK * block,
        (FIRST_BLOCK + total_blocks()) * block,
        written.commands,
        read.commands,
        written.most_in_flight.max(read.most_in_flight),
        nvme.io_queues()
    ))
}

fn bdf(bus: u8) -> Bdf {
    Bdf::new(0, bus, 0, 0).unwrap_or_else(|_| unreachable!("bus numbers are valid"))
}

fn registry_line(bdf: Bdf) -> String {
    passthrough::registry_lines()
        .into_iter()
        .find(|line| line.starts_with(&format!("registry: {bdf} ")))
        .unwrap_or_default()
}

/// Removes `bdf`'s driver (clean shutdown, release) and checks the device is blocked again.
fn remove_and_check(bdf: Bdf) -> Result<String, String> {
    drivers::remove(bdf)?;
    let line = registry_line(bdf);
    if !line.contains("state blocked owner -") {
        return Err(format!("after remove: {line}"));
    }
    Ok(line)
}

/// The nvme below the first root port.
fn nvme_pattern() -> Result<(), String> {
    let nvme = bdf(1);
    if !drivers::devices_of("nvme").contains(&nvme) {
        return Err(format!("the table started no nvme driver on {nvme}"));
    }
    let invalidations = vtd::invalidations();
    let (line, stats, interrupts) = drivers::with::<NvmeDriver, _>(nvme, |driver| {
        let before = [1, 2].map(|v| driver.device().deliveries(v));
        let line = write_and_check(driver.nvme()?)?;
        let after = [1, 2].map(|v| driver.device().deliveries(v));
        Ok::<_, String>((
            line,
            driver.dma_stats(),
            [after[0] - before[0], after[1] - before[1]],
        ))
    })
    .ok_or("the nvme's driver is not an NvmeDriver")??;
    info!("test", "nvme-pattern: {nvme}: {line}");
    if interrupts.contains(&0) {
        return Err(format!(
            "MSI-X deliveries per I/O queue {interrupts:?}: a queue saw none"
        ));
    }
    info!(
        "test",
        "nvme-pattern: {nvme}: completions interrupt-driven: MSI-X 1 delivered {}, MSI-X 2 {}",
        interrupts[0],
        interrupts[1]
    );
    info!(
        "test",
        "nvme-pattern: {nvme}: DMA {} maps, {} retired, {} batch invalidations; {} IOTLB invalidations in all",
        stats.maps,
        stats.retired,
        stats.flushes,
        vtd::invalidations() - invalidations
    );
    let line = remove_and_check(nvme)?;
    info!(
        "test",
        "nvme-pattern: {nvme}: shut down and released: {line}"
    );
    Ok(())
}

/// Three nvmes: a good one (bus 1), one whose namespace is smaller than the range (bus 2), one
/// without a namespace (bus 3, its probe failed at boot); and an edu.
fn nvme_bad_input() -> Result<(), String> {
    let (good, tiny, empty) = (bdf(1), bdf(2), bdf(3));
    let running = drivers::devices_of("nvme");
    if running.contains(&empty) || !running.contains(&tiny) || !running.contains(&good) {
        return Err(format!("nvme drivers run on {running:?}"));
    }
    // The namespace-less controller: its probe failed, it is reported and blocked.
    let problem = drivers::lines()
        .into_iter()
        .find(|line| line.contains(&format!("{empty}: nvme failed")))
        .ok_or("no report line for the nvme without a namespace")?;
    let line = registry_line(empty);
    if !line.contains("state blocked owner -") {
        return Err(format!("{empty}: {line}"));
    }
    info!(
        "test",
        "nvme-bad-input: {empty} reported: {problem}; {line}"
    );
    // The small namespace: the range is refused before anything is sent, then the driver goes.
    let refused = drivers::with::<NvmeDriver, _>(tiny, |driver| {
        let nvme = driver.nvme()?;
        let whole = nvme.check_range(FIRST_BLOCK, total_blocks());
        let first = nvme.submit_write(0, FIRST_BLOCK, &[0; 512]).map(|_| ());
        Ok::<_, String>((whole, first))
    })
    .ok_or("the small nvme's driver is not an NvmeDriver")??;
    let (
        Err(whole @ NvmeError::NamespaceTooSmall { .. }),
        Err(NvmeError::NamespaceTooSmall { .. }),
    ) = refused
    else {
        return Err(format!("{tiny}: the range was not refused: {refused:?}"));
    };
    let line = remove_and_check(tiny)?;
    info!("test", "nvme-bad-input: {tiny}: {whole}; removed: {line}");
    // The rest works: the good nvme and the edu.
    let line = drivers::with::<NvmeDriver, _>(good, |driver| write_and_check(driver.nvme()?))
        .ok_or("the good nvme's driver is not an NvmeDriver")??;
    let edu = *drivers::devices_of("edu").first().ok_or("no edu driver")?;
    let factorial = drivers::with::<EduDriver, _>(edu, |driver| driver.factorial(5))
        .ok_or("the edu's driver is not an EduDriver")??;
    info!(
        "test",
        "nvme-bad-input: the rest works: {good}: {line}; edu {edu}: 5! = {factorial}"
    );
    remove_and_check(good)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

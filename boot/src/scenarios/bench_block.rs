//! The guest side of the block benchmark (`test=bench-block`, booted by `cargo xtask bench
//! block` on the bench machine, strict and with `iommu.passthrough=` for both disks). For each
//! block driver the table started, four cells: 4 KiB random reads and 128 KiB sequential reads,
//! each at queue depth 1 and 32, through the drivers' [`BlockIo`]; one `bench-block:` line per
//! cell in the format `xtask/src/bench/results.rs` documents, with the IOTLB invalidations the
//! cell caused (`vtd::invalidations()`). Random offsets follow the same LCG as the Linux side
//! (`xtask/src/bench/linux-init.sh`), seeded 1, or 1..32 for the 32 streams of depth 32.
//! Every read is checked against the image's pattern (what `xtask` wrote), so a wrong DMA
//! address (in pass-through above all) fails the run instead of producing a number.

use super::pattern;
use crate::drivers;
use crate::drivers::block::{BlockIo, with_block};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_kernel::vtd::{self, Translation};
use moat_kernel::{info, time};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[(
    "bench-block",
    "the block benchmark's cells on every virtio-blk and NVMe the table started (see cargo xtask bench block)",
)];

/// Random 4 KiB reads per random cell (`xtask`'s `bench::RANDOM_IOS`).
const RANDOM_IOS: u64 = 1024;
/// 128 KiB reads per sequential cell (`bench::SEQUENTIAL_IOS`).
const SEQUENTIAL_IOS: u64 = 512;
/// Requests in flight in the deep cells (`bench::JOBS`).
const JOBS: u64 = 32;
/// Sectors per 4 KiB and per 128 KiB read.
const SMALL: u32 = 8;
const LARGE: u32 = 256;

/// Runs `name`, or `None` if it is not this family's.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    (name == "bench-block").then(bench)
}

fn bench() -> Result<(), String> {
    let mut devices: Vec<(&str, Bdf)> = Vec::new();
    for name in ["virtio-blk", "nvme"] {
        devices.extend(drivers::devices_of(name).into_iter().map(|bdf| (name, bdf)));
    }
    if devices.is_empty() {
        return Err("no block driver runs (boot the bench machine with drivers on)".into());
    }
    for (name, bdf) in devices {
        let mode = match vtd::group_of(bdf).map(vtd::translation_of) {
            Some(Translation::PassThrough) => "pass-through",
            _ => "strict",
        };
        with_block(bdf, |block| device_cells(name, mode, block))
            .ok_or(format!("{name} {bdf} is not a block driver"))?
            .map_err(|why| format!("{name} {bdf}: {why}"))?;
    }
    Ok(())
}

/// A stream of reads: the LCG offsets of one random job, or one slice of the disk.
#[derive(Clone, Copy)]
enum Stream {
    /// LCG state; reads of [`SMALL`] sectors at random 4 KiB blocks.
    Random(u64),
    /// Next [`LARGE`]-sector read's index.
    Sequential(u64),
}

impl Stream {
    /// The next read's first sector on a disk of `blocks` 4 KiB blocks.
    fn next(&mut self, blocks: u64) -> (u64, u32) {
        match self {
            Self::Random(state) => {
                *state = (*state * 1_103_515_245 + 12_345) % (1 << 31);
                ((*state >> 8) % blocks * 8, SMALL)
            }
            Self::Sequential(index) => {
                let sector = *index * u64::from(LARGE);
                *index += 1;
                (sector, LARGE)
            }
        }
    }
}

fn device_cells(name: &str, mode: &str, block: &mut dyn BlockIo) -> Result<(), String> {
    let blocks = block.sectors() / 8;
    if blocks < SEQUENTIAL_IOS * u64::from(LARGE) / 8 {
        return Err(format!(
            "{blocks} 4 KiB blocks: too small for the sequential cells"
        ));
    }
    let depth = usize::try_from(JOBS)
        .unwrap_or(32)
        .min(block.max_in_flight());
    // Warm-up, not reported: TCG translates each code path on its first run.
    run_cell(block, blocks, 1, &mut [Stream::Random(99)], 16)?;
    run_cell(block, blocks, 1, &mut [Stream::Sequential(0)], 4)?;
    let random: Vec<Stream> = (1..=JOBS).map(Stream::Random).collect();
    let slices: Vec<Stream> = (0..JOBS)
        .map(|job| Stream::Sequential(job * (SEQUENTIAL_IOS / JOBS)))
        .collect();
    let cells: [(&str, usize, Vec<Stream>, u64, u32); 4] = [
        ("rand-4k", 1, random[..1].to_vec(), RANDOM_IOS, SMALL),
        ("rand-4k", depth, random, RANDOM_IOS, SMALL),
        ("seq-128k", 1, slices[..1].to_vec(), SEQUENTIAL_IOS, LARGE),
        ("seq-128k", depth, slices, SEQUENTIAL_IOS, LARGE),
    ];
    for (workload, qd, mut streams, ios, sectors) in cells {
        let stats_before = block.dma_stats();
        let interrupts_before = block.interrupts();
        let invalidations_before = vtd::invalidations();
        let started = time::now_ns();
        run_cell(block, blocks, qd, &mut streams, ios)?;
        let ns = time::now_ns() - started;
        let invalidations = vtd::invalidations() - invalidations_before;
        let stats = block.dma_stats();
        info!(
            "bench",
            "bench-block: system=moat device={name} mode={mode} workload={workload} qd={qd} \
             ios={ios} bytes={} ns={ns} invalidations={invalidations} maps={} flushes={} \
             interrupts={}",
            ios * u64::from(sectors) * 512,
            stats.maps - stats_before.maps,
            stats.flushes - stats_before.flushes,
            block.interrupts() - interrupts_before
        );
    }
    Ok(())
}

/// `ios` reads from `streams` (round robin as requests finish) with up to `qd` in flight,
/// each checked against the image pattern.
fn run_cell(
    block: &mut dyn BlockIo,
    blocks: u64,
    qd: usize,
    streams: &mut [Stream],
    ios: u64,
) -> Result<(), String> {
    // (token, sector, stream) of every request in flight.
    let mut in_flight: Vec<(u64, u64, usize)> = Vec::with_capacity(qd);
    let mut started = 0u64;
    let mut next_stream = 0usize;
    let mut finished = 0u64;
    while finished < ios {
        while in_flight.len() < qd && started < ios {
            let stream = next_stream % streams.len();
            next_stream += 1;
            let (sector, count) = streams[stream].next(blocks);
            let token = block.start_read(sector, count)?;
            in_flight.push((token, sector, stream));
            started += 1;
        }
        let (token, data) = block.finish_any()?;
        let index = in_flight
            .iter()
            .position(|(t, _, _)| *t == token)
            .ok_or(format!("finished request {token} was not in flight"))?;
        let (_, sector, _) = in_flight.swap_remove(index);
        check(sector, &data)?;
        finished += 1;
    }
    Ok(())
}

/// The seed of the image's pattern (`xtask/src/bench/block.rs` writes the images with it).
const IMAGE_SEED: u64 = 0xbe4c_0001;

/// The data of a read at `sector` must be the image's pattern (`pattern.rs`, unique across
/// the disk). The first and last 64 bytes are compared, enough to catch a read of the wrong
/// place without adding a full compare to the timed work.
fn check(sector: u64, data: &[u8]) -> Result<(), String> {
    let start = sector * 512;
    let len = data.len();
    for at in [0, len.saturating_sub(64)] {
        let end = (at + 64).min(len);
        if let Some(i) = pattern::first_mismatch(IMAGE_SEED, start + at as u64, &data[at..end]) {
            return Err(format!(
                "read at sector {sector}: byte {} is {:#x}, not the image's pattern",
                at + i,
                data[at + i]
            ));
        }
    }
    Ok(())
}

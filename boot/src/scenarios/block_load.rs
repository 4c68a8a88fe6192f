//! The block drivers under load and under attack (`test=block-load`): virtio-blk and NVMe run
//! at the same time, several requests in flight on each, each in its own address space, each
//! writing its own pattern (its own seed, so a block of one landing on the other shows) and
//! reading it back. Meanwhile a misbehaving edu, bound by an owner of its own, aims DMA at the
//! drivers' live buffers: at their IOVAs (which mean nothing in its space) and at the buffers'
//! physical addresses. Every attempt must fault with the edu as the source, the block I/O must
//! complete without an error or a fault of its own, and the data must be exact (the host checks
//! both images afterwards).

use super::pattern;
use super::rig::{Rig, edus, expect_fault, faults_after, sleep_us};
use crate::drivers::block::{BlockIo, Token, with_block};
use crate::drivers::devices_of;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use moat_edu::Direction;
use moat_iommu::engine::fault::Access as FaultAccess;
use moat_iommu::entries::Iova;
use moat_kernel::info;
use moat_kernel::vtd::faults;

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[(
    "block-load",
    "virtio-blk and NVMe at once with requests in flight, while an edu's DMA at their buffers faults",
)];

/// The patterns' seeds; xtask checks the images against the same ones.
pub(crate) const VIRTIO_SEED: u64 = 0x10ad_0001;
/// See [`VIRTIO_SEED`].
pub(crate) const NVME_SEED: u64 = 0x10ad_0002;
/// First sector written on each device.
pub(crate) const FIRST_SECTOR: u64 = 8192;
/// Sectors per request (32 KiB).
const REQUEST_SECTORS: u32 = 64;
/// Requests per pass per device (2 MiB).
pub(crate) const REQUESTS: u64 = 64;
/// Requests kept in flight on each device.
const DEPTH: usize = 8;

/// Runs `name`, or `None` if it is not this scenario.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    (name == "block-load").then(block_load)
}

/// One device's side of the run.
struct Lane<'a> {
    name: &'static str,
    device: &'a mut dyn BlockIo,
    seed: u64,
    next: u64,
    in_flight: VecDeque<(Token, u64)>,
    most: usize,
}

impl Lane<'_> {
    fn remaining(&self) -> bool {
        self.next < REQUESTS
    }

    /// Starts requests until `DEPTH` are in flight or the pass is done.
    fn fill(&mut self, write: bool) -> Result<(), String> {
        while self.in_flight.len() < DEPTH && self.remaining() {
            let sector = FIRST_SECTOR + self.next * u64::from(REQUEST_SECTORS);
            let token = if write {
                let mut data = vec![0; REQUEST_SECTORS as usize * 512];
                pattern::fill(self.seed, sector * 512, &mut data);
                self.device.start_write(sector, data)
            } else {
                self.device.start_read(sector, REQUEST_SECTORS)
            }
            .map_err(|e| format!("{}: sector {sector}: {e}", self.name))?;
            self.in_flight.push_back((token, sector));
            self.next += 1;
            self.most = self.most.max(self.in_flight.len());
        }
        Ok(())
    }

    /// Finishes one request (if any is in flight); a read must be this lane's pattern.
    fn finish_one(&mut self) -> Result<(), String> {
        if self.in_flight.is_empty() {
            return Ok(());
        }
        let (token, data) = self
            .device
            .finish_any()
            .map_err(|e| format!("{}: {e}", self.name))?;
        let at = self
            .in_flight
            .iter()
            .position(|(t, _)| *t == token)
            .ok_or_else(|| {
                format!(
                    "{}: completion for request {token} not in flight",
                    self.name
                )
            })?;
        let (_, sector) = self.in_flight.remove(at).ok_or("vanished")?;
        if !data.is_empty()
            && let Some(i) = pattern::first_mismatch(self.seed, sector * 512, &data)
        {
            return Err(format!(
                "{}: byte {:#x} read back is {:#04x}, not this device's pattern",
                self.name,
                sector * 512 + i as u64,
                data[i]
            ));
        }
        Ok(())
    }

    /// Where an attacker would aim: the buffer at the highest IOVA the device can reach right
    /// now (usually a request in flight; possibly a ring, or a retired buffer whose batch is
    /// not yet unmapped), as its IOVA and as its physical address.
    fn targets(&self) -> Result<[(u64, String); 2], String> {
        let dma = self.device.session().dma_ref();
        let (iova, _) = *dma
            .mappings()
            .last()
            .ok_or_else(|| format!("{}: nothing mapped", self.name))?;
        let phys = Iova::new(iova)
            .ok()
            .and_then(|iova| dma.translate(iova))
            .ok_or_else(|| format!("{}: IOVA {iova:#x} does not translate", self.name))?
            .phys
            .as_u64();
        Ok([
            (
                iova,
                format!("{}'s live buffer at its IOVA {iova:#x}", self.name),
            ),
            (
                phys,
                format!(
                    "{}'s live buffer at its physical address {phys:#x}",
                    self.name
                ),
            ),
        ])
    }
}

fn block_load() -> Result<(), String> {
    let virtio = *devices_of("virtio-blk")
        .first()
        .ok_or("no virtio-blk driver running")?;
    let nvme = *devices_of("nvme").first().ok_or("no nvme driver running")?;
    let rogue_bdf = *edus().first().ok_or("no edu to misbehave")?;
    let rogue = Rig::new(rogue_bdf, "rogue")?;
    let result = with_block(virtio, |a| {
        with_block(nvme, |b| {
            let mut lanes = [
                Lane { name: "virtio-blk", device: a, seed: VIRTIO_SEED, next: 0, in_flight: VecDeque::new(), most: 0 },
                Lane { name: "nvme", device: b, seed: NVME_SEED, next: 0, in_flight: VecDeque::new(), most: 0 },
            ];
            for lane in &lanes {
                let end = FIRST_SECTOR + REQUESTS * u64::from(REQUEST_SECTORS);
                if lane.device.sectors() < end || lane.device.max_in_flight() < DEPTH {
                    return Err(format!(
                        "{}: {} sectors and {} requests in flight at most; the run needs {end} and {DEPTH}",
                        lane.name,
                        lane.device.sectors(),
                        lane.device.max_in_flight()
                    ));
                }
            }
            let mut attacks = 0;
            for write in [true, false] {
                for lane in lanes.iter_mut() {
                    lane.next = 0;
                }
                attacks += run_pass(&mut lanes, write, &rogue)?;
            }
            for lane in lanes.iter_mut() {
                lane.device.flush().map_err(|e| format!("{}: flush: {e}", lane.name))?;
                let events = lane
                    .device
                    .session()
                    .handle()
                    .fault_events()
                    .map_err(|e| format!("{e:?}"))?;
                if !events.events.is_empty() || events.lost > 0 {
                    return Err(format!("{}: DMA faults of its own: {events:?}", lane.name));
                }
                let stats = lane.device.dma_stats();
                info!(
                    "test",
                    "block-load: {}: {} requests, up to {} in flight, {} interrupts, {} maps, {} ranged invalidations, no faults",
                    lane.name,
                    2 * REQUESTS,
                    lane.most,
                    lane.device.interrupts(),
                    stats.maps,
                    stats.flushes
                );
            }
            Ok::<usize, String>(attacks)
        })
        .ok_or("the nvme driver is not a block driver")?
    })
    .ok_or("the virtio-blk driver is not a block driver")??;
    info!(
        "test",
        "block-load: {result} DMA attempts by {rogue_bdf} at the drivers' live buffers all faulted; both patterns read back exact"
    );
    Ok(())
}

/// One pass (write or read back) over both lanes at once; in the middle of it the rogue edu
/// aims at each lane's live buffers. Returns the attempts made.
fn run_pass(lanes: &mut [Lane<'_>; 2], write: bool, rogue: &Rig) -> Result<usize, String> {
    let mut attacked = false;
    let mut attempts = 0;
    while lanes
        .iter()
        .any(|lane| lane.remaining() || !lane.in_flight.is_empty())
    {
        for lane in lanes.iter_mut() {
            lane.fill(write)?;
        }
        // Both devices have requests in flight now: the moment to attack.
        if !attacked && lanes.iter().all(|lane| !lane.in_flight.is_empty()) {
            attacked = true;
            for index in 0..lanes.len() {
                for (address, what) in lanes[index].targets()? {
                    attack(rogue, address, &what, lanes, write)?;
                    attempts += 1;
                }
            }
        }
        for lane in lanes.iter_mut() {
            lane.finish_one()?;
        }
    }
    Ok(attempts)
}

/// Starts the rogue's DMA write at `address`, keeps both devices busy while the engine runs,
/// then checks the one fault it must cause.
fn attack(
    rogue: &Rig,
    address: u64,
    what: &str,
    lanes: &mut [Lane<'_>; 2],
    write: bool,
) -> Result<(), String> {
    let before = faults::interrupts_taken();
    rogue.start(Direction::FromDevice, address, 0, 256)?;
    // The model runs the DMA about 100 ms (virtual) after the command: block I/O goes on.
    for lane in lanes.iter_mut() {
        lane.finish_one()?;
        lane.fill(write)?;
    }
    sleep_us(150_000);
    rogue
        .edu()?
        .wait(&super::rig::now_us)
        .map_err(|e| format!("rogue edu: {e:?}"))?;
    let records = faults_after(before);
    expect_fault(
        &records,
        super::rig::dma_source(rogue.bdf)?,
        address & !0xfff,
        FaultAccess::Write,
        5,
    )
    .map_err(|e| format!("{what}: {e}"))?;
    info!("test", "block-load: the rogue edu's DMA at {what} faulted");
    Ok(())
}

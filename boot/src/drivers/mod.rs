//! The driver table and the running drivers. At boot the composition root matches every
//! registered device against the table; for a match it opens the device, binds it to an owner
//! named after the driver, gives it a fresh address space on its remapping unit and hands the
//! resulting [`DriverDevice`] to the driver's `probe`. A device no row matches, or whose probe
//! fails, stays blocked (a failed probe drops the session, which releases and resets it).
//!
//! Which drivers run is the `drivers=` command-line option (`all`, `none`, or names).

pub(crate) mod block;
mod e1000e;
mod edu;
mod nvme;
mod virtio_blk;

pub(crate) use e1000e::{E1000eDriver, configure as configure_network};
pub(crate) use edu::{EduDriver, Window};
pub(crate) use nvme::NvmeDriver;
pub(crate) use virtio_blk::{Block, block};

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use moat_iommu::Bdf;
use moat_kernel::cmdline::DriverChoice;
use moat_kernel::passthrough::{self, DriverDevice, Owner};
use moat_kernel::pci::PciDevice;
use moat_kernel::vtd::IoAddressSpace;
use moat_kernel::{error, info};
use spin::Mutex;

/// A running driver instance.
pub(crate) trait Driver: Send {
    /// One line for the boot report: what the driver found on its device.
    fn describe(&self) -> String;
    /// The driver's session (device, address space, DMA counters).
    fn device(&self) -> &DriverDevice;
    /// Stops the device cleanly (queues torn down, controller shut down); the session is
    /// dropped afterwards, which releases the device.
    fn remove(&mut self) -> Result<(), String>;
    /// For scenarios that drive a concrete driver.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Work between interrupts, from the idle loop (a network stack's frames and timers); the
    /// interrupt that ended the halt, or the tick, brings the loop here.
    fn poll(&mut self) {}
    /// The driver's block interface, if it is a block driver.
    fn as_block(&mut self) -> Option<&mut dyn block::BlockIo> {
        None
    }
}

/// One row: which devices a driver takes and how it starts on one.
pub(crate) struct DriverEntry {
    /// The driver's name (the owner's name in the registry).
    pub(crate) name: &'static str,
    /// Whether the driver takes this device (vendor/device/class).
    pub(crate) matches: fn(&PciDevice) -> bool,
    /// The device's DMA address width (its mask), for the address space.
    pub(crate) dma_bits: u8,
    /// Retired DMA buffers unmapped per invalidation (see `DeviceDma`).
    pub(crate) batch: usize,
    /// Brings the driver up on its device, or says why not.
    pub(crate) probe: fn(DriverDevice) -> Result<Box<dyn Driver>, String>,
}

/// The driver table.
pub(crate) const TABLE: &[DriverEntry] =
    &[edu::ENTRY, e1000e::ENTRY, nvme::ENTRY, virtio_blk::ENTRY];

struct Running {
    name: &'static str,
    bdf: Bdf,
    driver: Box<dyn Driver>,
    // Dropped after the driver (field order): the owner outlives its device's session.
    _owner: Owner,
}

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());
static PROBLEMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Starts the chosen drivers on every matching device. Returns the report lines.
pub(crate) fn start(choice: &DriverChoice, devices: &[PciDevice]) -> Vec<String> {
    for device in devices {
        let Some(entry) = TABLE
            .iter()
            .find(|entry| choice.includes(entry.name) && (entry.matches)(device))
        else {
            continue;
        };
        match start_one(entry, device.bdf) {
            Ok(running) => {
                info!(
                    "drivers",
                    "{}: {} ({})",
                    device.bdf,
                    entry.name,
                    running.driver.describe()
                );
                RUNNING.lock().push(running);
            }
            Err(why) => {
                // The failed probe dropped the session: finish its release now, so the
                // report shows the device blocked rather than releasing.
                passthrough::settle();
                error!(
                    "drivers",
                    "{}: {} failed: {why}; device stays blocked", device.bdf, entry.name
                );
                PROBLEMS
                    .lock()
                    .push(format!("{}: {} failed: {why}", device.bdf, entry.name));
            }
        }
    }
    lines()
}

fn start_one(entry: &DriverEntry, bdf: Bdf) -> Result<Running, String> {
    let owner = Owner::new(entry.name);
    let parked = passthrough::open(bdf).map_err(|e| format!("open: {e:?}"))?;
    let bound = parked.bind(&owner).map_err(|(e, _parked)| match e {
        passthrough::PassthroughError::Busy => {
            String::from("bind: Busy (another owner holds its group: one owner per group)")
        }
        other => format!("bind: {other:?}"),
    })?;
    let space = IoAddressSpace::for_unit_of(bdf, entry.dma_bits)
        .map_err(|e| format!("address space: {e:?}"))?;
    let session = bound
        .into_driver(space, entry.batch)
        .map_err(|(e, _bound)| format!("attach: {e:?}"))?;
    let driver = (entry.probe)(session)?;
    Ok(Running {
        name: entry.name,
        bdf,
        driver,
        _owner: owner,
    })
}

/// The report: one line per running driver (device, group, space, domain) and per failure.
pub(crate) fn lines() -> Vec<String> {
    let mut lines: Vec<String> = RUNNING
        .lock()
        .iter()
        .map(|running| {
            let device = running.driver.device();
            let group = device.handle().group();
            let (space, domain) = moat_kernel::vtd::attachment(group)
                .map(|(space, domain)| (format!("{space}"), format!("{domain}")))
                .unwrap_or_else(|| ("-".into(), "blocking".into()));
            format!(
                "driver: {} {} group {group} space {space} domain {domain}: {}",
                running.bdf,
                running.name,
                running.driver.describe()
            )
        })
        .collect();
    lines.extend(
        PROBLEMS
            .lock()
            .iter()
            .map(|problem| format!("driver: {problem}")),
    );
    lines
}

/// Runs `f` on the running driver of `bdf` if it is a `T`. The driver is taken out of the
/// table while `f` runs, so `f` may use another driver the same way (the concurrency
/// scenarios drive two at once).
pub(crate) fn with<T: 'static, R>(bdf: Bdf, f: impl FnOnce(&mut T) -> R) -> Option<R> {
    with_any(bdf, |driver| driver.downcast_mut::<T>().map(f)).flatten()
}

/// Runs `f` on the running driver of `bdf`, whatever its type (taken out of the table while
/// `f` runs, as in [`with`]).
pub(crate) fn with_any<R>(bdf: Bdf, f: impl FnOnce(&mut dyn Any) -> R) -> Option<R> {
    with_driver(bdf, |driver| f(driver.as_any_mut()))
}

/// Runs `f` on the running driver of `bdf` (taken out of the table while `f` runs, as in
/// [`with`]).
pub(crate) fn with_driver<R>(bdf: Bdf, f: impl FnOnce(&mut dyn Driver) -> R) -> Option<R> {
    let mut running = {
        let mut all = RUNNING.lock();
        let index = all.iter().position(|running| running.bdf == bdf)?;
        all.remove(index)
    };
    let result = f(running.driver.as_mut());
    RUNNING.lock().push(running);
    Some(result)
}

/// Lets every running driver do its work between interrupts (see [`Driver::poll`]).
pub(crate) fn poll_all() {
    for running in RUNNING.lock().iter_mut() {
        running.driver.poll();
    }
}

/// The devices a driver named `name` runs on.
pub(crate) fn devices_of(name: &str) -> Vec<Bdf> {
    RUNNING
        .lock()
        .iter()
        .filter(|running| running.name == name)
        .map(|running| running.bdf)
        .collect()
}

/// Removes the driver of `bdf`: `remove`, then the session is dropped and the device released.
pub(crate) fn remove(bdf: Bdf) -> Result<(), String> {
    let mut running = {
        let mut all = RUNNING.lock();
        let index = all
            .iter()
            .position(|running| running.bdf == bdf)
            .ok_or(format!("{bdf}: no driver running"))?;
        all.remove(index)
    };
    let result = running.driver.remove();
    drop(running);
    passthrough::settle();
    result
}

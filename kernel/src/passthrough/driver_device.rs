//! A device as a driver keeps it: the bound handle together with what the driver uses of it
//! (mapped BARs, MSI-X vectors, its DMA), in one owned value with no borrowed lifetimes, so a
//! driver instance can live in a table. The pieces borrowed from the handle are fields declared
//! before it and therefore dropped before it: the vectors are turned off at the device and the
//! register windows are gone (the only values that reached the BARs; the kernel's identity
//! mapping of the MMIO range stays) before the handle starts the device's release.

use super::PassthroughError;
use super::device_dma::DeviceDma;
use super::handle::Bound;
use super::interrupts::Interrupt;
use super::registry::with_registry;
use crate::dma::RegisterWindow;
use crate::time::Timeout;
use crate::vtd::IoAddressSpace;
use alloc::vec::Vec;
use moat_iommu::Bdf;

/// A bound device attached to its driver's address space, bus mastering on.
#[derive(Debug)]
pub struct DriverDevice {
    // Field order is drop order: everything that reaches the device through the handle goes
    // before the handle itself.
    vectors: Vec<(u16, Interrupt<'static>)>,
    windows: Vec<(u8, RegisterWindow)>,
    dma: DeviceDma,
    bound: Bound,
}

impl Bound {
    /// Attaches the device to `space` (its driver's own), turns bus mastering on and returns
    /// the driver's session; retired DMA buffers are unmapped `batch` at a time. On failure
    /// the handle comes back (detached again if the attach had succeeded).
    pub fn into_driver(
        mut self,
        space: IoAddressSpace,
        batch: usize,
    ) -> Result<DriverDevice, (PassthroughError, Bound)> {
        if let Err(error) = self.attach(&space) {
            return Err((error, self));
        }
        if let Err(error) = self.set_bus_master(true) {
            let _ = self.detach();
            return Err((error, self));
        }
        Ok(DriverDevice {
            vectors: Vec::new(),
            windows: Vec::new(),
            dma: DeviceDma::new(space, batch, self.translation()),
            bound: self,
        })
    }
}

impl DriverDevice {
    /// The device.
    pub fn bdf(&self) -> Bdf {
        self.bound.bdf()
    }

    /// The bound handle (group, state, fault events).
    pub fn handle(&self) -> &Bound {
        &self.bound
    }

    /// Memory BAR `index`, mapped on first use (the same checks as [`Bound::bar`]).
    pub fn registers(&mut self, index: u8) -> Result<&RegisterWindow, PassthroughError> {
        if !self.windows.iter().any(|(i, _)| *i == index) {
            let window = self.bound.bar(index)?.into_window();
            self.windows.push((index, window));
        }
        self.windows
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, window)| window)
            .ok_or(PassthroughError::NoSuchBar(self.bdf(), index))
    }

    /// A BAR mapped earlier by [`registers`](Self::registers), without `&mut`.
    pub fn mapped(&self, index: u8) -> Result<&RegisterWindow, PassthroughError> {
        self.windows
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, window)| window)
            .ok_or(PassthroughError::NoSuchBar(self.bdf(), index))
    }

    /// Turns on MSI-X table entry `index` (its own remapping entry, source-validated). The
    /// deliveries are counted; [`wait_interrupt`](Self::wait_interrupt) waits for them.
    pub fn enable_msix(&mut self, index: u16) -> Result<(), PassthroughError> {
        self.bound.live()?;
        if self.vectors.iter().any(|(i, _)| *i == index) {
            return Ok(());
        }
        let allow_unsafe = with_registry(|registry| Ok(registry.allow_unsafe_interrupts))?;
        let vector = super::interrupts::msix(self.bdf(), index, None, allow_unsafe)?;
        self.vectors.push((index, vector));
        Ok(())
    }

    /// Turns on the device's MSI vector instead (devices without MSI-X, like edu); it is
    /// vector index 0 for [`deliveries`](Self::deliveries) and
    /// [`wait_interrupt`](Self::wait_interrupt). A device uses MSI or MSI-X, never both.
    pub fn enable_msi(&mut self) -> Result<(), PassthroughError> {
        self.bound.live()?;
        if !self.vectors.is_empty() {
            return Err(PassthroughError::Interrupts(
                "MSI asked for after other vectors were enabled".into(),
            ));
        }
        let allow_unsafe = with_registry(|registry| Ok(registry.allow_unsafe_interrupts))?;
        let vector = super::interrupts::msi(self.bdf(), None, allow_unsafe)?;
        self.vectors.push((0, vector));
        Ok(())
    }

    /// Deliveries of MSI-X entry `index` so far (0 if it is not enabled).
    pub fn deliveries(&self, index: u16) -> u64 {
        self.vectors
            .iter()
            .find(|(i, _)| *i == index)
            .map_or(0, |(_, vector)| vector.deliveries())
    }

    /// Halts until MSI-X entry `index` has been delivered more than `seen` times, or
    /// `budget_us` passed; returns the new count (an entry that is not enabled times out at
    /// once). The wait goes through the kernel's poll helper (a TSC deadline and an iteration
    /// cap), and holds with a broken clock too: with interrupts on, the periodic tick wakes the
    /// halt and the tick count is a second deadline; with interrupts off nothing can be
    /// delivered and the helper's iteration cap ends the wait.
    pub fn wait_interrupt(&self, index: u16, seen: u64, budget_us: u64) -> Result<u64, Timeout> {
        let timeout = Timeout { budget_us };
        let vector = self
            .vectors
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, vector)| vector)
            .ok_or(timeout)?;
        // TIMEOUT: the tick (TICK_HZ) bounds the wait if the TSC clock is broken; two extra
        // ticks cover the partial first one.
        let tick_us = 1_000_000 / crate::arch::apic::TICK_HZ;
        let tick_deadline = crate::arch::apic::ticks() + budget_us / tick_us + 2;
        let waited = crate::time::poll(budget_us, || {
            let mut count = 0;
            if crate::arch::io::halt_unless(|| {
                count = vector.deliveries();
                count > seen
            }) {
                return Some(Ok(count));
            }
            (crate::arch::apic::ticks() > tick_deadline).then_some(Err(timeout))
        });
        match waited {
            Ok(Ok(count)) => Ok(count),
            // Out of budget: one last look, the delivery may have come with the last wake.
            Ok(Err(timeout)) | Err(timeout) => {
                let count = vector.deliveries();
                if count > seen {
                    Ok(count)
                } else {
                    Err(timeout)
                }
            }
        }
    }

    /// The driver's DMA (strict per-request mapping, batched invalidation).
    pub fn dma(&mut self) -> &mut DeviceDma {
        &mut self.dma
    }

    /// The driver's DMA, read-only (buffer contents, counters).
    pub fn dma_ref(&self) -> &DeviceDma {
        &self.dma
    }

    /// Reads a config dword.
    pub fn config_read32(&self, offset: u16) -> Result<u32, PassthroughError> {
        self.bound.config_read32(offset)
    }

    /// A filtered config write (see [`Bound::config_write`]).
    pub fn config_write(
        &self,
        offset: u16,
        width: u16,
        value: u32,
    ) -> Result<(), PassthroughError> {
        self.bound.config_write(offset, width, value)
    }
}

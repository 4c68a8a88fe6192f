//! What the device scenarios share: finding edus, an edu bound to an owner through the
//! passthrough API with an address space attached, DMA through its driver, and reading back
//! what the IOMMU recorded. Everything goes through the same API a driver uses.

pub(crate) use crate::drivers::Window;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_edu::{Direction, Edu};
use moat_iommu::Bdf;
use moat_iommu::engine::FaultRecord;
use moat_iommu::engine::fault::Access as FaultAccess;
use moat_kernel::passthrough::{self, BarWindow, Bound, Owner};
use moat_kernel::vtd::{self, IoAddressSpace, faults};
use moat_kernel::{devices, time};

/// Formats any error for a scenario verdict.
pub(crate) fn err(e: impl core::fmt::Debug) -> String {
    format!("{e:?}")
}

pub(crate) fn now_us() -> u64 {
    time::now_ns() / 1000
}

/// Every edu, sorted by BDF.
pub(crate) fn edus() -> Vec<Bdf> {
    devices::all()
        .map(|all| {
            all.devices
                .iter()
                .filter(|d| d.vendor == moat_edu::VENDOR_ID && d.device == moat_edu::DEVICE_ID)
                .map(|d| d.bdf)
                .collect()
        })
        .unwrap_or_default()
}

/// The requester ID the IOMMU sees for `bdf`'s DMA: the topmost bridge alias, else its own.
pub(crate) fn dma_source(bdf: Bdf) -> Result<u16, String> {
    let all = devices::all().ok_or("no PCI enumeration")?;
    vtd::topology::dma_sources(all, bdf)
        .last()
        .copied()
        .ok_or(format!("{bdf}: no requester ID"))
}

/// An edu bound by its own owner, attached to its own address space, bus mastering on.
pub(crate) struct Rig {
    pub(crate) bdf: Bdf,
    pub(crate) device: Bound,
    pub(crate) space: IoAddressSpace,
    pub(crate) owner: Owner,
}

impl Rig {
    /// Opens, binds, attaches a fresh space (28-bit IOVAs: edu's DMA mask) and enables bus
    /// mastering.
    pub(crate) fn new(bdf: Bdf, owner_name: &'static str) -> Result<Self, String> {
        let owner = Owner::new(owner_name);
        let device = passthrough::open(bdf)
            .map_err(|e| format!("open {bdf}: {e:?}"))?
            .bind(&owner)
            .map_err(|(e, _)| format!("bind {bdf}: {e:?}"))?;
        Self::with_device(bdf, device, owner)
    }

    /// Attaches a fresh space to an already bound device.
    pub(crate) fn with_device(bdf: Bdf, mut device: Bound, owner: Owner) -> Result<Self, String> {
        let space = IoAddressSpace::for_unit_of(bdf, 28).map_err(err)?;
        device
            .attach(&space)
            .map_err(|e| format!("attach {bdf}: {e:?}"))?;
        device
            .set_bus_master(true)
            .map_err(|e| format!("bus master {bdf}: {e:?}"))?;
        let _ = faults::take_recent();
        Ok(Self {
            bdf,
            device,
            space,
            owner,
        })
    }

    /// Swaps in a fresh address space (the old one is dropped once detached).
    pub(crate) fn fresh_space(&mut self) -> Result<(), String> {
        self.device.detach().map_err(err)?;
        self.space = IoAddressSpace::for_unit_of(self.bdf, 28).map_err(err)?;
        self.device.attach(&self.space).map_err(err)?;
        self.device.set_bus_master(true).map_err(err)
    }

    /// The edu driver on this device's BAR 0 (valid while the rig is borrowed).
    pub(crate) fn edu(&self) -> Result<Edu<Window<BarWindow<'_>>>, String> {
        let bar = self.device.bar(0).map_err(err)?;
        Edu::new(Window(bar)).map_err(|e| format!("{}: {e:?}", self.bdf))
    }

    /// One edu DMA, waited for.
    pub(crate) fn transfer(
        &self,
        direction: Direction,
        iova: u64,
        device_offset: u16,
        len: u16,
    ) -> Result<(), String> {
        let mut edu = self.edu()?;
        edu.transfer(direction, iova, device_offset, len, &now_us)
            .map_err(|e| format!("edu {}: {e:?}", self.bdf))
    }

    /// Starts an edu DMA without waiting.
    pub(crate) fn start(
        &self,
        direction: Direction,
        iova: u64,
        device_offset: u16,
        len: u16,
    ) -> Result<(), String> {
        let mut edu = self.edu()?;
        edu.start(
            direction,
            iova,
            device_offset,
            len,
            moat_edu::Completion::Quiet,
        )
        .map_err(|e| format!("edu {}: {e:?}", self.bdf))
    }
}

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Waits for the fault interrupt (the handler drains and records), then takes the records.
pub(crate) fn faults_after(interrupts_before: u64) -> Vec<FaultRecord> {
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

/// Exactly one fault with these fields.
pub(crate) fn expect_fault(
    records: &[FaultRecord],
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

/// Page-aligned kernel memory no device may reach: the isolation scenarios aim DMA at it.
#[repr(C, align(4096))]
pub(crate) struct KernelPage(pub(crate) [u8; 4096]);

/// Waits `us` microseconds (the edu model runs a DMA about 100 ms after its command).
pub(crate) fn sleep_us(us: u64) {
    let _ = time::poll(us, || None::<()>);
}

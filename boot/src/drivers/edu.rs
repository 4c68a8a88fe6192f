//! The edu driver's glue, the smallest complete driver and the one to read first: its registers
//! come from the session's BAR 0, its completion interrupt is the device's MSI (through
//! interrupt remapping), and its DMA buffers are mapped into its own address space for one
//! transfer each and retired after it.

use super::{Driver, DriverEntry};
use crate::scenarios::pattern;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::any::Any;
use moat_edu::{Completion, Direction, Edu, EduRegisters};
use moat_iommu::entries::Access;
use moat_kernel::dma::RegisterWindow;
use moat_kernel::passthrough::DriverDevice;
use moat_kernel::pci::PciDevice;
use moat_kernel::time;

/// The table row.
pub(super) const ENTRY: DriverEntry = DriverEntry {
    name: "edu",
    matches: |device: &PciDevice| {
        device.vendor == moat_edu::VENDOR_ID && device.device == moat_edu::DEVICE_ID
    },
    // edu's DMA mask is 28 bits.
    dma_bits: 28,
    batch: 1,
    probe,
};

/// An edu's BAR 0 as the driver crate sees it: any window (a session's, or one the
/// composition root mapped for a device no owner holds).
pub(crate) struct Window<W>(pub(crate) W);

impl<W: AsRef<RegisterWindow>> EduRegisters for Window<W> {
    fn read32(&self, offset: u64) -> u32 {
        self.0.as_ref().read32(offset).unwrap_or(u32::MAX)
    }
    fn write32(&self, offset: u64, value: u32) {
        let _ = self.0.as_ref().write32(offset, value);
    }
    fn read64(&self, offset: u64) -> u64 {
        self.0.as_ref().read64(offset).unwrap_or(u64::MAX)
    }
    fn write64(&self, offset: u64, value: u64) {
        let _ = self.0.as_ref().write64(offset, value);
    }
}

/// TIMEOUT: the model answers a factorial at once and a transfer 100 ms (virtual) after the
/// command; 3 s covers a loaded TCG host.
const INTERRUPT_BUDGET_US: u64 = 3_000_000;

/// A running edu driver.
pub(crate) struct EduDriver {
    session: DriverDevice,
    factorial: u32,
}

fn now_us() -> u64 {
    time::now_ns() / 1000
}

fn probe(mut session: DriverDevice) -> Result<Box<dyn Driver>, String> {
    session.registers(0).map_err(|e| format!("BAR 0: {e:?}"))?;
    session.enable_msi().map_err(|e| format!("MSI: {e:?}"))?;
    let mut driver = EduDriver {
        session,
        factorial: 0,
    };
    driver.factorial = driver.factorial(12)?;
    if driver.factorial != 479_001_600 {
        return Err(format!("12! came back as {}", driver.factorial));
    }
    driver.round_trip(u64::from(driver.session.bdf().requester_id()))?;
    Ok(Box::new(driver))
}

impl EduDriver {
    fn edu(&self) -> Result<Edu<Window<&RegisterWindow>>, String> {
        let window = self.session.mapped(0).map_err(|e| format!("{e:?}"))?;
        Edu::new(Window(window)).map_err(|e| format!("{e:?}"))
    }

    /// `n!` computed by the device, completion signalled by its MSI.
    pub(crate) fn factorial(&mut self, n: u32) -> Result<u32, String> {
        let seen = self.session.deliveries(0);
        let mut edu = self.edu()?;
        edu.start_factorial(n, Completion::Interrupt)
            .map_err(|e| format!("{e:?}"))?;
        self.session
            .wait_interrupt(0, seen, INTERRUPT_BUDGET_US)
            .map_err(|e| format!("factorial interrupt: {e}"))?;
        edu.acknowledge_interrupt(moat_edu::INTERRUPT_FACTORIAL_DONE);
        edu.factorial_result()
            .ok_or_else(|| String::from("interrupt came before the result"))
    }

    /// Copies 4095 bytes of pattern `seed` to the device and back through two DMA buffers of
    /// this driver's space, each completion signalled by MSI; checks the copy.
    pub(crate) fn round_trip(&mut self, seed: u64) -> Result<(), String> {
        const LEN: u16 = 4095;
        let dma = |e: &dyn core::fmt::Debug| format!("DMA: {e:?}");
        let source = self
            .session
            .dma()
            .map(4096, Access::Read)
            .map_err(|e| dma(&e))?;
        let target = self
            .session
            .dma()
            .map(4096, Access::Write)
            .map_err(|e| dma(&e))?;
        let mut data = [0u8; LEN as usize];
        pattern::fill(seed, 0, &mut data);
        self.session
            .dma_ref()
            .write(&source, 0, &data)
            .map_err(|e| dma(&e))?;
        for (direction, iova) in [
            (Direction::ToDevice, source.iova()),
            (Direction::FromDevice, target.iova()),
        ] {
            let seen = self.session.deliveries(0);
            let mut edu = self.edu()?;
            edu.start(direction, iova, 0, LEN, Completion::Interrupt)
                .map_err(|e| format!("{e:?}"))?;
            self.session
                .wait_interrupt(0, seen, INTERRUPT_BUDGET_US)
                .map_err(|e| format!("DMA interrupt: {e}"))?;
            edu.wait(&now_us).map_err(|e| format!("{e:?}"))?;
            edu.acknowledge_interrupt(moat_edu::INTERRUPT_DMA_DONE);
        }
        let mut back = [0u8; LEN as usize];
        self.session
            .dma_ref()
            .read(&target, 0, &mut back)
            .map_err(|e| dma(&e))?;
        self.session.dma().retire(source).map_err(|e| dma(&e))?;
        self.session.dma().retire(target).map_err(|e| dma(&e))?;
        match pattern::first_mismatch(seed, 0, &back) {
            None => Ok(()),
            Some(at) => Err(format!("DMA round trip: byte {at} is {:#x}", back[at])),
        }
    }
}

impl Driver for EduDriver {
    fn describe(&self) -> String {
        format!(
            "alive, 12! = {}, DMA round trip with MSI ok",
            self.factorial
        )
    }

    fn device(&self) -> &DriverDevice {
        &self.session
    }

    fn remove(&mut self) -> Result<(), String> {
        self.session.dma().flush().map_err(|e| format!("{e:?}"))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

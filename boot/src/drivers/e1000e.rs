//! The e1000e driver's glue: the driver crate's traits over a [`DriverDevice`] (BAR 0, MSI-X
//! vectors, DMA mappings in the device's own address space), and the network stack on the
//! address from `net.ip=`/`net.gw=`.
//!
//! DMA: the descriptor rings are long-lived mappings made at probe; every I/O buffer is mapped
//! for one frame. A receive page is retired when its frame is taken (its descriptor gets a
//! fresh page), a transmit buffer once the device wrote its descriptor back; both go through
//! the session's `DeviceDma` batch queue: [`BATCH`] retired buffers share one ranged IOTLB
//! invalidation, and their memory is freed only after it.

use super::{Driver, DriverEntry};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::any::Any;
use core::net::Ipv4Addr;
use moat_e1000e::{
    Clock, DmaDirection, DmaFailure, DmaMemory, E1000e, InterruptFailure, Interrupts, Registers,
    WaitTimeout,
};
use moat_iommu::entries::Access;
use moat_kernel::cmdline::Ipv4WithPrefix;
use moat_kernel::passthrough::{DmaMapping, DriverDevice};
use moat_kernel::pci::PciDevice;
use moat_kernel::{error, time};
use moat_net_stack::{Ipv4Cidr, Report, Stack, StackConfig};
use spin::Mutex;

/// Retired buffers (receive and transmit) per ranged invalidation.
const BATCH: usize = 32;

/// The table row.
pub(super) const ENTRY: DriverEntry = DriverEntry {
    name: "e1000e",
    matches: |device: &PciDevice| {
        device.vendor == moat_e1000e::VENDOR_ID && device.device == moat_e1000e::DEVICE_ID
    },
    // The 82574 addresses 64 bits; 39 fits every IOMMU configuration the tests use.
    dma_bits: 39,
    batch: BATCH,
    probe,
};

/// The network options from the command line, set by the composition root before the
/// drivers start.
static NETWORK: Mutex<(Option<Ipv4WithPrefix>, Option<Ipv4Addr>)> = Mutex::new((None, None));

/// Records `net.ip=` and `net.gw=` for the e1000e driver.
pub(crate) fn configure(address: Option<Ipv4WithPrefix>, gateway: Option<Ipv4Addr>) {
    *NETWORK.lock() = (address, gateway);
}

/// The driver crate's platform: the session, whose BAR 0 is mapped at probe.
pub(crate) struct Session(DriverDevice);

fn now_us() -> u64 {
    time::now_ns() / 1000
}

impl Registers for Session {
    fn read32(&self, offset: u32) -> u32 {
        // A window that is gone or an offset outside it reads as all ones, like a PCI master
        // abort; the driver validates what it reads.
        self.0
            .mapped(0)
            .map(|window| window.read32(u64::from(offset)))
            .ok()
            .and_then(Result::ok)
            .unwrap_or(u32::MAX)
    }

    fn write32(&self, offset: u32, value: u32) {
        if let Ok(window) = self.0.mapped(0) {
            let _ = window.write32(u64::from(offset), value);
        }
    }
}

impl DmaMemory for Session {
    type Region = DmaMapping;

    fn allocate(&mut self, len: usize, direction: DmaDirection) -> Result<DmaMapping, DmaFailure> {
        let access = match direction {
            DmaDirection::ToDevice => Access::Read,
            DmaDirection::FromDevice => Access::Write,
            DmaDirection::Bidirectional => Access::ReadWrite,
        };
        self.0.dma().map(len as u64, access).map_err(|_| DmaFailure)
    }

    fn iova(&self, region: &DmaMapping) -> u64 {
        region.iova()
    }

    fn read(
        &mut self,
        region: &DmaMapping,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), DmaFailure> {
        self.0
            .dma_ref()
            .read(region, offset as u64, out)
            .map_err(|_| DmaFailure)
    }

    fn write(&mut self, region: &DmaMapping, offset: usize, data: &[u8]) -> Result<(), DmaFailure> {
        self.0
            .dma_ref()
            .write(region, offset as u64, data)
            .map_err(|_| DmaFailure)
    }

    fn retire(&mut self, region: DmaMapping) {
        if let Err(why) = self.0.dma().retire(region) {
            error!("e1000e", "{}: retiring a DMA buffer: {why:?}", self.0.bdf());
        }
    }
}

impl Interrupts for Session {
    fn enable(&mut self, vector: u16) -> Result<(), InterruptFailure> {
        self.0.enable_msix(vector).map_err(|_| InterruptFailure)
    }

    fn deliveries(&self, vector: u16) -> u64 {
        self.0.deliveries(vector)
    }

    fn wait(&mut self, vector: u16, seen: u64, budget_us: u64) -> Result<u64, WaitTimeout> {
        self.0
            .wait_interrupt(vector, seen, budget_us)
            .map_err(|_| WaitTimeout)
    }
}

impl Clock for Session {
    fn now_us(&self) -> u64 {
        now_us()
    }
}

type Nic = E1000e<Session>;

/// The device, bare or carrying the network stack.
enum State {
    /// No `net.ip=`: the device is up, nothing listens.
    Bare(Box<Nic>),
    /// The stack and its services on the configured address.
    Serving(Box<Stack<Nic>>),
}

/// A running e1000e driver.
pub(crate) struct E1000eDriver {
    state: State,
    mac: [u8; 6],
    address: Option<Ipv4Cidr>,
}

fn probe(mut session: DriverDevice) -> Result<Box<dyn Driver>, String> {
    session.registers(0).map_err(|e| format!("BAR 0: {e:?}"))?;
    let nic = E1000e::new(Session(session)).map_err(|e| format!("bring-up: {e:?}"))?;
    let mac = nic.mac_address();
    let (address, gateway) = *NETWORK.lock();
    let Some(address) = address else {
        return Ok(Box::new(E1000eDriver {
            state: State::Bare(Box::new(nic)),
            mac,
            address: None,
        }));
    };
    let cidr = Ipv4Cidr::new(address.address, address.prefix_len);
    let config = StackConfig {
        address: cidr,
        gateway,
        random_seed: time::now_ns()
            ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]),
    };
    let stack = Stack::new(nic, config, now_us()).map_err(|e| format!("network: {e:?}"))?;
    Ok(Box::new(E1000eDriver {
        state: State::Serving(Box::new(stack)),
        mac,
        address: Some(cidr),
    }))
}

// TIMEOUT: the longest sleep between polls when smoltcp has no timer due; frames and
// completions wake the loop earlier through the queue vector.
const IDLE_WAIT_US: u64 = 100_000;
/// Iteration cap of the serve loop, beside its deadline.
const SERVE_ITERATIONS: u64 = 10_000_000;

impl E1000eDriver {
    fn nic(&self) -> &Nic {
        match &self.state {
            State::Bare(nic) => nic,
            State::Serving(stack) => stack.nic(),
        }
    }

    /// Runs the services until `done` says the report is enough, or `budget_us` passed (an
    /// error carrying the report). Sleeps on the queue vector between polls.
    pub(crate) fn serve(
        &mut self,
        budget_us: u64,
        done: impl Fn(&Report) -> bool,
    ) -> Result<Report, String> {
        let State::Serving(stack) = &mut self.state else {
            return Err("no address: give net.ip=A.B.C.D/N on the command line".into());
        };
        let start = now_us();
        for _ in 0..SERVE_ITERATIONS {
            let seen = stack.nic().queue_interrupts();
            stack.nic_mut().acknowledge();
            let now = now_us();
            stack.poll(now);
            let report = stack.report();
            if done(&report) {
                return Ok(report);
            }
            let spent = now.saturating_sub(start);
            if spent >= budget_us {
                break;
            }
            let delay = stack
                .poll_delay_us(now)
                .unwrap_or(IDLE_WAIT_US)
                .min(IDLE_WAIT_US)
                .min(budget_us - spent);
            // A timeout only means nothing arrived: smoltcp's timers are due, poll again.
            let _ = stack.nic_mut().wait_for_queues(seen, delay);
        }
        let report = stack.report();
        Err(format!("not done within {budget_us} us: {report:?}"))
    }

    /// Counters of the driver and of its DMA session.
    pub(crate) fn counters(&self) -> String {
        let nic = self.nic();
        let dma = nic.platform().0.dma_ref().stats();
        format!(
            "{:?}; DMA maps {} retired {} invalidations {} pending {}; queue interrupts {}",
            nic.statistics(),
            dma.maps,
            dma.retired,
            dma.flushes,
            dma.pending,
            nic.queue_interrupts()
        )
    }
}

impl Driver for E1000eDriver {
    fn describe(&self) -> String {
        let [a, b, c, d, e, f] = self.mac;
        let address = match self.address {
            Some(cidr) => format!("{cidr}"),
            None => String::from("no address (net.ip= not given)"),
        };
        format!("mac {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}, link up, MSI-X, {address}")
    }

    fn device(&self) -> &DriverDevice {
        &self.nic().platform().0
    }

    fn remove(&mut self) -> Result<(), String> {
        // The session's drop resets the device (stopping its DMA) before the space goes.
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    /// Between interrupts (the idle loop): takes what arrived, answers, sends what is due.
    fn poll(&mut self) {
        if let State::Serving(stack) = &mut self.state {
            stack.nic_mut().acknowledge();
            stack.poll(now_us());
        }
    }
}

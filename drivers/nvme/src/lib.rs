//! NVMe driver (NVMe 1.4 base specification, NVM command set): controller reset and enable,
//! the admin queue, Identify, I/O queue pairs with one MSI-X vector per completion queue,
//! Read, Write and Flush with PRP lists, several commands in flight, and a clean shutdown.
//! Safe Rust only, generic over the [`Platform`] traits: the kernel's boot glue implements them
//! over a bound device session, the host tests over a simulated controller.
//!
//! Every wait has a budget (a deadline and an iteration cap), every value the controller
//! reports is checked before use, and a controller that breaks the protocol (an unknown
//! command ID, a fatal status, a timeout) is stopped, not trusted further: later calls answer
//! [`NvmeError::Stopped`], and [`Nvme::shut_down`] still hands the platform back.
//!
//! Each I/O maps fresh DMA memory for its data (and PRP list) and retires it when the command
//! completes, so the device reaches a buffer only while its command is in flight.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod command;
mod error;
mod identify;
mod io;
mod platform;
mod poll;
mod prp;
mod queue;
mod registers;
mod session;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use command::CommandStatus;
pub use error::{NvmeError, Wait};
pub use identify::{ControllerIdentity, IdentifyError, NamespaceIdentity};
pub use platform::{
    Clock, Direction, DmaError, DmaMemory, DmaRegion, InterruptError, Interrupts, Platform,
    RegisterError, Registers, WaitTimeout,
};
pub use queue::{Completion, Tag};
pub use registers::{Capabilities, PAGE_SIZE};

use crate::command::admin;
use crate::registers::VS;
use crate::session::Core;

/// PCI vendor ID of QEMU's nvme (Red Hat).
pub const QEMU_VENDOR_ID: u16 = 0x1b36;
/// PCI device ID of QEMU's nvme.
pub const QEMU_DEVICE_ID: u16 = 0x0010;
/// PCI class code of an NVM Express I/O controller (base class << 16 | subclass << 8 |
/// programming interface): mass storage, non-volatile memory, NVMe.
pub const CLASS: u32 = 0x01_08_02;

/// Entries in each admin queue.
const ADMIN_ENTRIES: u16 = 16;
/// The largest transfer one PRP list page can describe for a page-aligned buffer.
const PRP_LIMIT: usize = PAGE_SIZE * prp::MAX_LIST_ENTRIES;

/// How the driver sets the controller up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// I/O queue pairs to create (MSI-X vectors 1..=n; the admin queue uses vector 0).
    pub io_queues: u16,
    /// Entries per I/O queue (capped by CAP.MQES); one fewer commands can be in flight.
    pub queue_entries: u16,
    /// Budget for one command to complete, in microseconds.
    pub command_budget_us: u64,
}

impl Default for Options {
    /// One queue pair of 64 entries (63 commands in flight); 10 s per command.
    fn default() -> Self {
        Self {
            io_queues: 1,
            queue_entries: 64,
            // TIMEOUT: QEMU answers admin commands at once and I/O within milliseconds; real
            // controllers within a second unless failing; 10 s means it will not answer.
            command_budget_us: 10_000_000,
        }
    }
}

/// A running NVMe controller with one namespace.
pub struct Nvme<P: Platform> {
    core: Core<P>,
    version: u32,
    controller: ControllerIdentity,
    namespace: NamespaceIdentity,
    max_transfer: usize,
}

impl<P: Platform> Nvme<P> {
    /// Resets the controller, sets up the admin queue, enables it, identifies the controller
    /// and its first active namespace, and creates the I/O queue pairs. On failure the
    /// controller is disabled, every region retired, and the platform handed back.
    pub fn start(mut platform: P, options: Options) -> Result<Self, (NvmeError, P)> {
        let capabilities = match session::reset(&mut platform) {
            Ok(c) => c,
            Err(e) => return Err((e, platform)),
        };
        let admin_entries = ADMIN_ENTRIES.min(capabilities.max_queue_entries().min(4096) as u16);
        let mut core = Core::enable(
            platform,
            capabilities,
            admin_entries,
            options.command_budget_us,
        )?;
        match Self::identify_and_create(&mut core, options) {
            Ok((version, controller, namespace, max_transfer)) => Ok(Self {
                core,
                version,
                controller,
                namespace,
                max_transfer,
            }),
            Err(e) => Err((e, core.abandon())),
        }
    }

    fn identify_and_create(
        core: &mut Core<P>,
        options: Options,
    ) -> Result<(u32, ControllerIdentity, NamespaceIdentity, usize), NvmeError> {
        let version = core.platform.read32(VS)?;
        let controller = ControllerIdentity::parse(&core.identify(admin::CNS_CONTROLLER, 0)?)?;
        let list = core.identify(admin::CNS_ACTIVE_NAMESPACES, 0)?;
        let id = identify::first_active_namespace(&list)
            .filter(|_| controller.namespaces != 0)
            .ok_or(NvmeError::NoNamespace)?;
        let namespace = NamespaceIdentity::parse(id, &core.identify(admin::CNS_NAMESPACE, id)?)?;
        let block = namespace.block_size as usize;
        // NLB is 16 bits, 0-based: at most 65536 blocks per command.
        let max_transfer = controller
            .max_transfer
            .unwrap_or(usize::MAX)
            .min(PRP_LIMIT)
            .min(block * 0x1_0000);
        if max_transfer < block {
            return Err(IdentifyError::TransferSize {
                max: max_transfer,
                block: namespace.block_size,
            }
            .into());
        }
        io::create_queues(core, options)?;
        Ok((version, controller, namespace, max_transfer))
    }

    /// Ends the session: deletes the I/O queues, shuts the controller down (CC.SHN normal,
    /// CSTS.SHST complete), disables it and retires every region. The platform comes back
    /// whatever happened; the result says whether the shutdown was clean.
    pub fn shut_down(self) -> (P, Result<(), NvmeError>) {
        self.core.shut_down()
    }

    /// The platform (for the glue's counters).
    pub fn platform(&self) -> &P {
        &self.core.platform
    }

    /// CAP as validated at start.
    pub fn capabilities(&self) -> Capabilities {
        self.core.capabilities
    }

    /// The VS register (major in bits 31:16, minor in 15:8).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What Identify Controller said.
    pub fn controller(&self) -> &ControllerIdentity {
        &self.controller
    }

    /// The namespace in use.
    pub fn namespace(&self) -> &NamespaceIdentity {
        &self.namespace
    }

    /// The largest transfer, in bytes (MDTS, one PRP list, 65536 blocks).
    pub fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    /// Number of I/O queue pairs.
    pub fn io_queues(&self) -> usize {
        self.core.io.len()
    }

    /// Commands in flight on I/O queue `queue` (0 if there is no such queue).
    pub fn in_flight(&self, queue: usize) -> usize {
        self.core.io.get(queue).map_or(0, |q| q.in_flight())
    }

    /// Whether an earlier error stopped the controller.
    pub fn is_stopped(&self) -> bool {
        self.core.stopped
    }
}

//! The controller session under the public driver: the platform, the admin queue and the I/O
//! queues, the interrupt-driven wait for completions, admin commands, and the end of the
//! session (clean shutdown, or abandoning a controller that failed).

use crate::command::{Command, admin};
use crate::error::{NvmeError, Wait};
use crate::identify::IDENTIFY_BYTES;
use crate::platform::{Direction, DmaRegion, Platform};
use crate::poll::poll;
use crate::queue::{Buffers, Completion, QueuePair, Tag, retire_buffers};
use crate::registers::{self, Capabilities, ShutdownState, Status, configuration};
use alloc::vec::Vec;

/// TIMEOUT: a normal shutdown writes back caches; the specification leaves its time to RTD3E,
/// which QEMU reports as 0 and completes at once. CAP.TO (time to become ready) or 10 s,
/// whichever is longer, is generous for both.
const SHUTDOWN_FLOOR_US: u64 = 10_000_000;

/// The controller session.
pub(crate) struct Core<P: Platform> {
    pub(crate) platform: P,
    pub(crate) capabilities: Capabilities,
    pub(crate) admin: QueuePair<P::Region>,
    pub(crate) io: Vec<QueuePair<P::Region>>,
    /// Budget for one command to complete.
    pub(crate) command_budget_us: u64,
    /// Set by the first error that leaves the controller untrustworthy.
    pub(crate) stopped: bool,
}

/// Reads and validates CAP, then resets the controller: CC.EN = 0 and CSTS.RDY = 0 within
/// CAP.TO.
pub(crate) fn reset<P: Platform>(platform: &mut P) -> Result<Capabilities, NvmeError> {
    let capabilities = Capabilities::validate(platform.read64(registers::CAP)?)?;
    platform.write32(registers::CC, configuration::DISABLED)?;
    wait_ready(platform, capabilities, false)?;
    Ok(capabilities)
}

/// Waits for CSTS.RDY to become `ready` within CAP.TO; CSTS.CFS ends the wait for ready.
fn wait_ready<P: Platform>(
    platform: &mut P,
    capabilities: Capabilities,
    ready: bool,
) -> Result<(), NvmeError> {
    let what = if ready { Wait::Ready } else { Wait::Disabled };
    poll(platform, what, capabilities.ready_timeout_us(), |p| {
        let status = Status(p.read32(registers::CSTS)?);
        if ready && status.fatal() {
            return Err(NvmeError::ControllerFatal { status: status.0 });
        }
        Ok((status.ready() == ready).then_some(()))
    })
}

impl<P: Platform> Core<P> {
    /// Programs the admin queue (AQA/ASQ/ACQ, completions on MSI-X entry 0), enables the
    /// controller and waits for CSTS.RDY. The controller must be disabled (see [`reset`]).
    pub(crate) fn enable(
        mut platform: P,
        capabilities: Capabilities,
        admin_entries: u16,
        command_budget_us: u64,
    ) -> Result<Self, (NvmeError, P)> {
        let stride = capabilities.doorbell_stride();
        let admin = match QueuePair::allocate(&mut platform, 0, admin_entries, 0, stride) {
            Ok(admin) => admin,
            Err(e) => return Err((e, platform)),
        };
        let mut core = Self {
            platform,
            capabilities,
            admin,
            io: Vec::new(),
            command_budget_us,
            stopped: false,
        };
        let attributes = registers::admin_queue_attributes(admin_entries);
        let (sq, cq) = (core.admin.submission_iova(), core.admin.completion_iova());
        let started = (|| {
            let p = &mut core.platform;
            p.enable_vector(0)?;
            p.write32(registers::AQA, attributes)?;
            p.write64(registers::ASQ, sq)?;
            p.write64(registers::ACQ, cq)?;
            p.write32(registers::CC, configuration::ENABLED)?;
            wait_ready(p, capabilities, true)
        })();
        match started {
            Ok(()) => Ok(core),
            Err(e) => Err((e, core.abandon())),
        }
    }

    /// Marks the controller stopped if `result` is an error that leaves it untrustworthy.
    pub(crate) fn guard<T>(&mut self, result: Result<T, NvmeError>) -> Result<T, NvmeError> {
        if let Err(e) = &result
            && e.stops_controller()
        {
            self.stopped = true;
        }
        result
    }

    /// The platform and queue `id` (0 admin, `i + 1` I/O queue `i`), borrowed together.
    pub(crate) fn queue(
        &mut self,
        id: u16,
    ) -> Result<(&mut P, &mut QueuePair<P::Region>), NvmeError> {
        let queue = match id {
            0 => &mut self.admin,
            n => self
                .io
                .get_mut(usize::from(n) - 1)
                .ok_or(NvmeError::NoSuchRequest)?,
        };
        Ok((&mut self.platform, queue))
    }

    /// Submits `command` on queue `id`.
    pub(crate) fn submit(
        &mut self,
        id: u16,
        command: &Command,
        buffers: Buffers<P::Region>,
    ) -> Result<Tag, NvmeError> {
        if self.stopped {
            retire_buffers(&mut self.platform, buffers);
            return Err(NvmeError::Stopped);
        }
        let submitted = match self.queue(id) {
            Ok((platform, queue)) => queue.submit(platform, command, buffers),
            Err(e) => {
                retire_buffers(&mut self.platform, buffers);
                Err(e)
            }
        };
        self.guard(submitted)
    }

    /// Waits until queue `id` yields at least one new completion: interrupt-driven, the MSI-X
    /// count read before each look at the ring so no completion can slip between look and wait.
    pub(crate) fn wait_for_completions(&mut self, id: u16) -> Result<(), NvmeError> {
        let waited = self.wait_inner(id);
        self.guard(waited)
    }

    fn wait_inner(&mut self, id: u16) -> Result<(), NvmeError> {
        if self.stopped {
            return Err(NvmeError::Stopped);
        }
        let budget_us = self.command_budget_us;
        let timeout = NvmeError::Timeout {
            what: Wait::Completion { queue: id },
            budget_us,
        };
        let (platform, queue) = self.queue(id)?;
        let vector = queue.vector;
        let start = platform.now_us();
        // TIMEOUT: an iteration cap of one wake per microsecond of budget, so an interrupt
        // storm with no completions behind it ends even with a clock that stands still.
        for _ in 0..=budget_us {
            if queue.in_flight() == 0 {
                return Err(NvmeError::NoSuchRequest);
            }
            let seen = platform.deliveries(vector);
            if queue.reap(platform)? > 0 {
                return Ok(());
            }
            let elapsed = platform.now_us().saturating_sub(start);
            if elapsed >= budget_us {
                break;
            }
            if platform
                .wait_for_interrupt(vector, seen, budget_us - elapsed)
                .is_err()
            {
                if platform.deliveries(vector) > seen {
                    continue;
                }
                if queue.reap(platform)? > 0 {
                    return Err(NvmeError::MissedInterrupt { vector });
                }
                return Err(timeout);
            }
        }
        Err(timeout)
    }

    /// Waits for `tag`'s completion and hands it out.
    pub(crate) fn wait(&mut self, tag: Tag) -> Result<Completion, NvmeError> {
        loop {
            let (_, queue) = self.queue(tag.queue())?;
            if let Some(at) = queue.done.iter().position(|c| c.tag == tag) {
                return queue.done.remove(at).ok_or(NvmeError::NoSuchRequest);
            }
            if !queue.holds(tag) {
                return Err(NvmeError::NoSuchRequest);
            }
            self.wait_for_completions(tag.queue())?;
        }
    }

    /// Runs one admin command to completion; returns its dword 0.
    pub(crate) fn admin(&mut self, command: &Command) -> Result<u32, NvmeError> {
        let tag = self.submit(0, command, Buffers::none())?;
        let completion = self.wait(tag)?;
        completion.outcome.map(|_| completion.dword0)
    }

    /// Identify with `cns` for namespace `namespace`: the 4 KiB data structure.
    pub(crate) fn identify(
        &mut self,
        cns: u32,
        namespace: u32,
    ) -> Result<[u8; IDENTIFY_BYTES], NvmeError> {
        let region = self
            .platform
            .allocate(IDENTIFY_BYTES, Direction::FromDevice)?;
        let command = Command::new(admin::IDENTIFY)
            .namespace(namespace)
            .prps(region.iova(), 0)
            .dword(10, cns);
        let mut data = [0u8; IDENTIFY_BYTES];
        let result = self
            .admin(&command)
            .and_then(|_| Ok(self.platform.read(&region, 0, &mut data)?));
        self.platform.retire(region);
        result.map(|()| data)
    }

    /// Ends the session cleanly: deletes the I/O queues (unless the controller was stopped),
    /// sends a normal shutdown notification and waits for CSTS.SHST = complete, then disables
    /// the controller and retires every region. The first error is returned with the platform.
    pub(crate) fn shut_down(mut self) -> (P, Result<(), NvmeError>) {
        let mut result = Ok(());
        if !self.stopped {
            for id in (1..=self.io.len() as u16).rev() {
                let deleted = self
                    .admin(&Command::new(admin::DELETE_SQ).dword(10, u32::from(id)))
                    .and_then(|_| {
                        self.admin(&Command::new(admin::DELETE_CQ).dword(10, u32::from(id)))
                    });
                if let (Err(e), Ok(())) = (deleted, &result) {
                    result = Err(e);
                }
            }
        }
        let budget_us = self.capabilities.ready_timeout_us().max(SHUTDOWN_FLOOR_US);
        let notified = self
            .platform
            .write32(registers::CC, configuration::SHUTDOWN);
        let shut = notified.map_err(NvmeError::from).and_then(|()| {
            poll(&mut self.platform, Wait::ShutdownComplete, budget_us, |p| {
                let status = Status(p.read32(registers::CSTS)?);
                Ok((status.shutdown() == ShutdownState::Complete).then_some(()))
            })
        });
        if let (Err(e), Ok(())) = (shut, &result) {
            result = Err(e);
        }
        let disabled = reset(&mut self.platform).map(|_| ());
        if let (Err(e), Ok(())) = (disabled, &result) {
            result = Err(e);
        }
        (self.retire_all(), result)
    }

    /// Gives up on the controller: disables it (best effort) and retires every region.
    pub(crate) fn abandon(mut self) -> P {
        let _ = reset(&mut self.platform);
        self.retire_all()
    }

    fn retire_all(self) -> P {
        let Self {
            mut platform,
            admin,
            io,
            ..
        } = self;
        for queue in io {
            queue.retire(&mut platform);
        }
        admin.retire(&mut platform);
        platform
    }
}

//! One submission/completion queue pair: the rings in DMA memory, the doorbells, the commands
//! in flight by command ID, and the completion phase tag (NVMe 1.4, 4.1 and 4.6).
//!
//! A command ID names a slot and a generation, so a completion for a command that already
//! completed (a stale ID) does not match the slot's current command and is refused like an ID
//! that was never issued.

use crate::command::{COMMAND_BYTES, COMPLETION_BYTES, Command, CompletionEntry};
use crate::error::NvmeError;
use crate::platform::{Direction, DmaRegion, Platform};
use crate::registers::{Doorbells, PAGE_SIZE};
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

/// Names a submitted command: its queue and command ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    queue: u16,
    command_id: u16,
}

impl Tag {
    /// The queue ID (0 is the admin queue, I/O queue index `i` has ID `i + 1`).
    pub const fn queue(self) -> u16 {
        self.queue
    }

    /// The command ID.
    pub const fn command_id(self) -> u16 {
        self.command_id
    }
}

/// A finished command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Which command.
    pub tag: Tag,
    /// Completion dword 0 (command specific).
    pub dword0: u32,
    /// The data read (empty for other commands), or why the command failed.
    pub outcome: Result<Vec<u8>, NvmeError>,
}

/// The DMA regions a command uses, retired when it completes.
#[derive(Debug)]
pub(crate) struct Buffers<R> {
    /// The data, if any.
    pub(crate) data: Option<R>,
    /// The PRP list, if any.
    pub(crate) list: Option<R>,
    /// Bytes to copy out of `data` on success (reads), 0 otherwise.
    pub(crate) read_back: usize,
}

impl<R> Buffers<R> {
    /// No DMA regions (admin commands whose buffers the caller holds).
    pub(crate) const fn none() -> Self {
        Self {
            data: None,
            list: None,
            read_back: 0,
        }
    }
}

#[derive(Debug)]
struct InFlight<R> {
    command_id: u16,
    opcode: u8,
    buffers: Buffers<R>,
}

/// A queue pair and its state.
#[derive(Debug)]
pub(crate) struct QueuePair<R> {
    /// Queue ID.
    pub(crate) id: u16,
    /// The MSI-X table index its completions interrupt on.
    pub(crate) vector: u16,
    entries: u16,
    submission: R,
    completion: R,
    doorbells: Doorbells,
    /// Next submission slot to fill.
    tail: u16,
    /// Submission head as the controller last reported it.
    head: u16,
    /// Next completion slot to look at.
    completion_head: u16,
    /// The phase tag a new completion carries.
    phase: bool,
    slots: Vec<Option<InFlight<R>>>,
    next_slot: usize,
    generation: u32,
    /// Completions reaped and not yet handed out.
    pub(crate) done: VecDeque<Completion>,
}

impl<R: DmaRegion> QueuePair<R> {
    /// Allocates the rings of queue `id` (`entries` >= 2 each), completions on `vector`.
    pub(crate) fn allocate<P: Platform<Region = R>>(
        platform: &mut P,
        id: u16,
        entries: u16,
        vector: u16,
        stride: u64,
    ) -> Result<Self, NvmeError> {
        debug_assert!(entries >= 2);
        let submission =
            platform.allocate(usize::from(entries) * COMMAND_BYTES, Direction::ToDevice)?;
        let cq_bytes = usize::from(entries) * COMPLETION_BYTES;
        let completion = match platform.allocate(cq_bytes, Direction::FromDevice) {
            Ok(region) => region,
            Err(e) => {
                platform.retire(submission);
                return Err(e.into());
            }
        };
        let pair = Self {
            id,
            vector,
            entries,
            submission,
            completion,
            doorbells: Doorbells::of(id, stride),
            tail: 0,
            head: 0,
            completion_head: 0,
            phase: true,
            slots: (1..entries).map(|_| None).collect(),
            next_slot: 0,
            generation: 0,
            done: VecDeque::new(),
        };
        // The rings must start on a page (PC = 1 queues, ASQ/ACQ), and the completion ring must
        // hold no entry with the phase tag set, whatever the platform's memory held before.
        let misaligned = [pair.submission.iova(), pair.completion.iova()]
            .into_iter()
            .find(|iova| iova % PAGE_SIZE as u64 != 0);
        let zeroed = platform.write(&pair.completion, 0, &vec![0; cq_bytes]);
        if misaligned.is_some() || zeroed.is_err() {
            pair.retire(platform);
            return Err(match (misaligned, zeroed) {
                (Some(iova), _) => NvmeError::MisalignedRegion { iova },
                (None, Err(e)) => e.into(),
                (None, Ok(())) => unreachable!("checked above"),
            });
        }
        Ok(pair)
    }

    /// IOVA of the submission ring.
    pub(crate) fn submission_iova(&self) -> u64 {
        self.submission.iova()
    }

    /// IOVA of the completion ring.
    pub(crate) fn completion_iova(&self) -> u64 {
        self.completion.iova()
    }

    /// Commands submitted and not yet reaped.
    pub(crate) fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether `tag`'s command is still in flight on this queue.
    pub(crate) fn holds(&self, tag: Tag) -> bool {
        tag.queue == self.id && self.slot_of(tag.command_id).is_some()
    }

    fn slot_of(&self, command_id: u16) -> Option<usize> {
        let slot = usize::from(command_id) % self.slots.len();
        match &self.slots[slot] {
            Some(request) if request.command_id == command_id => Some(slot),
            _ => None,
        }
    }

    /// Writes `command` into the next slot and rings the tail doorbell. `buffers` are retired
    /// when it completes, or here if it cannot be submitted.
    pub(crate) fn submit<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
        command: &Command,
        buffers: Buffers<R>,
    ) -> Result<Tag, NvmeError> {
        let free = (0..self.slots.len())
            .map(|i| (self.next_slot + i) % self.slots.len())
            .find(|&i| self.slots[i].is_none());
        let next_tail = (self.tail + 1) % self.entries;
        let Some(slot) = free.filter(|_| next_tail != self.head) else {
            retire_buffers(platform, buffers);
            return Err(NvmeError::QueueFull { queue: self.id });
        };
        // Command ID = slot + slots * generation, the generation wrapping before 2^16.
        let slots = self.slots.len() as u32;
        let generations = 0x1_0000 / slots;
        let command_id = (slot as u32 + slots * (self.generation % generations)) as u16;
        self.generation = self.generation.wrapping_add(1);
        self.next_slot = (slot + 1) % self.slots.len();
        let offset = usize::from(self.tail) * COMMAND_BYTES;
        if let Err(e) = platform.write(&self.submission, offset, &command.encode(command_id)) {
            retire_buffers(platform, buffers);
            return Err(e.into());
        }
        self.slots[slot] = Some(InFlight {
            command_id,
            opcode: command.opcode(),
            buffers,
        });
        self.tail = next_tail;
        platform.write32(self.doorbells.submission_tail, u32::from(self.tail))?;
        Ok(Tag {
            queue: self.id,
            command_id,
        })
    }

    /// Whether `head` is a submission head the controller can report now: between the last
    /// reported head and the tail.
    fn head_fits(&self, head: u16) -> bool {
        let entries = u32::from(self.entries);
        let distance = |to: u16| (u32::from(to) + entries - u32::from(self.head)) % entries;
        head < self.entries && distance(head) <= distance(self.tail)
    }

    /// Consumes every completion the controller has posted (by phase tag), finishes their
    /// commands into [`QueuePair::done`], and rings the head doorbell once. Returns how many.
    pub(crate) fn reap<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
    ) -> Result<usize, NvmeError> {
        let mut reaped = 0;
        // At most entries - 1 completions can be posted at once; the bound keeps a broken
        // controller from holding the loop.
        while reaped < usize::from(self.entries) {
            let mut raw = [0u8; COMPLETION_BYTES];
            let offset = usize::from(self.completion_head) * COMPLETION_BYTES;
            platform.read(&self.completion, offset, &mut raw)?;
            let entry = CompletionEntry::decode(&raw);
            if entry.phase != self.phase {
                break;
            }
            if entry.submission_queue != self.id || !self.head_fits(entry.submission_head) {
                return Err(NvmeError::BadCompletion {
                    queue: self.id,
                    submission_queue: entry.submission_queue,
                    submission_head: entry.submission_head,
                });
            }
            let Some(slot) = self.slot_of(entry.command_id) else {
                return Err(NvmeError::UnexpectedCompletion {
                    queue: self.id,
                    command_id: entry.command_id,
                });
            };
            let Some(request) = self.slots[slot].take() else {
                unreachable!("slot_of found the slot occupied");
            };
            self.head = entry.submission_head;
            self.completion_head += 1;
            if self.completion_head == self.entries {
                self.completion_head = 0;
                self.phase = !self.phase;
            }
            reaped += 1;
            let outcome = finish(platform, self.id, &request, &entry);
            retire_buffers(platform, request.buffers);
            self.done.push_back(Completion {
                tag: Tag {
                    queue: self.id,
                    command_id: request.command_id,
                },
                dword0: entry.result,
                outcome,
            });
        }
        if reaped > 0 {
            platform.write32(
                self.doorbells.completion_head,
                u32::from(self.completion_head),
            )?;
        }
        Ok(reaped)
    }

    /// Retires the rings and every in-flight command's buffers. Only after the controller has
    /// been disabled, or when it is being abandoned (the IOMMU then blocks what it still tries).
    pub(crate) fn retire<P: Platform<Region = R>>(self, platform: &mut P) {
        for request in self.slots.into_iter().flatten() {
            retire_buffers(platform, request.buffers);
        }
        platform.retire(self.submission);
        platform.retire(self.completion);
    }
}

/// The outcome of a completed command: its status, and for a read the data, copied out.
fn finish<P: Platform>(
    platform: &mut P,
    queue: u16,
    request: &InFlight<P::Region>,
    entry: &CompletionEntry,
) -> Result<Vec<u8>, NvmeError> {
    if !entry.status.is_success() {
        return Err(NvmeError::CommandFailed {
            queue,
            opcode: request.opcode,
            status: entry.status,
        });
    }
    let mut data = vec![0; request.buffers.read_back];
    if let Some(region) = request.buffers.data.as_ref().filter(|_| !data.is_empty()) {
        platform.read(region, 0, &mut data)?;
    }
    Ok(data)
}

/// Retires a command's DMA regions.
pub(crate) fn retire_buffers<P: Platform>(platform: &mut P, buffers: Buffers<P::Region>) {
    if let Some(data) = buffers.data {
        platform.retire(data);
    }
    if let Some(list) = buffers.list {
        platform.retire(list);
    }
}

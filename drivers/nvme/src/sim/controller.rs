//! The simulated controller's behaviour: registers, doorbells, fetching commands, executing
//! admin and NVM commands (with its own PRP walk, independent of the driver's), and posting
//! completions with the phase tag, holding them while the completion queue is full.

use super::State;
use crate::identify::fixtures;

pub(super) const PAGE: u64 = 4096;

/// Status codes (type << 8 | code) the simulation answers.
pub(super) mod status {
    pub(in crate::sim) const SUCCESS: u16 = 0;
    pub(in crate::sim) const INVALID_OPCODE: u16 = 0x01;
    pub(in crate::sim) const INVALID_FIELD: u16 = 0x02;
    pub(in crate::sim) const TRANSFER_ERROR: u16 = 0x04;
    pub(in crate::sim) const INVALID_NAMESPACE: u16 = 0x0b;
    pub(in crate::sim) const PRP_OFFSET_INVALID: u16 = 0x13;
    pub(in crate::sim) const LBA_OUT_OF_RANGE: u16 = 0x80;
    pub(in crate::sim) const INVALID_CQ: u16 = 0x100;
    pub(in crate::sim) const INVALID_QUEUE_ID: u16 = 0x101;
    pub(in crate::sim) const INVALID_QUEUE_SIZE: u16 = 0x102;
    pub(in crate::sim) const INVALID_VECTOR: u16 = 0x108;
    pub(in crate::sim) const INVALID_DELETION: u16 = 0x10c;
}

/// A submission queue.
#[derive(Debug)]
pub(crate) struct Sq {
    base: u64,
    entries: u16,
    cq: u16,
    head: u16,
    tail: u16,
}

/// A completion queue.
#[derive(Debug)]
pub(crate) struct Cq {
    base: u64,
    entries: u16,
    vector: Option<u16>,
    head: u16,
    tail: u16,
    phase: bool,
}

fn dword(command: &[u8], index: usize) -> u32 {
    u32::from_le_bytes(command[index * 4..index * 4 + 4].try_into().unwrap())
}

fn qword(command: &[u8], index: usize) -> u64 {
    u64::from(dword(command, index)) | (u64::from(dword(command, index + 1)) << 32)
}

impl State {
    fn stride(&self) -> u64 {
        4 << ((self.config.cap >> 32) & 0xf)
    }

    pub(crate) fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            0x00 => self.config.cap as u32,
            0x04 => (self.config.cap >> 32) as u32,
            0x08 => 0x0001_0400,
            0x14 => self.cc,
            0x1c => self.csts,
            0x24 => self.aqa,
            0x28 => self.asq as u32,
            0x2c => (self.asq >> 32) as u32,
            0x30 => self.acq as u32,
            0x34 => (self.acq >> 32) as u32,
            _ => {
                self.bad_accesses.push(offset);
                0
            }
        }
    }

    pub(crate) fn write_register(&mut self, offset: u64, value: u32) {
        self.register_writes.push((offset, value));
        let set_low = |r: &mut u64| *r = (*r & !0xffff_ffff) | u64::from(value);
        let set_high = |r: &mut u64| *r = (*r & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            0x14 => self.write_configuration(value),
            0x24 => self.aqa = value,
            0x28 => set_low(&mut self.asq),
            0x2c => set_high(&mut self.asq),
            0x30 => set_low(&mut self.acq),
            0x34 => set_high(&mut self.acq),
            0x1000.. if (offset - 0x1000).is_multiple_of(self.stride()) => {
                self.doorbell(offset, value)
            }
            _ => self.bad_accesses.push(offset),
        }
    }

    fn write_configuration(&mut self, value: u32) {
        let (was, now) = (self.cc & 1 != 0, value & 1 != 0);
        let shutdown_before = (self.cc >> 14) & 3;
        self.cc = value;
        if !was && now {
            let sizes_ok = (value >> 16) & 0xf == 6 && (value >> 20) & 0xf == 4;
            let queues_ok = self.asq.is_multiple_of(PAGE)
                && self.acq.is_multiple_of(PAGE)
                && self.asq != 0
                && self.acq != 0;
            if self.config.fatal_on_enable || !sizes_ok || !queues_ok {
                self.csts |= 2;
            } else if !self.config.never_ready {
                let sq_entries = (self.aqa & 0xfff) as u16 + 1;
                let cq_entries = ((self.aqa >> 16) & 0xfff) as u16 + 1;
                self.sqs.insert(
                    0,
                    Sq {
                        base: self.asq,
                        entries: sq_entries,
                        cq: 0,
                        head: 0,
                        tail: 0,
                    },
                );
                let cq = Cq {
                    base: self.acq,
                    entries: cq_entries,
                    vector: Some(0),
                    head: 0,
                    tail: 0,
                    phase: true,
                };
                self.cqs.insert(0, cq);
                self.csts |= 1;
            }
        } else if was && !now && !self.config.stuck_ready {
            self.sqs.clear();
            self.cqs.clear();
            self.held.clear();
            self.csts = 0;
        }
        if now && shutdown_before == 0 && (value >> 14) & 3 == 1 {
            let state = if self.config.never_shutdown { 1 } else { 2 };
            self.csts = (self.csts & !0xc) | (state << 2);
        }
    }

    fn doorbell(&mut self, offset: u64, value: u32) {
        let index = (offset - 0x1000) / self.stride();
        let queue = (index / 2) as u16;
        let value = value as u16;
        if index.is_multiple_of(2) {
            match self.sqs.get_mut(&queue) {
                Some(sq) if value < sq.entries => sq.tail = value,
                _ => self.bad_accesses.push(offset),
            }
        } else {
            match self.cqs.get_mut(&queue) {
                Some(cq) if value < cq.entries => cq.head = value,
                _ => self.bad_accesses.push(offset),
            }
            self.post_held();
        }
        if !self.config.deferred {
            self.run();
        }
    }

    /// Fetches every submitted command, executes them (in reverse if configured) and posts
    /// their completions.
    pub(crate) fn run(&mut self) {
        let ids: Vec<u16> = self.sqs.keys().copied().collect();
        for id in ids {
            let mut batch = Vec::new();
            while let Some(sq) = self.sqs.get_mut(&id).filter(|sq| sq.head != sq.tail) {
                let at = sq.base + u64::from(sq.head) * 64;
                sq.head = (sq.head + 1) % sq.entries;
                match self.memory.device_read(at, 64) {
                    Some(command) => batch.push(command),
                    None => self.csts |= 2,
                }
            }
            if id != 0 {
                self.largest_batch = self.largest_batch.max(batch.len());
            }
            if self.config.reverse {
                batch.reverse();
            }
            for command in batch {
                let answer = if id == 0 {
                    Some(self.admin(&command))
                } else {
                    self.io(id, &command)
                };
                if let Some((result, status)) = answer {
                    self.complete(id, &command, result, status);
                }
            }
        }
    }

    fn complete(&mut self, sq_id: u16, command: &[u8], result: u32, status: u16) {
        let Some(sq) = self.sqs.get(&sq_id) else {
            return;
        };
        let (cq, mut head) = (sq.cq, sq.head);
        let mut id = (dword(command, 0) >> 16) as u16;
        let mut copies = 1;
        if sq_id != 0 {
            id = self.faults.corrupt_next_id.take().unwrap_or(id);
            if std::mem::take(&mut self.faults.bad_head_next) {
                head = sq.entries + 5;
            }
            if std::mem::take(&mut self.faults.repeat_next) {
                copies = 2;
            }
        }
        let mut entry = [0u8; 16];
        entry[0..4].copy_from_slice(&result.to_le_bytes());
        entry[8..12].copy_from_slice(&(u32::from(head) | (u32::from(sq_id) << 16)).to_le_bytes());
        entry[12..16].copy_from_slice(&(u32::from(id) | (u32::from(status) << 17)).to_le_bytes());
        for _ in 0..copies {
            self.held.push_back((cq, entry));
        }
        self.post_held();
    }

    /// Writes held completions into their queues while there is room, then interrupts.
    fn post_held(&mut self) {
        let mut interrupt = Vec::new();
        let mut waiting = std::collections::VecDeque::new();
        while let Some((id, mut entry)) = self.held.pop_front() {
            let Some(cq) = self.cqs.get_mut(&id) else {
                continue;
            };
            if (cq.tail + 1) % cq.entries == cq.head {
                waiting.push_back((id, entry));
                continue;
            }
            entry[14] |= u8::from(cq.phase);
            let at = cq.base + u64::from(cq.tail) * 16;
            cq.tail = (cq.tail + 1) % cq.entries;
            if cq.tail == 0 {
                cq.phase = !cq.phase;
            }
            interrupt.extend(cq.vector);
            if !self.memory.device_write(at, &entry) {
                self.csts |= 2;
            }
        }
        self.held = waiting;
        interrupt.dedup();
        for vector in interrupt {
            let vector = usize::from(vector);
            if self.enabled[vector] && !self.faults.drop_interrupts {
                self.deliveries[vector] += 1;
            }
        }
    }

    fn admin(&mut self, command: &[u8]) -> (u32, u16) {
        let opcode = command[0];
        self.admin_log.push(opcode);
        let (cdw10, cdw11) = (dword(command, 10), dword(command, 11));
        let (qid, entries) = (cdw10 as u16, (cdw10 >> 16) as u16 + 1);
        let max_entries = (self.config.cap & 0xffff) as u16 + 1;
        let pairs = self.config.max_queue_pairs;
        match opcode {
            0x06 => {
                let data = match (cdw10 & 0xff, self.config.namespace) {
                    (1, _) => fixtures::controller(self.config.mdts, 256),
                    (0, Some((blocks, shift))) if dword(command, 1) == 1 => {
                        fixtures::namespace(blocks, shift)
                    }
                    (2, Some(_)) => {
                        let mut list = [0u8; 4096];
                        list[0] = 1;
                        list
                    }
                    (0 | 2, _) => [0u8; 4096],
                    _ => return (0, status::INVALID_FIELD),
                };
                (
                    0,
                    self.write_host(qword(command, 6), qword(command, 8), &data),
                )
            }
            0x09 if cdw10 & 0xff == 7 => (u32::from(pairs - 1) * 0x1_0001, status::SUCCESS),
            0x05 | 0x01 if qid == 0 || qid > pairs => (0, status::INVALID_QUEUE_ID),
            0x05 | 0x01 if entries < 2 || entries > max_entries => (0, status::INVALID_QUEUE_SIZE),
            0x05 | 0x01 if cdw11 & 1 == 0 || !qword(command, 6).is_multiple_of(PAGE) => {
                (0, status::INVALID_FIELD)
            }
            0x05 if self.cqs.contains_key(&qid) => (0, status::INVALID_QUEUE_ID),
            0x05 if (cdw11 >> 16) as u16 >= self.config.vectors => (0, status::INVALID_VECTOR),
            0x05 => {
                let vector = (cdw11 & 2 != 0).then_some((cdw11 >> 16) as u16);
                let base = qword(command, 6);
                self.cqs.insert(
                    qid,
                    Cq {
                        base,
                        entries,
                        vector,
                        head: 0,
                        tail: 0,
                        phase: true,
                    },
                );
                (0, status::SUCCESS)
            }
            0x01 if self.sqs.contains_key(&qid) => (0, status::INVALID_QUEUE_ID),
            0x01 if !self.cqs.contains_key(&((cdw11 >> 16) as u16)) => (0, status::INVALID_CQ),
            0x01 => {
                let sq = Sq {
                    base: qword(command, 6),
                    entries,
                    cq: (cdw11 >> 16) as u16,
                    head: 0,
                    tail: 0,
                };
                self.sqs.insert(qid, sq);
                (0, status::SUCCESS)
            }
            0x00 if qid != 0 && self.sqs.remove(&qid).is_some() => (0, status::SUCCESS),
            0x04 if self.sqs.values().any(|sq| sq.cq == qid) => (0, status::INVALID_DELETION),
            0x04 if qid != 0 && self.cqs.remove(&qid).is_some() => (0, status::SUCCESS),
            0x00 | 0x04 => (0, status::INVALID_QUEUE_ID),
            _ => (0, status::INVALID_OPCODE),
        }
    }

    fn io(&mut self, queue: u16, command: &[u8]) -> Option<(u32, u16)> {
        if self.faults.swallow_io {
            return None;
        }
        let opcode = command[0];
        self.io_log.push((queue, opcode));
        if let Some((code_type, code)) = self.faults.fail_next_io.take() {
            return Some((0, (u16::from(code_type) << 8) | u16::from(code)));
        }
        let Some((blocks, shift)) = self.config.namespace.filter(|_| dword(command, 1) == 1) else {
            return Some((0, status::INVALID_NAMESPACE));
        };
        let first = qword(command, 10);
        let count = u64::from(dword(command, 12) & 0xffff) + 1;
        let status = match opcode {
            0x00 => {
                self.flushes += 1;
                status::SUCCESS
            }
            0x01 | 0x02 if first + count > blocks => status::LBA_OUT_OF_RANGE,
            0x01 | 0x02 => {
                let range = (first << shift) as usize..((first + count) << shift) as usize;
                let (prp1, prp2) = (qword(command, 6), qword(command, 8));
                if opcode == 0x02 {
                    let data = self.disk[range].to_vec();
                    self.write_host(prp1, prp2, &data)
                } else {
                    match self.read_host(prp1, prp2, range.len()) {
                        Ok(data) => {
                            self.disk[range].copy_from_slice(&data);
                            status::SUCCESS
                        }
                        Err(status) => status,
                    }
                }
            }
            _ => status::INVALID_OPCODE,
        };
        Some((0, status))
    }
}

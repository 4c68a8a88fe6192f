//! Host tests: the driver against moat-virtio's fake function (registers) and a fake queue
//! whose "device" serves requests from a disk in memory when the driver waits for an interrupt.

use crate::*;
use moat_virtio::fake::FakeVirtio;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// How the fake device completes requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    InOrder,
    Reversed,
    Never,
    IoErrorAt(u64),
    WrongToken(u16),
    WritesNothing,
}

#[derive(Debug)]
struct Device {
    disk: Vec<u8>,
    mode: Mode,
    submitted: VecDeque<(u16, Vec<Vec<u8>>, Vec<usize>)>,
    used: VecDeque<(u16, Used)>,
    deliveries: u64,
}

impl Device {
    /// Serves every submitted request (the device's side of the ring), then "interrupts".
    fn run(&mut self) {
        let mut batch: Vec<_> = self.submitted.drain(..).collect();
        if self.mode == Mode::Reversed {
            batch.reverse();
        }
        if batch.is_empty() || self.mode == Mode::Never {
            self.submitted.extend(batch);
            return;
        }
        for (token, inputs, output_lens) in batch {
            let header = &inputs[0];
            let kind = u32::from_le_bytes(header[0..4].try_into().unwrap());
            let sector = u64::from_le_bytes(header[8..16].try_into().unwrap());
            let at = sector as usize * SECTOR_SIZE;
            let mut outputs: Vec<Vec<u8>> = output_lens.iter().map(|&l| vec![0; l]).collect();
            let mut status = 0;
            if self.mode == Mode::IoErrorAt(sector) {
                status = 1;
            } else if kind == 0 {
                let len = outputs[0].len();
                outputs[0].copy_from_slice(&self.disk[at..at + len]);
            } else if kind == 1 {
                self.disk[at..at + inputs[1].len()].copy_from_slice(&inputs[1]);
            }
            *outputs.last_mut().unwrap().last_mut().unwrap() = status;
            let mut written = output_lens.iter().sum::<usize>() as u32;
            if self.mode == Mode::WritesNothing {
                written = 0;
            }
            let token = match self.mode {
                Mode::WrongToken(bogus) => bogus,
                _ => token,
            };
            self.used.push_back((
                token,
                Used {
                    inputs,
                    outputs,
                    written,
                },
            ));
        }
        self.deliveries += 1;
    }
}

/// The fake's registers plus the device's interrupt counter.
#[derive(Debug)]
struct Access<'a> {
    registers: &'a FakeVirtio,
    device: Rc<RefCell<Device>>,
}

impl VirtioPciAccess for Access<'_> {
    fn config_read32(&self, offset: u16) -> u32 {
        (&self.registers).config_read32(offset)
    }
    fn bar_len(&self, bar: u8) -> Option<u64> {
        (&self.registers).bar_len(bar)
    }
    fn read8(&self, bar: u8, offset: u64) -> u8 {
        (&self.registers).read8(bar, offset)
    }
    fn write8(&self, bar: u8, offset: u64, value: u8) {
        (&self.registers).write8(bar, offset, value)
    }
    fn read16(&self, bar: u8, offset: u64) -> u16 {
        (&self.registers).read16(bar, offset)
    }
    fn write16(&self, bar: u8, offset: u64, value: u16) {
        (&self.registers).write16(bar, offset, value)
    }
    fn read32(&self, bar: u8, offset: u64) -> u32 {
        (&self.registers).read32(bar, offset)
    }
    fn write32(&self, bar: u8, offset: u64, value: u32) {
        (&self.registers).write32(bar, offset, value)
    }
    fn now_us(&self) -> u64 {
        (&self.registers).now_us()
    }
}

impl Interrupts for Access<'_> {
    fn deliveries(&self, vector: u16) -> u64 {
        assert_eq!(vector, QUEUE_VECTOR);
        self.device.borrow().deliveries
    }
    fn wait(&self, _vector: u16, seen: u64, _budget_us: u64) -> Result<u64, WaitTimeout> {
        let mut device = self.device.borrow_mut();
        device.run();
        if device.deliveries > seen {
            Ok(device.deliveries)
        } else {
            // A real wait halts for the whole budget: make the clock show it.
            for _ in 0..100_000 {
                (&self.registers).now_us();
            }
            Err(WaitTimeout)
        }
    }
}

/// A queue of 16 descriptors (5 requests of 3) whose device side is `Device`.
#[derive(Debug)]
struct Queue {
    device: Rc<RefCell<Device>>,
    busy: Vec<u16>,
}

impl Virtqueue for Queue {
    const SIZE: u16 = 16;
    fn submit<T: Transport>(
        &mut self,
        transport: &mut T,
        inputs: Vec<Vec<u8>>,
        output_lens: &[usize],
    ) -> Result<u16, QueueFault> {
        let token = (0..5u16)
            .map(|i| i * 3)
            .find(|t| !self.busy.contains(t))
            .ok_or(QueueFault::Full)?;
        self.busy.push(token);
        let outputs = output_lens.to_vec();
        self.device
            .borrow_mut()
            .submitted
            .push_back((token, inputs, outputs));
        transport.notify(0);
        Ok(token)
    }
    fn peek_used(&self) -> Option<u16> {
        self.device.borrow().used.front().map(|(token, _)| *token)
    }
    fn complete(&mut self, token: u16) -> Result<Used, QueueFault> {
        let mut device = self.device.borrow_mut();
        match device.used.front() {
            Some((t, _)) if *t == token && self.busy.contains(&token) => {}
            _ => return Err(QueueFault::UnknownToken(token)),
        }
        self.busy.retain(|t| *t != token);
        Ok(device.used.pop_front().unwrap().1)
    }
}

type Blk<'a> = VirtioBlk<Access<'a>, Queue>;

fn device(mode: Mode) -> Rc<RefCell<Device>> {
    Rc::new(RefCell::new(Device {
        disk: vec![0; 2048 * SECTOR_SIZE],
        mode,
        submitted: VecDeque::new(),
        used: VecDeque::new(),
        deliveries: 0,
    }))
}

fn open(registers: &FakeVirtio, device: Rc<RefCell<Device>>) -> Result<Blk<'_>, BlkError> {
    let queue_device = device.clone();
    let transport = VirtioPciTransport::new(Access { registers, device }).unwrap();
    VirtioBlk::new(transport, move |_| {
        Ok(Queue {
            device: queue_device,
            busy: Vec::new(),
        })
    })
}

fn pattern(sector: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (sector as usize * 7 + i * 13 + (i >> 9)) as u8)
        .collect()
}

#[test]
fn bring_up_accepts_access_platform_and_gives_the_queue_its_vector() {
    let registers = FakeVirtio::blk();
    let blk = open(&registers, device(Mode::InOrder)).unwrap();
    assert_eq!(blk.capacity(), 2048);
    assert_ne!(registers.driver_features.get() & (1 << 33), 0);
    assert_eq!(registers.status.get(), 0x0f);
    assert_eq!(registers.queues.borrow()[0].vector, QUEUE_VECTOR);
    assert_eq!(registers.config_vector.get(), 0xffff);
    drop(blk);
    assert_eq!(
        registers.status.get(),
        0,
        "dropping the driver resets the device"
    );
}

#[test]
fn a_queue_size_of_zero_fails_bring_up_clearly_and_marks_the_device_failed() {
    let registers = FakeVirtio::blk().with_queue_size(0);
    let error = VirtioBlk::<Access, Queue>::new(
        VirtioPciTransport::new(Access {
            registers: &registers,
            device: device(Mode::InOrder),
        })
        .unwrap(),
        |_| panic!("no queue is made for a device with a queue size of 0"),
    )
    .unwrap_err();
    assert_eq!(
        error,
        BlkError::Transport(TransportError::QueueSizeZero { queue: 0 })
    );
    assert_eq!(registers.status.get(), 0x80);
}

#[test]
fn a_refused_features_ok_fails_bring_up() {
    let mut registers = FakeVirtio::blk();
    registers.refuse_features_ok = true;
    assert!(matches!(
        open(&registers, device(Mode::InOrder)),
        Err(BlkError::Transport(TransportError::FeaturesRefused { .. }))
    ));
}

#[test]
fn several_writes_and_reads_in_flight_move_the_data() {
    let registers = FakeVirtio::blk();
    let device = device(Mode::InOrder);
    let mut blk = open(&registers, device.clone()).unwrap();
    let sectors: Vec<u64> = (0..5).map(|i| 100 + i * 4).collect();
    let tags: Vec<Tag> = sectors
        .iter()
        .map(|&s| blk.submit_write(s, pattern(s, 4 * SECTOR_SIZE)).unwrap())
        .collect();
    assert_eq!(blk.in_flight(), 5);
    assert_eq!(
        blk.submit_read(0, 1),
        Err(BlkError::Queue(QueueFault::Full))
    );
    for _ in &tags {
        assert_eq!(blk.wait_any().unwrap().result, Ok(()));
    }
    blk.flush().unwrap();
    let reads: Vec<(Tag, u64)> = sectors
        .iter()
        .map(|&s| (blk.submit_read(s, 4).unwrap(), s))
        .collect();
    for (tag, sector) in reads {
        let completion = blk.wait_for(tag).unwrap();
        assert_eq!(completion.result, Ok(()));
        assert_eq!(completion.data, pattern(sector, 4 * SECTOR_SIZE));
    }
    let at = 100 * SECTOR_SIZE;
    assert_eq!(
        device.borrow().disk[at..at + 4 * SECTOR_SIZE],
        pattern(100, 4 * SECTOR_SIZE)[..]
    );
    let mut buffer = vec![0; 2 * SECTOR_SIZE];
    blk.read(104, &mut buffer).unwrap();
    assert_eq!(buffer, pattern(104, 4 * SECTOR_SIZE)[..2 * SECTOR_SIZE]);
}

#[test]
fn completions_out_of_order_are_kept_for_their_waiters() {
    let registers = FakeVirtio::blk();
    let mut blk = open(&registers, device(Mode::Reversed)).unwrap();
    let first = blk.submit_write(0, pattern(0, 512)).unwrap();
    let second = blk.submit_write(1, pattern(1, 512)).unwrap();
    let third = blk.submit_flush().unwrap();
    assert_eq!(blk.wait_for(first).unwrap().tag, first);
    let mut rest = vec![blk.wait_any().unwrap().tag, blk.wait_any().unwrap().tag];
    rest.sort();
    let mut expected = vec![second, third];
    expected.sort();
    assert_eq!(rest, expected);
    assert_eq!(blk.wait_any().unwrap_err(), BlkError::NothingInFlight);
}

#[test]
fn a_device_error_is_reported_for_its_request() {
    let registers = FakeVirtio::blk();
    let mut blk = open(&registers, device(Mode::IoErrorAt(7))).unwrap();
    let mut buffer = vec![0; 512];
    assert_eq!(
        blk.read(7, &mut buffer),
        Err(BlkError::DeviceIo {
            kind: RequestKind::Read,
            sector: 7
        })
    );
    blk.read(8, &mut buffer).unwrap();
}

#[test]
fn a_device_that_never_completes_times_out() {
    let registers = FakeVirtio::blk();
    let mut blk = open(&registers, device(Mode::Never)).unwrap();
    blk.submit_read(0, 1).unwrap();
    assert_eq!(
        blk.wait_any().unwrap_err(),
        BlkError::Timeout {
            budget_us: REQUEST_BUDGET_US,
            in_flight: 1
        }
    );
}

#[test]
fn a_completion_the_driver_did_not_submit_is_an_error() {
    let registers = FakeVirtio::blk();
    let mut blk = open(&registers, device(Mode::WrongToken(9))).unwrap();
    blk.submit_read(0, 1).unwrap();
    assert_eq!(
        blk.wait_any().unwrap_err(),
        BlkError::Queue(QueueFault::UnknownToken(9))
    );
}

#[test]
fn a_completion_that_wrote_nothing_is_not_taken_as_success() {
    let registers = FakeVirtio::blk();
    let mut blk = open(&registers, device(Mode::WritesNothing)).unwrap();
    assert_eq!(
        blk.write(0, &[0; 512]),
        Err(BlkError::ShortCompletion { written: 0 })
    );
}

#[test]
fn requests_outside_the_device_or_of_bad_length_are_refused_before_submission() {
    let registers = FakeVirtio::blk();
    let device = device(Mode::InOrder);
    let mut blk = open(&registers, device.clone()).unwrap();
    assert_eq!(
        blk.submit_read(2047, 2),
        Err(BlkError::OutOfRange {
            sector: 2047,
            sectors: 2,
            capacity: 2048
        })
    );
    assert!(matches!(
        blk.submit_read(u64::MAX, 1),
        Err(BlkError::OutOfRange { .. })
    ));
    assert_eq!(
        blk.submit_write(0, vec![0; 100]),
        Err(BlkError::BadLength(100))
    );
    assert_eq!(blk.submit_read(0, 0), Err(BlkError::BadLength(0)));
    assert!(matches!(
        blk.submit_write(0, vec![0; 257 * SECTOR_SIZE]),
        Err(BlkError::TooLarge { .. })
    ));
    assert!(device.borrow().submitted.is_empty());
}

#[test]
fn a_read_only_device_refuses_writes() {
    let mut registers = FakeVirtio::blk();
    registers.device_features |= features::RO;
    let mut blk = open(&registers, device(Mode::InOrder)).unwrap();
    assert!(blk.read_only());
    assert_eq!(blk.submit_write(0, vec![0; 512]), Err(BlkError::ReadOnly));
}

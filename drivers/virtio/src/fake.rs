//! A virtio-blk PCI function held in memory, for host tests (this crate's, and drivers' with
//! the `fake` feature): config space with the virtio
//! capabilities, a common configuration that behaves as QEMU 7.2's does where the transport
//! depends on it (FEATURES_OK refused when ACCESS_PLATFORM is offered and not accepted, an
//! MSI-X vector past the table reads back as NO_VECTOR), and a check of every access width.

use crate::VirtioPciAccess;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

pub const BAR: u8 = 4;
pub const COMMON: u64 = 0x0000;
pub const ISR: u64 = 0x1000;
pub const DEVICE: u64 = 0x2000;
pub const NOTIFY: u64 = 0x3000;
pub const NOTIFY_MULTIPLIER: u32 = 4;
pub const BAR_LEN: u64 = 0x4000;

/// One queue's registers.
#[derive(Clone, Debug, Default)]
pub struct FakeQueue {
    pub max_size: u16,
    pub size: u16,
    pub vector: u16,
    pub enable: u16,
    pub notify_off: u16,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

/// The fake function.
#[derive(Debug)]
pub struct FakeVirtio {
    pub config: RefCell<[u32; 64]>,
    pub device_features: u64,
    pub refuse_features_ok: bool,
    pub needs_reset_on_driver_ok: bool,
    pub status_stuck: Option<u8>,
    pub msix_entries: u16,
    pub status: Cell<u8>,
    pub driver_features: Cell<u64>,
    device_select: Cell<u32>,
    driver_select: Cell<u32>,
    pub config_vector: Cell<u16>,
    pub queue_select: Cell<u16>,
    pub queues: RefCell<Vec<FakeQueue>>,
    pub notifies: RefCell<Vec<(u64, u16)>>,
    pub capacity: u64,
    pub width_errors: RefCell<Vec<(u64, u8)>>,
    pub status_writes: RefCell<Vec<u8>>,
    clock: Cell<u64>,
}

/// Width of each common-configuration register, by offset.
fn common_width(offset: u64) -> Option<u8> {
    Some(match offset {
        0x00 | 0x04 | 0x08 | 0x0c => 4,
        0x10 | 0x12 => 2,
        0x14 | 0x15 => 1,
        0x16 | 0x18 | 0x1a | 0x1c | 0x1e => 2,
        0x20..0x38 if offset.is_multiple_of(4) => 4,
        _ => return None,
    })
}

impl FakeVirtio {
    /// A modern virtio-blk (1af4:1042) behind the IOMMU: VERSION_1, ACCESS_PLATFORM and FLUSH
    /// offered, one queue of 256, two MSI-X entries, 2048 sectors.
    pub fn blk() -> Self {
        let mut config = [0u32; 64];
        config[0] = 0x1042_1af4;
        config[1] = 1 << 20; // status: capability list
        config[0x34 / 4] = 0x40;
        // MSI-X capability at 0x40 (not virtio's), then the virtio structures.
        config[0x40 / 4] = 0x11 | 0x50 << 8 | 1 << 16;
        let mut cap = |at: usize, next: u32, len: u32, kind: u32, offset: u64, length: u32| {
            config[at / 4] = 0x09 | next << 8 | len << 16 | kind << 24;
            config[at / 4 + 1] = u32::from(BAR);
            config[at / 4 + 2] = offset as u32;
            config[at / 4 + 3] = length;
        };
        cap(0x50, 0x60, 16, 1, COMMON, 0x1000);
        cap(0x60, 0x70, 16, 3, ISR, 0x1000);
        cap(0x70, 0x80, 16, 4, DEVICE, 0x100);
        cap(0x80, 0x00, 20, 2, NOTIFY, 0x1000);
        config[0x90 / 4] = NOTIFY_MULTIPLIER;
        Self {
            config: RefCell::new(config),
            device_features: 1 << 32 | 1 << 33 | 1 << 9,
            refuse_features_ok: false,
            needs_reset_on_driver_ok: false,
            status_stuck: None,
            msix_entries: 2,
            status: Cell::new(0),
            driver_features: Cell::new(0),
            device_select: Cell::new(0),
            driver_select: Cell::new(0),
            config_vector: Cell::new(0xffff),
            queue_select: Cell::new(0),
            queues: RefCell::new(vec![FakeQueue {
                max_size: 256,
                size: 256,
                vector: 0xffff,
                notify_off: 1,
                ..FakeQueue::default()
            }]),
            notifies: RefCell::new(Vec::new()),
            capacity: 2048,
            width_errors: RefCell::new(Vec::new()),
            status_writes: RefCell::new(Vec::new()),
            clock: Cell::new(0),
        }
    }

    /// Sets the size every queue offers.
    pub fn with_queue_size(self, size: u16) -> Self {
        for queue in self.queues.borrow_mut().iter_mut() {
            queue.max_size = size;
            queue.size = size;
        }
        self
    }

    fn check_width(&self, bar: u8, offset: u64, width: u8) {
        assert_eq!(bar, BAR, "access to a BAR the device does not use");
        if (COMMON..COMMON + 0x1000).contains(&offset)
            && common_width(offset - COMMON) != Some(width)
        {
            self.width_errors.borrow_mut().push((offset, width));
        }
    }

    fn with_queue<T>(&self, f: impl FnOnce(&mut FakeQueue) -> T) -> Option<T> {
        let select = usize::from(self.queue_select.get());
        self.queues.borrow_mut().get_mut(select).map(f)
    }

    fn write_status(&self, value: u8) {
        self.status_writes.borrow_mut().push(value);
        if value == 0 {
            self.status.set(0);
            self.driver_features.set(0);
            for queue in self.queues.borrow_mut().iter_mut() {
                queue.enable = 0;
                queue.vector = 0xffff;
                queue.size = queue.max_size;
            }
            return;
        }
        let features_ok = 0x08;
        if value & features_ok != 0 && self.status.get() & features_ok == 0 {
            let accepted = self.driver_features.get();
            let platform = 1 << 33;
            let invalid = accepted & !self.device_features != 0
                || (self.device_features & platform != 0 && accepted & platform == 0);
            if invalid || self.refuse_features_ok {
                return; // QEMU leaves the status as it was
            }
        }
        let mut value = value;
        if value & 0x04 != 0 && self.needs_reset_on_driver_ok {
            value |= 0x40;
        }
        self.status.set(value);
    }

    fn read(&self, offset: u64, width: u8) -> u64 {
        self.check_width(BAR, offset, width);
        let queue = |f: fn(&FakeQueue) -> u64| self.with_queue(|q| f(q)).unwrap_or(0);
        match offset {
            0x04 => match self.device_select.get() {
                0 => self.device_features & 0xffff_ffff,
                1 => self.device_features >> 32,
                _ => 0,
            },
            0x10 => self.config_vector.get().into(),
            0x12 => self.queues.borrow().len() as u64,
            0x14 => self.status_stuck.unwrap_or(self.status.get()).into(),
            0x15 => 0,
            0x16 => self.queue_select.get().into(),
            0x18 => queue(|q| q.size.into()),
            0x1a => self.with_queue(|q| q.vector.into()).unwrap_or(0xffff),
            0x1c => queue(|q| q.enable.into()),
            0x1e => queue(|q| q.notify_off.into()),
            o if (DEVICE..DEVICE + 8).contains(&o) => {
                let shift = (o - DEVICE) * 8;
                (self.capacity >> shift) & ((1u128 << (u32::from(width) * 8)) - 1) as u64
            }
            _ => 0,
        }
    }

    fn write(&self, offset: u64, width: u8, value: u64) {
        self.check_width(BAR, offset, width);
        let set_half = |old: u64, high: bool| {
            if high {
                old & 0xffff_ffff | value << 32
            } else {
                old & !0xffff_ffff | value
            }
        };
        match offset {
            0x00 => self.device_select.set(value as u32),
            0x08 => self.driver_select.set(value as u32),
            0x0c => {
                let high = self.driver_select.get() == 1;
                self.driver_features
                    .set(set_half(self.driver_features.get(), high));
            }
            0x10 => self.config_vector.set(self.vector(value as u16)),
            0x14 => self.write_status(value as u8),
            0x16 => self.queue_select.set(value as u16),
            0x18 => {
                self.with_queue(|q| q.size = value as u16);
            }
            0x1a => {
                let vector = self.vector(value as u16);
                self.with_queue(|q| q.vector = vector);
            }
            0x1c => {
                self.with_queue(|q| q.enable = value as u16);
            }
            0x20..0x38 => {
                let high = offset % 8 == 4;
                self.with_queue(|q| {
                    let field = match offset & !7 {
                        0x20 => &mut q.desc,
                        0x28 => &mut q.driver,
                        _ => &mut q.device,
                    };
                    *field = set_half(*field, high);
                });
            }
            o if (NOTIFY..NOTIFY + 0x1000).contains(&o) => {
                self.notifies.borrow_mut().push((o - NOTIFY, value as u16));
            }
            _ => {}
        }
    }

    fn vector(&self, vector: u16) -> u16 {
        if vector < self.msix_entries {
            vector
        } else {
            0xffff
        }
    }
}

impl VirtioPciAccess for &FakeVirtio {
    fn config_read32(&self, offset: u16) -> u32 {
        self.config.borrow()[usize::from(offset / 4)]
    }
    fn bar_len(&self, bar: u8) -> Option<u64> {
        (bar == BAR).then_some(BAR_LEN)
    }
    fn read8(&self, _bar: u8, offset: u64) -> u8 {
        self.read(offset, 1) as u8
    }
    fn write8(&self, _bar: u8, offset: u64, value: u8) {
        self.write(offset, 1, value.into());
    }
    fn read16(&self, _bar: u8, offset: u64) -> u16 {
        self.read(offset, 2) as u16
    }
    fn write16(&self, _bar: u8, offset: u64, value: u16) {
        self.write(offset, 2, value.into());
    }
    fn read32(&self, _bar: u8, offset: u64) -> u32 {
        self.read(offset, 4) as u32
    }
    fn write32(&self, _bar: u8, offset: u64, value: u32) {
        self.write(offset, 4, value.into());
    }
    fn now_us(&self) -> u64 {
        self.clock.set(self.clock.get() + 10);
        self.clock.get()
    }
}

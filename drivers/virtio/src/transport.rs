//! The transport: device initialisation as virtio 1.2 section 3.1.1 orders it, with every step
//! the device can refuse read back, and `virtio_drivers::transport::Transport` for the crate's
//! virtqueue.
//!
//! The order a driver follows: [`VirtioPciTransport::new`], [`negotiate`], device
//! configuration reads, [`prepare_queue`] for each queue (size and MSI-X vector checked), then
//! the crate's `VirtQueue::new` (which calls `queue_set`), then [`finish`] (DRIVER_OK, checked).
//! Steps that the `Transport` trait cannot fail (`queue_set`, `notify`, `begin_init`) record
//! their error in [`failure`], and a recorded failure makes [`finish`] fail and keeps DRIVER_OK
//! from ever being written.
//!
//! [`negotiate`]: VirtioPciTransport::negotiate
//! [`prepare_queue`]: VirtioPciTransport::prepare_queue
//! [`finish`]: VirtioPciTransport::finish
//! [`failure`]: VirtioPciTransport::failure

mod crate_trait;

use crate::capabilities::{Region, VirtioStructures};
use crate::common::{self, Register};
use crate::{FEATURE_ACCESS_PLATFORM, FEATURE_VERSION_1, TransportError, VENDOR_ID};
use crate::{StructureKind, VirtioPciAccess};
use core::fmt::Debug;
use virtio_drivers::Error;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// "No vector" for `config_msix_vector` and `queue_msix_vector`.
pub const NO_VECTOR: u16 = 0xffff;
/// Queues this transport keeps state for (a block device uses 1, a network device 2 or 3).
const MAX_QUEUES: usize = 8;
/// TIMEOUT: a reset is synchronous in QEMU (the first read is 0); 100 ms and 10 000 reads leave
/// a real device room.
const RESET_BUDGET_US: u64 = 100_000;
const RESET_POLLS: u32 = 10_000;
/// Config-generation retries before a reading is given up (the device keeps changing it).
pub(crate) const GENERATION_RETRIES: u32 = 16;
/// Largest device-configuration value read at once.
pub(crate) const MAX_CONFIG_VALUE: usize = 64;

/// A queue checked by [`VirtioPciTransport::prepare_queue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// The device's (maximum) queue size.
    pub size: u16,
    /// The queue's notify address, as an offset in the notify structure.
    pub notify_offset: u64,
    /// The queue's MSI-X vector (table entry), or [`NO_VECTOR`].
    pub vector: u16,
}

/// A modern virtio-pci transport over `A`.
#[derive(Debug)]
pub struct VirtioPciTransport<A> {
    access: A,
    device_type: DeviceType,
    structures: VirtioStructures,
    queues: [Option<QueueInfo>; MAX_QUEUES],
    negotiated: Option<u64>,
    failure: Option<TransportError>,
}

/// The virtio device type of a PCI function: 0x1040 + type for a modern ID, the subsystem ID
/// for a transitional one (0x1000..=0x103f).
fn device_type_of(access: &impl VirtioPciAccess) -> Result<DeviceType, TransportError> {
    let id = access.config_read32(0x00);
    let (vendor, device) = (id as u16, (id >> 16) as u16);
    let virtio_id = match device {
        _ if vendor != VENDOR_ID => return Err(TransportError::NotVirtio { vendor, device }),
        0x1041..=0x107f => device - 0x1040,
        0x1000..=0x103f => (access.config_read32(0x2c) >> 16) as u16,
        _ => return Err(TransportError::NotVirtio { vendor, device }),
    };
    DeviceType::try_from(virtio_id).map_err(|_| TransportError::UnknownDeviceType(virtio_id))
}

impl<A: VirtioPciAccess> VirtioPciTransport<A> {
    /// Identifies the function and finds its structures. Writes nothing.
    pub fn new(access: A) -> Result<Self, TransportError> {
        let device_type = device_type_of(&access)?;
        let structures = VirtioStructures::find(&access)?;
        Ok(Self {
            access,
            device_type,
            structures,
            queues: [None; MAX_QUEUES],
            negotiated: None,
            failure: None,
        })
    }

    /// The register access this transport was made over.
    pub fn access(&self) -> &A {
        &self.access
    }

    /// The structures found.
    pub fn structures(&self) -> &VirtioStructures {
        &self.structures
    }

    /// The first error a `Transport` method could not return, if any.
    pub fn failure(&self) -> Option<TransportError> {
        self.failure
    }

    /// The features negotiated, once [`negotiate`](Self::negotiate) succeeded.
    pub fn negotiated(&self) -> Option<u64> {
        self.negotiated
    }

    fn read8(&self, register: Register<1>) -> u8 {
        let common = self.structures.common;
        self.access.read8(common.bar, common.offset + register.0)
    }

    fn write8(&self, register: Register<1>, value: u8) {
        let common = self.structures.common;
        self.access
            .write8(common.bar, common.offset + register.0, value);
    }

    fn read16(&self, register: Register<2>) -> u16 {
        let common = self.structures.common;
        self.access.read16(common.bar, common.offset + register.0)
    }

    fn write16(&self, register: Register<2>, value: u16) {
        let common = self.structures.common;
        self.access
            .write16(common.bar, common.offset + register.0, value);
    }

    fn read32(&self, register: Register<4>) -> u32 {
        let common = self.structures.common;
        self.access.read32(common.bar, common.offset + register.0)
    }

    fn write32(&self, register: Register<4>, value: u32) {
        let common = self.structures.common;
        self.access
            .write32(common.bar, common.offset + register.0, value);
    }

    fn write64(&self, low: Register<4>, value: u64) {
        self.write32(low, value as u32);
        self.write32(Register(low.0 + 4), (value >> 32) as u32);
    }

    fn status(&self) -> u8 {
        self.read8(common::DEVICE_STATUS)
    }

    /// Tells the device the driver gave up on it (status FAILED).
    pub fn fail(&mut self) {
        self.write8(common::DEVICE_STATUS, DeviceStatus::FAILED.bits() as u8);
    }

    /// Resets the device and waits, within a budget, for its status to read 0.
    pub fn reset(&mut self) -> Result<(), TransportError> {
        self.write8(common::DEVICE_STATUS, 0);
        let start = self.access.now_us();
        let mut status = self.status();
        let mut polls = 0;
        while status != 0 {
            polls += 1;
            if polls >= RESET_POLLS || self.access.now_us().saturating_sub(start) > RESET_BUDGET_US
            {
                return Err(TransportError::ResetTimeout { status });
            }
            status = self.status();
        }
        self.queues = [None; MAX_QUEUES];
        self.negotiated = None;
        Ok(())
    }

    /// Resets the device and negotiates: the features accepted are those the device offers
    /// among `wanted`, VIRTIO_F_VERSION_1 (required) and VIRTIO_F_ACCESS_PLATFORM (always
    /// accepted when offered: the device's DMA then goes through the IOMMU, and QEMU refuses
    /// FEATURES_OK without it). FEATURES_OK is read back; if it did not stick, the device is
    /// marked FAILED and the error says what was written and read.
    pub fn negotiate(&mut self, wanted: u64) -> Result<u64, TransportError> {
        self.reset()?;
        let acknowledge = DeviceStatus::ACKNOWLEDGE.bits() as u8;
        let driver = acknowledge | DeviceStatus::DRIVER.bits() as u8;
        self.write8(common::DEVICE_STATUS, acknowledge);
        self.write8(common::DEVICE_STATUS, driver);
        let offered = self.read_device_features();
        if offered & FEATURE_VERSION_1 == 0 {
            self.fail();
            return Err(TransportError::NotModern);
        }
        let features = offered & (wanted | FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM);
        self.write_driver_features(features);
        let features_ok = driver | DeviceStatus::FEATURES_OK.bits() as u8;
        self.write8(common::DEVICE_STATUS, features_ok);
        let status = self.status();
        if status & DeviceStatus::FEATURES_OK.bits() as u8 == 0 {
            self.fail();
            return Err(TransportError::FeaturesRefused { features, status });
        }
        self.negotiated = Some(features);
        Ok(features)
    }

    /// The device's `num_queues`.
    pub fn num_queues(&self) -> u16 {
        self.read16(common::NUM_QUEUES)
    }

    /// Routes configuration-change interrupts to MSI-X table entry `vector` ([`NO_VECTOR`]:
    /// none), and checks the device took it.
    pub fn set_config_vector(&mut self, vector: u16) -> Result<(), TransportError> {
        self.write16(common::CONFIG_MSIX_VECTOR, vector);
        let read_back = self.read16(common::CONFIG_MSIX_VECTOR);
        if read_back != vector {
            return Err(TransportError::VectorRefused {
                queue: None,
                vector,
                read_back,
            });
        }
        Ok(())
    }

    /// Checks queue `queue` before the virtqueue is made: it exists, its size is not 0 and at
    /// least `needed`, its notify address lies in the notify structure, and it takes MSI-X
    /// table entry `vector` (read back). Only a prepared queue can be set up.
    pub fn prepare_queue(
        &mut self,
        queue: u16,
        needed: u16,
        vector: u16,
    ) -> Result<QueueInfo, TransportError> {
        if self.negotiated.is_none() {
            return Err(TransportError::NotNegotiated);
        }
        let queues = self.num_queues();
        if queue >= queues || usize::from(queue) >= MAX_QUEUES {
            return Err(TransportError::NoSuchQueue { queue, queues });
        }
        self.write16(common::QUEUE_SELECT, queue);
        let size = self.read16(common::QUEUE_SIZE);
        if size == 0 {
            return Err(TransportError::QueueSizeZero { queue });
        }
        if size < needed {
            return Err(TransportError::QueueTooSmall {
                queue,
                size,
                needed,
            });
        }
        let notify = self.structures.notify;
        let notify_offset = u64::from(self.read16(common::QUEUE_NOTIFY_OFF))
            * u64::from(self.structures.notify_multiplier);
        if notify_offset + 2 > notify.len {
            return Err(TransportError::NotifyOutside {
                queue,
                offset: notify_offset,
            });
        }
        self.write16(common::QUEUE_MSIX_VECTOR, vector);
        let read_back = self.read16(common::QUEUE_MSIX_VECTOR);
        if read_back != vector {
            return Err(TransportError::VectorRefused {
                queue: Some(queue),
                vector,
                read_back,
            });
        }
        let info = QueueInfo {
            size,
            notify_offset,
            vector,
        };
        self.queues[usize::from(queue)] = Some(info);
        Ok(info)
    }

    /// Sets DRIVER_OK and checks it stuck and the device reports neither FAILED nor
    /// DEVICE_NEEDS_RESET. Fails, without writing DRIVER_OK, if a `Transport` method recorded
    /// a failure.
    pub fn finish(&mut self) -> Result<(), TransportError> {
        if let Some(failure) = self.failure {
            self.fail();
            return Err(failure);
        }
        if self.negotiated.is_none() {
            return Err(TransportError::NotNegotiated);
        }
        let ready = DeviceStatus::ACKNOWLEDGE
            | DeviceStatus::DRIVER
            | DeviceStatus::FEATURES_OK
            | DeviceStatus::DRIVER_OK;
        self.write8(common::DEVICE_STATUS, ready.bits() as u8);
        let status = self.status();
        let bad = (DeviceStatus::FAILED | DeviceStatus::DEVICE_NEEDS_RESET).bits() as u8;
        if status & DeviceStatus::DRIVER_OK.bits() as u8 == 0 || status & bad != 0 {
            return Err(TransportError::DriverOkRefused { status });
        }
        Ok(())
    }

    /// Whether the device asks to be reset (DEVICE_NEEDS_RESET) or was marked FAILED.
    pub fn broken(&self) -> bool {
        let bad = (DeviceStatus::FAILED | DeviceStatus::DEVICE_NEEDS_RESET).bits() as u8;
        self.status() & bad != 0
    }

    fn record(&mut self, failure: TransportError) {
        self.failure.get_or_insert(failure);
    }

    fn device_region(&self, offset: usize, len: usize) -> Result<Region, Error> {
        let region = self.structures.device.ok_or(Error::ConfigSpaceMissing)?;
        match (offset as u64).checked_add(len as u64) {
            Some(end) if end <= region.len && len <= MAX_CONFIG_VALUE => Ok(region),
            _ => Err(Error::ConfigSpaceTooSmall),
        }
    }
}

impl StructureKind {
    /// The structure's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Common => "common configuration",
            Self::Notify => "notifications",
            Self::Isr => "ISR status",
            Self::Device => "device configuration",
        }
    }
}

//! `virtio_drivers::transport::Transport` for [`VirtioPciTransport`], so the crate's
//! `VirtQueue` can be set up and notified through it. Steps the trait cannot fail record their
//! error in the transport (see [`VirtioPciTransport::failure`]).

use super::{GENERATION_RETRIES, MAX_CONFIG_VALUE, VirtioPciTransport};
use crate::common;
use crate::{TransportError, VirtioPciAccess};
use bitflags::Flags;
use core::fmt::Debug;
use core::ops::BitAnd;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

impl<A: VirtioPciAccess> Transport for VirtioPciTransport<A> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        self.write32(common::DEVICE_FEATURE_SELECT, 0);
        let low = self.read32(common::DEVICE_FEATURE);
        self.write32(common::DEVICE_FEATURE_SELECT, 1);
        let high = self.read32(common::DEVICE_FEATURE);
        u64::from(high) << 32 | u64::from(low)
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.write32(common::DRIVER_FEATURE_SELECT, 0);
        self.write32(common::DRIVER_FEATURE, driver_features as u32);
        self.write32(common::DRIVER_FEATURE_SELECT, 1);
        self.write32(common::DRIVER_FEATURE, (driver_features >> 32) as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.write16(common::QUEUE_SELECT, queue);
        self.read16(common::QUEUE_SIZE).into()
    }

    fn notify(&mut self, queue: u16) {
        match self.queues.get(usize::from(queue)).copied().flatten() {
            Some(info) => {
                let notify = self.structures.notify;
                self.access
                    .write16(notify.bar, notify.offset + info.notify_offset, queue);
            }
            None => self.record(TransportError::QueueNotPrepared { queue }),
        }
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.status().into())
    }

    /// Writes the status, except that DRIVER_OK is never written after a recorded failure
    /// (FAILED is written instead).
    fn set_status(&mut self, status: DeviceStatus) {
        if self.failure.is_some() && status.contains(DeviceStatus::DRIVER_OK) {
            self.fail();
            return;
        }
        self.write8(common::DEVICE_STATUS, status.bits() as u8);
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Legacy transports only.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let Some(info) = self.queues.get(usize::from(queue)).copied().flatten() else {
            self.record(TransportError::QueueNotPrepared { queue });
            return;
        };
        let Ok(size) = u16::try_from(size) else {
            self.record(TransportError::QueueTooSmall {
                queue,
                size: info.size,
                needed: u16::MAX,
            });
            return;
        };
        self.write16(common::QUEUE_SELECT, queue);
        self.write16(common::QUEUE_SIZE, size);
        self.write64(common::QUEUE_DESC, descriptors);
        self.write64(common::QUEUE_DRIVER, driver_area);
        self.write64(common::QUEUE_DEVICE, device_area);
        self.write16(common::QUEUE_MSIX_VECTOR, info.vector);
        let read_back = self.read16(common::QUEUE_MSIX_VECTOR);
        if read_back != info.vector {
            self.record(TransportError::VectorRefused {
                queue: Some(queue),
                vector: info.vector,
                read_back,
            });
            return;
        }
        self.write16(common::QUEUE_ENABLE, 1);
    }

    /// A no-op: modern virtio-pci has no way to disable one queue (QEMU treats writing 0 to
    /// `queue_enable` as a driver error); the driver resets the whole device instead.
    fn queue_unset(&mut self, _queue: u16) {}

    fn queue_used(&mut self, queue: u16) -> bool {
        self.write16(common::QUEUE_SELECT, queue);
        self.read16(common::QUEUE_ENABLE) == 1
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let isr = self.structures.isr;
        InterruptStatus::from_bits_retain(self.access.read8(isr.bar, isr.offset).into())
    }

    /// Negotiates as [`VirtioPciTransport::negotiate`] does; an error is recorded (see
    /// [`VirtioPciTransport::failure`]) and no feature is returned.
    fn begin_init<F: Flags<Bits = u64> + BitAnd<Output = F> + Debug>(&mut self, supported: F) -> F {
        match self.negotiate(supported.bits()) {
            Ok(features) => F::from_bits_truncate(features),
            Err(error) => {
                self.record(error);
                F::empty()
            }
        }
    }

    /// Sets DRIVER_OK as [`VirtioPciTransport::finish`] does; an error is recorded.
    fn finish_init(&mut self) {
        if let Err(error) = self.finish() {
            self.record(error);
        }
    }

    fn read_config_generation(&self) -> u32 {
        self.read8(common::CONFIG_GENERATION).into()
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let len = size_of::<T>();
        let region = self.device_region(offset, len)?;
        let mut bytes = [0u8; MAX_CONFIG_VALUE];
        let base = region.offset + offset as u64;
        let mut at = 0;
        while at < len {
            let address = base + at as u64;
            let step = if len - at >= 4 && address.is_multiple_of(4) {
                let value = self.access.read32(region.bar, address);
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                4
            } else if len - at >= 2 && address.is_multiple_of(2) {
                let value = self.access.read16(region.bar, address);
                bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
                2
            } else {
                bytes[at] = self.access.read8(region.bar, address);
                1
            };
            at += step;
        }
        T::read_from_bytes(&bytes[..len]).map_err(|_| Error::InvalidParam)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        let bytes = value.as_bytes();
        let region = self.device_region(offset, bytes.len())?;
        let base = region.offset + offset as u64;
        let mut at = 0;
        while at < bytes.len() {
            let address = base + at as u64;
            let rest = &bytes[at..];
            if rest.len() >= 4 && address.is_multiple_of(4) {
                let value = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                self.access.write32(region.bar, address, value);
                at += 4;
            } else if rest.len() >= 2 && address.is_multiple_of(2) {
                let value = u16::from_le_bytes([rest[0], rest[1]]);
                self.access.write16(region.bar, address, value);
                at += 2;
            } else {
                self.access.write8(region.bar, address, rest[0]);
                at += 1;
            }
        }
        Ok(())
    }

    /// Reads until the config generation is the same before and after, at most
    /// [`GENERATION_RETRIES`] times (the crate's default retries forever).
    fn read_consistent<T>(&self, f: impl Fn() -> Result<T, Error>) -> Result<T, Error> {
        for _ in 0..GENERATION_RETRIES {
            let before = self.read_config_generation();
            let result = f();
            if self.read_config_generation() == before {
                return result;
            }
        }
        Err(Error::NotReady)
    }
}

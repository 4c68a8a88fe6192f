//! A virtio 1.x PCI transport ("modern" virtio-pci) for the `virtio-drivers` crate, in safe
//! Rust over a small register trait, so the kernel never hands a driver a raw BAR address.
//!
//! Why not the crate's own `PciTransport`: it never accepts VIRTIO_F_ACCESS_PLATFORM (bit 33),
//! which QEMU requires of a device behind the IOMMU (`iommu_platform=on`), and it never reads
//! the status back after FEATURES_OK, so the refusal goes unnoticed; it has no way to give a
//! queue its MSI-X vector (with MSI-X enabled and no vector, the device raises nothing); and
//! it sizes BARs by writing them, which a bound device's filtered config space refuses. This
//! transport finds the virtio structures through config reads only, negotiates bit 33 when
//! offered, checks FEATURES_OK and DRIVER_OK stuck, programs MSI-X vectors and reads them
//! back, and reports a queue size of 0 as an error. The virtqueue stays the crate's.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "fake"))]
extern crate alloc;

mod capabilities;
mod common;
mod transport;

#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod tests;

pub use capabilities::{Region, StructureKind, VirtioStructures};
pub use transport::{NO_VECTOR, QueueInfo, VirtioPciTransport};
pub use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// PCI vendor ID of virtio devices.
pub const VENDOR_ID: u16 = 0x1af4;

/// Feature bit: the device follows virtio 1.x (a modern device offers it; a driver must accept).
pub const FEATURE_VERSION_1: u64 = 1 << 32;
/// Feature bit VIRTIO_F_ACCESS_PLATFORM: the device's DMA goes through the platform's IOMMU.
/// A device that offers it may refuse FEATURES_OK when the driver does not accept it (QEMU
/// does), so this transport always accepts it when offered.
pub const FEATURE_ACCESS_PLATFORM: u64 = 1 << 33;

/// What the transport needs from one bound virtio PCI function: its config space (reads only),
/// its memory BARs at their natural widths, and a clock for budgets.
///
/// Accesses outside a BAR cannot happen through the transport (every structure is checked to
/// lie inside its BAR when the transport is made); an implementation that still fails a read
/// returns all ones, as a PCI master abort does.
pub trait VirtioPciAccess {
    /// A 32-bit read of PCI config space at `offset` (4-byte aligned).
    fn config_read32(&self, offset: u16) -> u32;
    /// Length of memory BAR `bar`, or `None` if it is not a memory BAR of this device.
    fn bar_len(&self, bar: u8) -> Option<u64>;
    /// 8-bit read in BAR `bar`.
    fn read8(&self, bar: u8, offset: u64) -> u8;
    /// 8-bit write in BAR `bar`.
    fn write8(&self, bar: u8, offset: u64, value: u8);
    /// 16-bit read in BAR `bar`.
    fn read16(&self, bar: u8, offset: u64) -> u16;
    /// 16-bit write in BAR `bar`.
    fn write16(&self, bar: u8, offset: u64, value: u16);
    /// 32-bit read in BAR `bar`.
    fn read32(&self, bar: u8, offset: u64) -> u32;
    /// 32-bit write in BAR `bar`.
    fn write32(&self, bar: u8, offset: u64, value: u32);
    /// The monotonic clock in microseconds.
    fn now_us(&self) -> u64;
}

/// Why the transport refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// Not a virtio PCI function (vendor and device ID).
    NotVirtio {
        /// Vendor ID read.
        vendor: u16,
        /// Device ID read.
        device: u16,
    },
    /// A virtio ID this crate does not know.
    UnknownDeviceType(u16),
    /// Malformed capability list: a pointer outside 0x40..0x100, misaligned, or a loop.
    BadCapabilityList {
        /// The offending pointer.
        pointer: u8,
    },
    /// A virtio capability shorter than its structure needs.
    BadCapability {
        /// Where it is in config space.
        at: u8,
        /// Its `cap_len`.
        len: u8,
    },
    /// A structure the transport needs is missing.
    Missing(StructureKind),
    /// A structure lies outside its BAR, or names a BAR that is not a memory BAR.
    OutsideBar {
        /// Which structure.
        kind: StructureKind,
        /// Its BAR.
        bar: u8,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A structure shorter than its registers.
    TooShort {
        /// Which structure.
        kind: StructureKind,
        /// Its length.
        len: u64,
    },
    /// The device status did not read 0 after the reset, within the budget.
    ResetTimeout {
        /// The status last read.
        status: u8,
    },
    /// The device does not offer VIRTIO_F_VERSION_1 (a legacy device).
    NotModern,
    /// FEATURES_OK did not stick: the device refused the features written.
    FeaturesRefused {
        /// Features written.
        features: u64,
        /// Status read back.
        status: u8,
    },
    /// DRIVER_OK did not stick, or the device reports DEVICE_NEEDS_RESET or FAILED.
    DriverOkRefused {
        /// Status read back.
        status: u8,
    },
    /// The queue index is not below the device's `num_queues`.
    NoSuchQueue {
        /// Queue asked for.
        queue: u16,
        /// The device's `num_queues`.
        queues: u16,
    },
    /// The device reports a queue size of 0 for a queue it has: unusable.
    QueueSizeZero {
        /// The queue.
        queue: u16,
    },
    /// The device's queue is smaller than the driver's ring.
    QueueTooSmall {
        /// The queue.
        queue: u16,
        /// Size the device offers.
        size: u16,
        /// Size the driver needs.
        needed: u16,
    },
    /// The queue's notify address lies outside the notify structure.
    NotifyOutside {
        /// The queue.
        queue: u16,
        /// The offset computed from `queue_notify_off` and the multiplier.
        offset: u64,
    },
    /// The device did not take an MSI-X vector (it read back as something else, usually
    /// [`NO_VECTOR`]).
    VectorRefused {
        /// The queue, or `None` for the configuration-change vector.
        queue: Option<u16>,
        /// Vector written.
        vector: u16,
        /// Value read back.
        read_back: u16,
    },
    /// A queue was set up that [`VirtioPciTransport::prepare_queue`] did not prepare.
    QueueNotPrepared {
        /// The queue.
        queue: u16,
    },
    /// Queue setup was asked before features were negotiated.
    NotNegotiated,
}

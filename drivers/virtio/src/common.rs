//! The common configuration structure's registers (virtio 1.2 section 4.1.4.3,
//! `struct virtio_pci_common_cfg`): offsets and widths, defined once. A 64-bit field is
//! written as two 32-bit halves, low first (section 4.1.3.1).

/// A register of the common configuration: its offset and width in the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Register<const WIDTH: u8>(pub(crate) u64);

/// 8-bit register.
pub(crate) type Register8 = Register<1>;
/// 16-bit register.
pub(crate) type Register16 = Register<2>;
/// 32-bit register.
pub(crate) type Register32 = Register<4>;

/// Selects which 32 feature bits `DEVICE_FEATURE` shows.
pub(crate) const DEVICE_FEATURE_SELECT: Register32 = Register(0x00);
/// 32 of the device's feature bits.
pub(crate) const DEVICE_FEATURE: Register32 = Register(0x04);
/// Selects which 32 feature bits `DRIVER_FEATURE` takes.
pub(crate) const DRIVER_FEATURE_SELECT: Register32 = Register(0x08);
/// 32 of the driver's accepted feature bits.
pub(crate) const DRIVER_FEATURE: Register32 = Register(0x0c);
/// MSI-X vector for configuration changes.
pub(crate) const CONFIG_MSIX_VECTOR: Register16 = Register(0x10);
/// Number of queues the device has.
pub(crate) const NUM_QUEUES: Register16 = Register(0x12);
/// Device status (writing 0 resets the device).
pub(crate) const DEVICE_STATUS: Register8 = Register(0x14);
/// Changes whenever the device configuration changes.
pub(crate) const CONFIG_GENERATION: Register8 = Register(0x15);
/// Selects the queue the `QUEUE_*` registers refer to.
pub(crate) const QUEUE_SELECT: Register16 = Register(0x16);
/// Queue size: the device's maximum on reset; the driver may write a smaller power of two.
pub(crate) const QUEUE_SIZE: Register16 = Register(0x18);
/// MSI-X vector for the selected queue.
pub(crate) const QUEUE_MSIX_VECTOR: Register16 = Register(0x1a);
/// Writing 1 enables the selected queue.
pub(crate) const QUEUE_ENABLE: Register16 = Register(0x1c);
/// The selected queue's notify offset, in units of the notify multiplier.
pub(crate) const QUEUE_NOTIFY_OFF: Register16 = Register(0x1e);
/// Descriptor table address (low half; the high half follows at +4).
pub(crate) const QUEUE_DESC: Register32 = Register(0x20);
/// Driver (available) area address (low half).
pub(crate) const QUEUE_DRIVER: Register32 = Register(0x28);
/// Device (used) area address (low half).
pub(crate) const QUEUE_DEVICE: Register32 = Register(0x30);

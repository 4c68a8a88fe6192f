//! The 82574 (e1000e) registers this driver touches: offsets in BAR 0 and their bits, defined
//! once (Intel 82574 GbE Controller datasheet, chapter 10; QEMU 7.2 `hw/net/e1000_regs.h` and
//! `e1000e_core.c` for what the model implements).

use bitflags::bitflags;

/// Device Control (10.2.2.1).
pub(crate) const CTRL: u32 = 0x0000;
/// Device Status (10.2.2.2), read only.
pub(crate) const STATUS: u32 = 0x0008;
/// Interrupt Cause Read (10.2.4.1): write 1 to clear a cause.
pub(crate) const ICR: u32 = 0x00c0;
/// Interrupt Mask Set/Read (10.2.4.3).
pub(crate) const IMS: u32 = 0x00d0;
/// Interrupt Mask Clear (10.2.4.4).
pub(crate) const IMC: u32 = 0x00d8;
/// Extended Interrupt Auto Clear (10.2.4.5): causes cleared from ICR when their MSI-X vector
/// fires. Left 0: the driver acknowledges causes itself.
pub(crate) const EIAC: u32 = 0x00dc;
/// Interrupt Acknowledge Auto Mask (10.2.4.6).
pub(crate) const IAM: u32 = 0x00e0;
/// Interrupt Vector Allocation (10.2.4.9): which MSI-X vector each cause raises.
pub(crate) const IVAR: u32 = 0x00e4;
/// Receive Control (10.2.5.1).
pub(crate) const RCTL: u32 = 0x0100;
/// Transmit Control (10.2.6.1).
pub(crate) const TCTL: u32 = 0x0400;
/// Receive descriptor ring 0: base low/high, length in bytes, head, tail (10.2.5.6-10).
pub(crate) const RDBAL: u32 = 0x2800;
pub(crate) const RDBAH: u32 = 0x2804;
pub(crate) const RDLEN: u32 = 0x2808;
pub(crate) const RDH: u32 = 0x2810;
pub(crate) const RDT: u32 = 0x2818;
/// Transmit descriptor ring 0: base low/high, length in bytes, head, tail (10.2.6.4-8).
pub(crate) const TDBAL: u32 = 0x3800;
pub(crate) const TDBAH: u32 = 0x3804;
pub(crate) const TDLEN: u32 = 0x3808;
pub(crate) const TDH: u32 = 0x3810;
pub(crate) const TDT: u32 = 0x3818;
/// Receive Address Low/High 0 (10.2.5.15): the station MAC address.
pub(crate) const RAL0: u32 = 0x5400;
pub(crate) const RAH0: u32 = 0x5404;

/// RAH.AV: the receive address entry is valid.
pub(crate) const RAH_ADDRESS_VALID: u32 = 1 << 31;

bitflags! {
    /// CTRL bits used here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Control: u32 {
        /// Full duplex.
        const FULL_DUPLEX = 1 << 0;
        /// Set Link Up.
        const SET_LINK_UP = 1 << 6;
        /// Device reset; self-clearing.
        const RESET = 1 << 26;
        const _ = !0;
    }
}

bitflags! {
    /// STATUS bits used here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Status: u32 {
        /// Link up.
        const LINK_UP = 1 << 1;
        const _ = !0;
    }
}

bitflags! {
    /// Interrupt causes (ICR, IMS, IMC share the layout).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Causes: u32 {
        /// Transmit descriptor written back (legacy/MSI mode).
        const TX_DESCRIPTOR_WRITTEN = 1 << 0;
        /// Link status change.
        const LINK_STATUS_CHANGE = 1 << 2;
        /// Receive timer (legacy/MSI mode).
        const RX_TIMER = 1 << 7;
        /// Receive queue 0 (MSI-X mode).
        const RX_QUEUE0 = 1 << 20;
        /// Transmit queue 0 (MSI-X mode).
        const TX_QUEUE0 = 1 << 22;
        /// Any other cause (MSI-X mode): link changes and errors.
        const OTHER = 1 << 24;
        /// An interrupt is asserted.
        const ASSERTED = 1 << 31;
        const _ = !0;
    }
}

bitflags! {
    /// RCTL bits used here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct ReceiveControl: u32 {
        /// Receiver enable.
        const ENABLE = 1 << 1;
        /// Accept broadcast (ARP requests).
        const BROADCAST_ACCEPT = 1 << 15;
        /// Strip the Ethernet CRC before the buffer is written.
        const STRIP_CRC = 1 << 26;
        const _ = !0;
    }
}

bitflags! {
    /// TCTL bits used here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct TransmitControl: u32 {
        /// Transmitter enable.
        const ENABLE = 1 << 1;
        /// Pad short packets.
        const PAD_SHORT = 1 << 3;
        const _ = !0;
    }
}

/// TCTL.CT (collision threshold, 10.2.6.1): 15 as the datasheet recommends.
pub(crate) const TCTL_COLLISION_THRESHOLD: u32 = 0x0f << 4;
/// TCTL.COLD (collision distance): 64 byte times for full duplex.
pub(crate) const TCTL_COLLISION_DISTANCE: u32 = 0x40 << 12;

/// One IVAR field (10.2.4.9): a 3-bit MSI-X vector number and the valid bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IvarEntry(u32);

impl IvarEntry {
    const VALID: u32 = 1 << 3;

    /// A valid entry raising MSI-X `vector` (0..=4 on the 82574).
    pub(crate) const fn vector(vector: u8) -> Self {
        Self(Self::VALID | (vector as u32 & 0x7))
    }

    /// The IVAR value routing receive queue 0, transmit queue 0 and other causes.
    pub(crate) const fn register(rx0: Self, tx0: Self, other: Self) -> u32 {
        rx0.0 | (tx0.0 << 8) | (other.0 << 16)
    }
}

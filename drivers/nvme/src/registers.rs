//! The controller registers the driver uses (NVMe 1.4, 3.1), typed: offsets, the capabilities
//! (validated once), the configuration the driver writes and the status it reads.

use crate::error::NvmeError;

/// Controller Capabilities (64-bit).
pub(crate) const CAP: u64 = 0x00;
/// Version.
pub(crate) const VS: u64 = 0x08;
/// Controller Configuration.
pub(crate) const CC: u64 = 0x14;
/// Controller Status.
pub(crate) const CSTS: u64 = 0x1c;
/// Admin Queue Attributes.
pub(crate) const AQA: u64 = 0x24;
/// Admin Submission Queue base address (64-bit).
pub(crate) const ASQ: u64 = 0x28;
/// Admin Completion Queue base address (64-bit).
pub(crate) const ACQ: u64 = 0x30;
/// First doorbell (NVMe 1.4, 3.1.16).
const DOORBELLS: u64 = 0x1000;

/// The memory page size the driver uses (CC.MPS = 0): 4 KiB.
pub const PAGE_SIZE: usize = 4096;
/// Submission queue entry size, log2 (64 bytes).
pub(crate) const SQ_ENTRY_SHIFT: u32 = 6;
/// Completion queue entry size, log2 (16 bytes).
pub(crate) const CQ_ENTRY_SHIFT: u32 = 4;

/// CAP, decoded (NVMe 1.4, 3.1.1). Built only by [`Capabilities::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities(u64);

impl Capabilities {
    /// Checks what the driver relies on: MQES >= 1 (a queue of at least two entries), a
    /// non-zero CAP.TO, the NVM command set (CSS bit 0), and 4 KiB pages within
    /// MPSMIN..=MPSMAX.
    pub fn validate(raw: u64) -> Result<Self, NvmeError> {
        let cap = Self(raw);
        let pages = (raw >> 48) & 0xf..=(raw >> 52) & 0xf;
        if raw & 0xffff == 0
            || cap.timeout_units() == 0
            || (raw >> 37) & 1 == 0
            || !pages.contains(&0)
        {
            return Err(NvmeError::BadCapabilities { cap: raw });
        }
        Ok(cap)
    }

    /// The raw register.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Largest I/O queue the controller supports, in entries (CAP.MQES + 1).
    pub const fn max_queue_entries(self) -> u32 {
        (self.0 & 0xffff) as u32 + 1
    }

    /// CAP.TO in its units of 500 ms.
    const fn timeout_units(self) -> u64 {
        (self.0 >> 24) & 0xff
    }

    /// The worst-case time for CSTS.RDY to follow CC.EN, from CAP.TO.
    pub const fn ready_timeout_us(self) -> u64 {
        self.timeout_units() * 500_000
    }

    /// Bytes between consecutive doorbells: 4 << CAP.DSTRD.
    pub const fn doorbell_stride(self) -> u64 {
        4 << ((self.0 >> 32) & 0xf)
    }
}

/// The doorbell offsets of queue `queue` for a doorbell stride of `stride` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Doorbells {
    /// Submission queue tail doorbell.
    pub(crate) submission_tail: u64,
    /// Completion queue head doorbell.
    pub(crate) completion_head: u64,
}

impl Doorbells {
    /// NVMe 1.4, 3.1.16-17: SQ y tail at 0x1000 + 2y * stride, CQ y head one stride later.
    pub(crate) const fn of(queue: u16, stride: u64) -> Self {
        let submission_tail = DOORBELLS + 2 * (queue as u64) * stride;
        Self {
            submission_tail,
            completion_head: submission_tail + stride,
        }
    }
}

/// CC values the driver writes (NVMe 1.4, 3.1.5).
pub(crate) mod configuration {
    use super::{CQ_ENTRY_SHIFT, SQ_ENTRY_SHIFT};

    /// CC.EN.
    const ENABLE: u32 = 1;
    /// CC.SHN = 01b, normal shutdown notification.
    const SHUTDOWN_NORMAL: u32 = 1 << 14;

    /// Enabled with the NVM command set (CSS 0), 4 KiB pages (MPS 0), round robin (AMS 0),
    /// 64-byte submission and 16-byte completion entries.
    pub(crate) const ENABLED: u32 = ENABLE | (SQ_ENTRY_SHIFT << 16) | (CQ_ENTRY_SHIFT << 20);
    /// [`ENABLED`] with a normal shutdown notification.
    pub(crate) const SHUTDOWN: u32 = ENABLED | SHUTDOWN_NORMAL;
    /// Disabled (a controller reset).
    pub(crate) const DISABLED: u32 = 0;
}

/// CSTS.SHST (NVMe 1.4, 3.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShutdownState {
    /// No shutdown requested.
    Normal,
    /// Shutdown processing is under way.
    Occurring,
    /// Shutdown processing is complete.
    Complete,
    /// The reserved value 11b.
    Reserved,
}

/// CSTS, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status(pub(crate) u32);

impl Status {
    /// CSTS.RDY.
    pub(crate) const fn ready(self) -> bool {
        self.0 & 1 != 0
    }

    /// CSTS.CFS: controller fatal status.
    pub(crate) const fn fatal(self) -> bool {
        self.0 & 2 != 0
    }

    /// CSTS.SHST.
    pub(crate) const fn shutdown(self) -> ShutdownState {
        match (self.0 >> 2) & 3 {
            0 => ShutdownState::Normal,
            1 => ShutdownState::Occurring,
            2 => ShutdownState::Complete,
            _ => ShutdownState::Reserved,
        }
    }
}

/// AQA for admin queues of `entries` entries each (0-based sizes in bits 11:0 and 27:16).
pub(crate) const fn admin_queue_attributes(entries: u16) -> u32 {
    let size = (entries as u32 - 1) & 0xfff;
    size | (size << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2's nvme: MQES 0x7ff, CQR, TO 0xf, DSTRD 0, CSS NVM, MPSMAX 4.
    const QEMU_CAP: u64 = 0x0040_0020_0f01_07ff;

    #[test]
    fn qemu_capabilities_decode() {
        let cap = Capabilities::validate(QEMU_CAP).unwrap();
        assert_eq!(cap.max_queue_entries(), 0x800);
        assert_eq!(cap.ready_timeout_us(), 7_500_000);
        assert_eq!(cap.doorbell_stride(), 4);
    }

    #[test]
    fn capabilities_the_driver_cannot_use_are_refused() {
        let no_queue = QEMU_CAP & !0xffff;
        let no_timeout = QEMU_CAP & !(0xff << 24);
        let no_nvm = QEMU_CAP & !(1 << 37);
        let big_pages = QEMU_CAP | (1 << 48);
        for raw in [no_queue, no_timeout, no_nvm, big_pages] {
            assert_eq!(
                Capabilities::validate(raw),
                Err(NvmeError::BadCapabilities { cap: raw })
            );
        }
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!(
            Doorbells::of(0, 4),
            Doorbells {
                submission_tail: 0x1000,
                completion_head: 0x1004
            }
        );
        assert_eq!(Doorbells::of(3, 4).submission_tail, 0x1018);
        let wide = Capabilities::validate(QEMU_CAP | (2 << 32)).unwrap();
        assert_eq!(wide.doorbell_stride(), 16);
        assert_eq!(
            Doorbells::of(1, 16),
            Doorbells {
                submission_tail: 0x1020,
                completion_head: 0x1030
            }
        );
    }

    #[test]
    fn configuration_and_status_fields() {
        assert_eq!(configuration::ENABLED, 0x0046_0001);
        assert_eq!(configuration::SHUTDOWN, 0x0046_4001);
        assert_eq!(admin_queue_attributes(16), 0x000f_000f);
        assert!(Status(1).ready() && !Status(1).fatal());
        assert!(Status(2).fatal());
        assert_eq!(Status(0b1000).shutdown(), ShutdownState::Complete);
        assert_eq!(Status(0b0100).shutdown(), ShutdownState::Occurring);
    }
}

//! Why an e1000e operation failed: one error enum for the whole driver.

use crate::DmaFailure;

/// Why an e1000e operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E1000eError {
    /// CTRL.RST did not clear within the budget.
    ResetTimeout {
        /// Budget in microseconds.
        budget_us: u64,
    },
    /// RAL0/RAH0 hold no valid unicast address.
    BadMacAddress {
        /// RAL0 as read.
        low: u32,
        /// RAH0 as read.
        high: u32,
    },
    /// STATUS.LU stayed clear within the budget.
    LinkDown {
        /// Budget in microseconds.
        budget_us: u64,
    },
    /// A DMA region could not be allocated, mapped or accessed.
    Dma,
    /// An MSI-X vector could not be set up.
    Interrupt,
    /// No queue interrupt within the budget.
    InterruptTimeout {
        /// Budget in microseconds.
        budget_us: u64,
    },
    /// A frame to send is shorter than an Ethernet header or longer than
    /// [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN).
    BadFrameLength {
        /// Its length.
        len: usize,
    },
    /// Every transmit descriptor is in flight.
    TransmitRingFull,
    /// The device wrote back a receive descriptor whose length is 0, below an Ethernet
    /// header, or beyond the buffer (or the caller's buffer); the frame was dropped.
    BadReceiveLength {
        /// Descriptor index.
        index: usize,
        /// The length the device reported.
        len: u16,
    },
    /// The device split a frame over several descriptors (our buffers hold any frame, so
    /// this is not a frame we asked for); the descriptor was dropped.
    ReceiveNotEndOfPacket {
        /// Descriptor index.
        index: usize,
    },
    /// The device flagged a frame error (CRC, symbol, sequence, RX data); dropped.
    ReceiveFrameError {
        /// Descriptor index.
        index: usize,
        /// The error bits.
        errors: u8,
    },
    /// A ring head register read back outside the ring.
    HeadOutOfRange {
        /// `"RDH"` or `"TDH"`.
        register: &'static str,
        /// The value read.
        value: u32,
    },
}

impl From<DmaFailure> for E1000eError {
    fn from(_: DmaFailure) -> Self {
        Self::Dma
    }
}

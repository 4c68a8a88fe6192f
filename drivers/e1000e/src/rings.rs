//! The receive and transmit descriptor rings: one of each, in DMA regions allocated at
//! bring-up. Head and tail follow the 82574 convention: the device owns the descriptors from
//! head up to (not including) tail; software owns the rest.

use crate::descriptor::{self, DESCRIPTOR_LEN, RxWriteBack};
use crate::registers::*;
use crate::{DmaDirection, E1000eError, MIN_FRAME_LEN, Platform};

/// Receive descriptors in the ring (RDLEN must be a multiple of 128 bytes: 8 descriptors).
pub const RX_RING_LEN: usize = 32;
/// Transmit descriptors in the ring.
pub const TX_RING_LEN: usize = 32;
/// Size of each receive buffer: RCTL.BSIZE = 00 (2048 bytes) with BSEX clear.
pub const RX_BUFFER_LEN: usize = 2048;

const _: () = assert!((RX_RING_LEN * DESCRIPTOR_LEN).is_multiple_of(128));
const _: () = assert!((TX_RING_LEN * DESCRIPTOR_LEN).is_multiple_of(128));

/// Writes a ring's base, length, head and tail registers.
fn program_ring<P: Platform>(
    platform: &P,
    registers: [u32; 5],
    base: u64,
    descriptors: usize,
    tail: usize,
) {
    let [low, high, length, head, tail_register] = registers;
    platform.write32(low, base as u32);
    platform.write32(high, (base >> 32) as u32);
    platform.write32(length, (descriptors * DESCRIPTOR_LEN) as u32);
    platform.write32(head, 0);
    platform.write32(tail_register, tail as u32);
}

/// Reads a head register and checks it names a descriptor of the ring.
fn head<P: Platform>(
    platform: &P,
    register: u32,
    name: &'static str,
    len: usize,
) -> Result<usize, E1000eError> {
    let value = platform.read32(register);
    match usize::try_from(value) {
        Ok(index) if index < len => Ok(index),
        _ => Err(E1000eError::HeadOutOfRange {
            register: name,
            value,
        }),
    }
}

/// The receive ring and its long-lived buffers (one region for all of them).
pub(crate) struct RxRing<R> {
    ring: R,
    buffers: R,
    buffers_iova: u64,
    /// The next descriptor the device will write back.
    next: usize,
}

impl<R> RxRing<R> {
    /// Allocates the ring and the buffers, hands every descriptor but one to the device and
    /// enables the receiver (broadcasts accepted for ARP, CRC stripped).
    pub(crate) fn new<P: Platform<Region = R>>(platform: &mut P) -> Result<Self, E1000eError> {
        let ring = platform.allocate(RX_RING_LEN * DESCRIPTOR_LEN, DmaDirection::Bidirectional)?;
        let buffers = platform.allocate(RX_RING_LEN * RX_BUFFER_LEN, DmaDirection::FromDevice)?;
        let buffers_iova = platform.iova(&buffers);
        for index in 0..RX_RING_LEN {
            let address = buffers_iova + (index * RX_BUFFER_LEN) as u64;
            platform.write(
                &ring,
                index * DESCRIPTOR_LEN,
                &descriptor::rx_ready(address),
            )?;
        }
        platform.write32(RCTL, 0);
        program_ring(
            platform,
            [RDBAL, RDBAH, RDLEN, RDH, RDT],
            platform.iova(&ring),
            RX_RING_LEN,
            RX_RING_LEN - 1,
        );
        platform.write32(
            RCTL,
            (ReceiveControl::ENABLE | ReceiveControl::BROADCAST_ACCEPT | ReceiveControl::STRIP_CRC)
                .bits(),
        );
        Ok(Self {
            ring,
            buffers,
            buffers_iova,
            next: 0,
        })
    }

    fn write_back<P: Platform<Region = R>>(
        &self,
        platform: &mut P,
    ) -> Result<RxWriteBack, E1000eError> {
        let mut bytes = [0; DESCRIPTOR_LEN];
        platform.read(&self.ring, self.next * DESCRIPTOR_LEN, &mut bytes)?;
        Ok(RxWriteBack::decode(&bytes))
    }

    /// Whether the next descriptor was written back.
    pub(crate) fn pending<P: Platform<Region = R>>(
        &self,
        platform: &mut P,
    ) -> Result<bool, E1000eError> {
        Ok(self.write_back(platform)?.done)
    }

    /// Takes the next written-back frame into `out` (see [`crate::E1000e::receive`]).
    pub(crate) fn take<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
        out: &mut [u8],
    ) -> Result<Option<usize>, E1000eError> {
        let back = self.write_back(platform)?;
        if !back.done {
            return Ok(None);
        }
        let index = self.next;
        let len = usize::from(back.length);
        let verdict = if !back.end_of_packet {
            Err(E1000eError::ReceiveNotEndOfPacket { index })
        } else if back.frame_errors != 0 {
            Err(E1000eError::ReceiveFrameError {
                index,
                errors: back.frame_errors,
            })
        } else if !(MIN_FRAME_LEN..=RX_BUFFER_LEN.min(out.len())).contains(&len) {
            Err(E1000eError::BadReceiveLength {
                index,
                len: back.length,
            })
        } else {
            platform.read(&self.buffers, index * RX_BUFFER_LEN, &mut out[..len])?;
            Ok(Some(len))
        };
        self.recycle(platform)?;
        verdict
    }

    /// Clears the descriptor just taken and gives it back to the device (RDT = its index:
    /// the device may then fill everything up to, not including, it).
    fn recycle<P: Platform<Region = R>>(&mut self, platform: &mut P) -> Result<(), E1000eError> {
        let index = self.next;
        let address = self.buffers_iova + (index * RX_BUFFER_LEN) as u64;
        platform.write(
            &self.ring,
            index * DESCRIPTOR_LEN,
            &descriptor::rx_ready(address),
        )?;
        platform.write32(RDT, index as u32);
        self.next = (index + 1) % RX_RING_LEN;
        // The head is read only to validate it: a device reporting a head outside the ring
        // is broken, and the caller hears of it.
        head(platform, RDH, "RDH", RX_RING_LEN)?;
        Ok(())
    }
}

/// The transmit ring and the per-frame buffers still in flight.
pub(crate) struct TxRing<R> {
    ring: R,
    /// Buffer of the frame in each descriptor, until the device wrote it back.
    in_flight: [Option<R>; TX_RING_LEN],
    /// The next descriptor to fill (mirrors TDT).
    tail: usize,
    /// The oldest descriptor not yet reclaimed.
    clean: usize,
}

impl<R> TxRing<R> {
    /// Allocates the ring, programs it empty and enables the transmitter.
    pub(crate) fn new<P: Platform<Region = R>>(platform: &mut P) -> Result<Self, E1000eError> {
        let ring = platform.allocate(TX_RING_LEN * DESCRIPTOR_LEN, DmaDirection::Bidirectional)?;
        platform.write32(TCTL, 0);
        program_ring(
            platform,
            [TDBAL, TDBAH, TDLEN, TDH, TDT],
            platform.iova(&ring),
            TX_RING_LEN,
            0,
        );
        platform.write32(
            TCTL,
            (TransmitControl::ENABLE | TransmitControl::PAD_SHORT).bits()
                | TCTL_COLLISION_THRESHOLD
                | TCTL_COLLISION_DISTANCE,
        );
        Ok(Self {
            ring,
            in_flight: [const { None }; TX_RING_LEN],
            tail: 0,
            clean: 0,
        })
    }

    /// Whether a descriptor is free (one always stays empty so that head == tail means empty).
    pub(crate) fn has_room(&self) -> bool {
        (self.tail + 1) % TX_RING_LEN != self.clean
    }

    /// Retires the buffer of every descriptor the device wrote back, oldest first; returns how
    /// many.
    pub(crate) fn reclaim<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
    ) -> Result<u64, E1000eError> {
        let mut retired = 0;
        while self.clean != self.tail {
            let mut bytes = [0; DESCRIPTOR_LEN];
            platform.read(&self.ring, self.clean * DESCRIPTOR_LEN, &mut bytes)?;
            if !descriptor::tx_done(&bytes) {
                break;
            }
            if let Some(buffer) = self.in_flight[self.clean].take() {
                platform.retire(buffer);
                retired += 1;
            }
            self.clean = (self.clean + 1) % TX_RING_LEN;
        }
        if retired > 0 {
            head(platform, TDH, "TDH", TX_RING_LEN)?;
        }
        Ok(retired)
    }

    /// Copies `frame` into a fresh region, fills the tail descriptor and moves TDT past it.
    pub(crate) fn send<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
        frame: &[u8],
    ) -> Result<(), E1000eError> {
        if !self.has_room() {
            return Err(E1000eError::TransmitRingFull);
        }
        let buffer = platform.allocate(frame.len(), DmaDirection::ToDevice)?;
        if let Err(failure) = platform.write(&buffer, 0, frame) {
            platform.retire(buffer);
            return Err(failure.into());
        }
        let descriptor = descriptor::tx_frame(platform.iova(&buffer), frame.len() as u16);
        if let Err(failure) = platform.write(&self.ring, self.tail * DESCRIPTOR_LEN, &descriptor) {
            platform.retire(buffer);
            return Err(failure.into());
        }
        self.in_flight[self.tail] = Some(buffer);
        self.tail = (self.tail + 1) % TX_RING_LEN;
        platform.write32(TDT, self.tail as u32);
        Ok(())
    }
}

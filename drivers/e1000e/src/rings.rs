//! The receive and transmit descriptor rings: one of each, in long-lived DMA regions allocated
//! at bring-up, and the buffers behind their descriptors, each a region of its own for one
//! frame. Head and tail follow the 82574 convention: the device owns the descriptors from head
//! up to (not including) tail; software owns the rest.

use crate::descriptor::{self, DESCRIPTOR_LEN, RxWriteBack};
use crate::registers::*;
use crate::{DmaDirection, E1000eError, MIN_FRAME_LEN, Platform};

/// Receive descriptors in the ring (RDLEN must be a multiple of 128 bytes: 8 descriptors).
pub const RX_RING_LEN: usize = 32;
/// Transmit descriptors in the ring.
pub const TX_RING_LEN: usize = 32;
/// Size of each receive buffer: RCTL.BSIZE = 00 (2048 bytes) with BSEX clear.
pub const RX_BUFFER_LEN: usize = 2048;
/// Size of the region behind each receive descriptor: one page (the DMA layer maps whole
/// pages), of which the device writes at most [`RX_BUFFER_LEN`] bytes.
pub const RX_REGION_LEN: usize = 4096;

const _: () = assert!((RX_RING_LEN * DESCRIPTOR_LEN).is_multiple_of(128));
const _: () = assert!((TX_RING_LEN * DESCRIPTOR_LEN).is_multiple_of(128));
const _: () = assert!(RX_BUFFER_LEN <= RX_REGION_LEN);

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

/// The receive ring (long-lived) and the buffer behind each descriptor: a region of its own,
/// retired as soon as its frame is taken and replaced by a fresh one.
///
/// Positions: the device owns the descriptors from RDH up to (not including) `tail` (RDT);
/// the driver holds the rest. `[next, RDH)` are written back and not yet taken; `[tail, next)`
/// are held: taken, or the one kept out so that RDH == RDT never means a full ring. A held
/// descriptor is handed back (RDT moves past it) only once it has a fresh buffer, so the
/// device is never given an IOVA that was retired. When `next == tail` every descriptor is
/// held (the device has none).
pub(crate) struct RxRing<R> {
    ring: R,
    /// Each descriptor's buffer; `None` once its frame was taken and until a fresh region
    /// could be allocated for it.
    buffers: [Option<R>; RX_RING_LEN],
    /// The next descriptor the device will write back.
    next: usize,
    /// The value in RDT: the first descriptor the device may not fill.
    tail: usize,
    /// Buffers retired after their frame (or bad write-back) was taken.
    retired: u64,
    /// Allocations of a fresh buffer that failed (the descriptor stayed held).
    refill_failures: u64,
}

impl<R> RxRing<R> {
    /// Allocates the ring and a buffer for every descriptor, hands every descriptor but one to
    /// the device and enables the receiver (broadcasts accepted for ARP, CRC stripped). Every
    /// allocation must succeed here: a receiver brought up short is an error.
    pub(crate) fn new<P: Platform<Region = R>>(platform: &mut P) -> Result<Self, E1000eError> {
        let ring = platform.allocate(RX_RING_LEN * DESCRIPTOR_LEN, DmaDirection::Bidirectional)?;
        let mut rx = Self {
            ring,
            buffers: [const { None }; RX_RING_LEN],
            next: 0,
            tail: RX_RING_LEN - 1,
            retired: 0,
            refill_failures: 0,
        };
        for index in 0..RX_RING_LEN {
            if !rx.fill(platform, index)? {
                return Err(E1000eError::Dma);
            }
        }
        platform.write32(RCTL, 0);
        program_ring(
            platform,
            [RDBAL, RDBAH, RDLEN, RDH, RDT],
            platform.iova(&rx.ring),
            RX_RING_LEN,
            rx.tail,
        );
        platform.write32(
            RCTL,
            (ReceiveControl::ENABLE | ReceiveControl::BROADCAST_ACCEPT | ReceiveControl::STRIP_CRC)
                .bits(),
        );
        Ok(rx)
    }

    /// Buffers retired so far.
    pub(crate) fn retired(&self) -> u64 {
        self.retired
    }

    /// Failed allocations of a fresh buffer so far.
    pub(crate) fn refill_failures(&self) -> u64 {
        self.refill_failures
    }

    /// Descriptors now without a buffer (the ring is that much shorter until they get one).
    pub(crate) fn unfilled(&self) -> usize {
        self.buffers.iter().filter(|b| b.is_none()).count()
    }

    /// Maps a fresh device-writable page for descriptor `index` and writes its IOVA into the
    /// descriptor (status cleared). False if the allocation failed: the descriptor keeps no
    /// buffer and must not be handed to the device.
    fn fill<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
        index: usize,
    ) -> Result<bool, E1000eError> {
        let Ok(buffer) = platform.allocate(RX_REGION_LEN, DmaDirection::FromDevice) else {
            self.refill_failures += 1;
            return Ok(false);
        };
        let ready = descriptor::rx_ready(platform.iova(&buffer));
        if let Err(failure) = platform.write(&self.ring, index * DESCRIPTOR_LEN, &ready) {
            platform.retire(buffer);
            return Err(failure.into());
        }
        self.buffers[index] = Some(buffer);
        Ok(true)
    }

    fn write_back<P: Platform<Region = R>>(
        &self,
        platform: &mut P,
    ) -> Result<Option<RxWriteBack>, E1000eError> {
        // A descriptor without a buffer was never handed to the device: whatever it holds is
        // an old write-back, not a frame.
        if self.buffers[self.next].is_none() {
            return Ok(None);
        }
        let mut bytes = [0; DESCRIPTOR_LEN];
        platform.read(&self.ring, self.next * DESCRIPTOR_LEN, &mut bytes)?;
        Ok(Some(RxWriteBack::decode(&bytes)).filter(|back| back.done))
    }

    /// Whether the next descriptor was written back.
    pub(crate) fn pending<P: Platform<Region = R>>(
        &self,
        platform: &mut P,
    ) -> Result<bool, E1000eError> {
        Ok(self.write_back(platform)?.is_some())
    }

    /// Takes the next written-back frame into `out` (see [`crate::E1000e::receive`]), retires
    /// its buffer and gives the device fresh ones. Descriptors left without a buffer by an
    /// earlier failed allocation are retried first, even when no frame is waiting.
    pub(crate) fn take<P: Platform<Region = R>>(
        &mut self,
        platform: &mut P,
        out: &mut [u8],
    ) -> Result<Option<usize>, E1000eError> {
        let Some(back) = self.write_back(platform)? else {
            self.refill(platform)?;
            return Ok(None);
        };
        let index = self.next;
        // `write_back` answers only for a descriptor that has a buffer.
        let Some(buffer) = self.buffers[index].take() else {
            return Ok(None);
        };
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
            platform
                .read(&buffer, 0, &mut out[..len])
                .map(|()| Some(len))
                .map_err(E1000eError::from)
        };
        platform.retire(buffer);
        self.retired += 1;
        self.next = (index + 1) % RX_RING_LEN;
        self.refill(platform)?;
        // The head is read only to validate it: a device reporting a head outside the ring
        // is broken, and the caller hears of it.
        head(platform, RDH, "RDH", RX_RING_LEN)?;
        verdict
    }

    /// Gives held descriptors fresh buffers and hands them back in ring order, keeping the
    /// one before `next` out. Stops at the first descriptor whose allocation fails: RDT stays
    /// on it, and the descriptors after it wait (the ring is shorter) until a later call
    /// fills it.
    fn refill<P: Platform<Region = R>>(&mut self, platform: &mut P) -> Result<(), E1000eError> {
        let mut tail = self.tail;
        loop {
            if self.buffers[tail].is_none() && !self.fill(platform, tail)? {
                break;
            }
            let following = (tail + 1) % RX_RING_LEN;
            if following == self.next {
                break;
            }
            tail = following;
        }
        if tail != self.tail {
            self.tail = tail;
            platform.write32(RDT, tail as u32);
        }
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

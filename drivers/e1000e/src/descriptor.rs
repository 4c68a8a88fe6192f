//! Legacy receive and transmit descriptors (82574 datasheet 3.2.4 and 3.3.3): 16 bytes each,
//! little-endian, encoded and decoded here and nowhere else.

/// Size of one descriptor in bytes, receive or transmit.
pub(crate) const DESCRIPTOR_LEN: usize = 16;

/// Receive status: descriptor done (the device wrote it back).
const RX_STATUS_DONE: u8 = 1 << 0;
/// Receive status: end of packet (this descriptor holds the frame's last byte).
const RX_STATUS_END_OF_PACKET: u8 = 1 << 1;
/// Receive errors that mean the frame itself is bad: CRC, symbol, sequence, carrier extension,
/// RX data error. Checksum-offload errors (TCPE, IPE) are left to the IP stack, which checks
/// checksums itself.
const RX_FRAME_ERRORS: u8 = 0b1001_0111;

/// Transmit command: end of packet.
const TX_COMMAND_END_OF_PACKET: u8 = 1 << 0;
/// Transmit command: insert the Ethernet CRC.
const TX_COMMAND_INSERT_CRC: u8 = 1 << 1;
/// Transmit command: report status (the device writes DD back when done).
const TX_COMMAND_REPORT_STATUS: u8 = 1 << 3;
/// Transmit status: descriptor done.
const TX_STATUS_DONE: u8 = 1 << 0;

/// A legacy receive descriptor handed to the device: only the buffer address is set.
pub(crate) fn rx_ready(buffer_iova: u64) -> [u8; DESCRIPTOR_LEN] {
    let mut bytes = [0; DESCRIPTOR_LEN];
    bytes[..8].copy_from_slice(&buffer_iova.to_le_bytes());
    bytes
}

/// What the device wrote back into a receive descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RxWriteBack {
    /// Bytes written to the buffer.
    pub(crate) length: u16,
    /// The device is done with the descriptor.
    pub(crate) done: bool,
    /// The frame ends in this descriptor.
    pub(crate) end_of_packet: bool,
    /// Frame error bits (CE, SE, SEQ, CXE, RXE), 0 for a good frame.
    pub(crate) frame_errors: u8,
}

impl RxWriteBack {
    /// Decodes the written-back fields of a receive descriptor.
    pub(crate) fn decode(bytes: &[u8; DESCRIPTOR_LEN]) -> Self {
        let status = bytes[12];
        Self {
            length: u16::from_le_bytes([bytes[8], bytes[9]]),
            done: status & RX_STATUS_DONE != 0,
            end_of_packet: status & RX_STATUS_END_OF_PACKET != 0,
            frame_errors: bytes[13] & RX_FRAME_ERRORS,
        }
    }
}

/// A legacy transmit descriptor for one whole frame: end of packet, CRC inserted, status
/// reported (so the device writes DD back and raises the transmit-queue cause).
pub(crate) fn tx_frame(buffer_iova: u64, length: u16) -> [u8; DESCRIPTOR_LEN] {
    let mut bytes = [0; DESCRIPTOR_LEN];
    bytes[..8].copy_from_slice(&buffer_iova.to_le_bytes());
    bytes[8..10].copy_from_slice(&length.to_le_bytes());
    bytes[11] = TX_COMMAND_END_OF_PACKET | TX_COMMAND_INSERT_CRC | TX_COMMAND_REPORT_STATUS;
    bytes
}

/// Whether the device marked a transmit descriptor done.
pub(crate) fn tx_done(bytes: &[u8; DESCRIPTOR_LEN]) -> bool {
    bytes[12] & TX_STATUS_DONE != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_descriptors_carry_address_length_and_commands() {
        let bytes = tx_frame(0x1234_5678_9abc, 60);
        assert_eq!(&bytes[..8], &0x1234_5678_9abcu64.to_le_bytes());
        assert_eq!(&bytes[8..10], &[60, 0]);
        assert_eq!(bytes[11], 0b1011);
        assert!(!tx_done(&bytes));
    }

    #[test]
    fn receive_write_back_is_decoded() {
        let mut bytes = rx_ready(0x1000);
        bytes[8..10].copy_from_slice(&1514u16.to_le_bytes());
        bytes[12] = 0b11;
        bytes[13] = 0x60; // checksum errors only: not frame errors
        let back = RxWriteBack::decode(&bytes);
        assert_eq!(
            back,
            RxWriteBack {
                length: 1514,
                done: true,
                end_of_packet: true,
                frame_errors: 0
            }
        );
        bytes[13] = 0x01;
        assert_eq!(RxWriteBack::decode(&bytes).frame_errors, 1);
    }
}

//! The virtio-blk request format (virtio 1.2 section 5.2.6): a 16-byte header the device
//! reads (type, reserved, sector), the data, and one status byte the device writes.

use crate::BlkError;

/// Bytes per sector: virtio-blk addresses in 512-byte units whatever the medium's block size.
pub const SECTOR_SIZE: usize = 512;
/// Most sectors one request moves (128 KiB: one bounce buffer of 32 pages).
pub const MAX_SECTORS: u32 = 256;

const TYPE_IN: u32 = 0;
const TYPE_OUT: u32 = 1;
const TYPE_FLUSH: u32 = 4;

const STATUS_OK: u8 = 0;
const STATUS_IOERR: u8 = 1;
const STATUS_UNSUPP: u8 = 2;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Device to memory.
    Read,
    /// Memory to device.
    Write,
    /// Make earlier completed writes durable.
    Flush,
}

/// The request header for `kind` at `sector` (little-endian, as virtio 1.x is).
pub(crate) fn header(kind: RequestKind, sector: u64) -> [u8; 16] {
    let request_type = match kind {
        RequestKind::Read => TYPE_IN,
        RequestKind::Write => TYPE_OUT,
        RequestKind::Flush => TYPE_FLUSH,
    };
    let mut bytes = [0u8; 16];
    bytes[0..4].copy_from_slice(&request_type.to_le_bytes());
    bytes[8..16].copy_from_slice(&sector.to_le_bytes());
    bytes
}

/// The status byte the device wrote, as a result.
pub(crate) fn status(kind: RequestKind, sector: u64, byte: u8) -> Result<(), BlkError> {
    match byte {
        STATUS_OK => Ok(()),
        STATUS_IOERR => Err(BlkError::DeviceIo { kind, sector }),
        STATUS_UNSUPP => Err(BlkError::DeviceUnsupported { kind }),
        other => Err(BlkError::BadStatus(other)),
    }
}

/// Sectors in `len` bytes of data: a non-zero multiple of [`SECTOR_SIZE`], at most
/// [`MAX_SECTORS`].
pub(crate) fn sectors_in(len: usize) -> Result<u32, BlkError> {
    if len == 0 || !len.is_multiple_of(SECTOR_SIZE) {
        return Err(BlkError::BadLength(len));
    }
    match u32::try_from(len / SECTOR_SIZE) {
        Ok(sectors) if sectors <= MAX_SECTORS => Ok(sectors),
        _ => Err(BlkError::TooLarge { len }),
    }
}

//! ACPI discovery over an abstract physical-memory reader: the RSDP (search and checks) lives
//! here, the table listing in [`tables`]. Firmware bytes are checked before anything trusts them.

pub mod dump;
pub mod platform;
pub mod tables;

#[cfg(test)]
mod tests;

pub use tables::{TableInfo, TableList, TableStatus, list_tables, read_table};

use core::fmt;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// Reads physical memory. The kernel backs it with identity-mapped memory; tests back it with
/// byte buffers.
pub trait PhysRead {
    /// Fills `buf` with the bytes at physical `addr..addr + buf.len()`, or fails if any part of
    /// the range is not readable (the contents of `buf` are then unspecified). Reading must have
    /// no side effects.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError>;
}

/// A physical range could not be read (not mapped, not RAM, or past the end of memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadError;

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("physical memory not readable")
    }
}

/// Why ACPI discovery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// Memory at `address` could not be read.
    Unreadable {
        /// Start of the failed read.
        address: u64,
    },
    /// The RSDP does not start with `"RSD PTR "`.
    RsdpSignature,
    /// The first 20 bytes of the RSDP do not sum to zero.
    RsdpChecksum {
        /// Their sum.
        sum: u8,
    },
    /// A revision 2+ RSDP whose length field is below 36 or above [`MAX_RSDP_LENGTH`].
    RsdpLength {
        /// The length field.
        length: u32,
    },
    /// A revision 2+ RSDP whose whole structure does not sum to zero.
    RsdpExtendedChecksum {
        /// The sum.
        sum: u8,
    },
    /// The RSDP points at neither an RSDT nor an XSDT.
    NoRootTable,
    /// The root table used (XSDT, or the RSDT after it) failed its checks.
    RootTable {
        /// `RSDT` or `XSDT`.
        signature: [u8; 4],
        /// Where the RSDP said it is.
        address: u64,
        /// What was wrong.
        status: TableStatus,
    },
    /// [`read_table`] was asked for a table whose listing status is not [`TableStatus::Ok`].
    TableNotOk {
        /// The listing status.
        status: TableStatus,
    },
    /// The table no longer matches its listing (signature, length or checksum changed).
    TableChanged,
    /// No memory for a copy of the table.
    OutOfMemory {
        /// Bytes requested.
        length: u32,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::Unreadable { address } => write!(f, "memory at {address:#x} not readable"),
            AcpiError::RsdpSignature => f.write_str("no `RSD PTR ` signature"),
            AcpiError::RsdpChecksum { sum } => write!(f, "RSDP checksum bad (sum {sum:#04x})"),
            AcpiError::RsdpLength { length } => write!(f, "RSDP length {length} out of range"),
            AcpiError::RsdpExtendedChecksum { sum } => {
                write!(f, "RSDP extended checksum bad (sum {sum:#04x})")
            }
            AcpiError::NoRootTable => f.write_str("RSDP gives no RSDT or XSDT address"),
            AcpiError::RootTable {
                signature,
                address,
                status,
            } => write!(f, "{} at {address:#x}: {status}", Printable(signature)),
            AcpiError::TableNotOk { status } => write!(f, "table failed its checks: {status}"),
            AcpiError::TableChanged => f.write_str("table changed since it was listed"),
            AcpiError::OutOfMemory { length } => {
                write!(f, "no memory for a {length}-byte table copy")
            }
        }
    }
}

/// Largest RSDP length accepted (ACPI 6 defines 36 bytes; more is allowed for extensions).
pub const MAX_RSDP_LENGTH: u32 = 4096;
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Bytes covered by the ACPI 1.0 checksum.
const RSDP_V1_LENGTH: usize = 20;
/// Size of the revision 2 structure.
const RSDP_V2_LENGTH: usize = 36;

/// The Root System Description Pointer, ACPI 6.5 section 5.2.5.3.
#[derive(FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct RsdpLayout {
    signature: [u8; 8],
    checksum: u8,
    oem_id: [u8; 6],
    revision: u8,
    rsdt_address: U32,
    // Revision 2 and later:
    length: U32,
    xsdt_address: U64,
    extended_checksum: u8,
    reserved: [u8; 3],
}

/// A validated RSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// Where it was read.
    pub address: u64,
    /// 0 for ACPI 1.0; 2 or more when the XSDT fields exist.
    pub revision: u8,
    /// OEM identifier, space padded.
    pub oem_id: [u8; 6],
    /// Physical address of the RSDT (0 if absent).
    pub rsdt_address: u32,
    /// Physical address of the XSDT, for revision 2+ when nonzero.
    pub xsdt_address: Option<u64>,
}

/// Scans `ranges` (each `(start, end)`, end exclusive) for a valid RSDP on a 16-byte boundary,
/// as ACPI requires for the BIOS areas. Signatures with a bad checksum are skipped; unreadable
/// parts are skipped. Returns the first valid RSDP's address.
pub fn find_rsdp<M: PhysRead + ?Sized>(mem: &M, ranges: &[(u64, u64)]) -> Option<u64> {
    ranges.iter().find_map(|&(start, end)| {
        let mut candidate = start.checked_next_multiple_of(16)?;
        loop {
            let fits = candidate
                .checked_add(RSDP_V1_LENGTH as u64)
                .is_some_and(|candidate_end| candidate_end <= end);
            if !fits {
                return None;
            }
            let mut signature = [0u8; 8];
            if mem.read(candidate, &mut signature).is_ok()
                && &signature == RSDP_SIGNATURE
                && read_rsdp(mem, candidate).is_ok()
            {
                return Some(candidate);
            }
            candidate = candidate.checked_add(16)?;
        }
    })
}

/// Reads and validates the RSDP at `address`: signature, the ACPI 1.0 checksum and, for
/// revision 2 and later, the length field and the extended checksum.
pub fn read_rsdp<M: PhysRead + ?Sized>(mem: &M, address: u64) -> Result<Rsdp, AcpiError> {
    let unreadable = AcpiError::Unreadable { address };
    let mut bytes = [0u8; RSDP_V2_LENGTH];
    let (first, rest) = bytes.split_at_mut(RSDP_V1_LENGTH);
    mem.read(address, first).map_err(|_| unreadable)?;
    if first.get(..8) != Some(RSDP_SIGNATURE.as_slice()) {
        return Err(AcpiError::RsdpSignature);
    }
    let sum = sum_bytes(first);
    if sum != 0 {
        return Err(AcpiError::RsdpChecksum { sum });
    }
    let revision = first.get(15).copied().unwrap_or(0);
    if revision >= 2 {
        let rest_address = address
            .checked_add(RSDP_V1_LENGTH as u64)
            .ok_or(unreadable)?;
        mem.read(rest_address, rest).map_err(|_| unreadable)?;
    }
    let (layout, _) = RsdpLayout::read_from_prefix(&bytes).map_err(|_| unreadable)?;
    let mut rsdp = Rsdp {
        address,
        revision,
        oem_id: layout.oem_id,
        rsdt_address: layout.rsdt_address.get(),
        xsdt_address: None,
    };
    if revision >= 2 {
        let length = layout.length.get();
        if length < RSDP_V2_LENGTH as u32 || length > MAX_RSDP_LENGTH {
            return Err(AcpiError::RsdpLength { length });
        }
        let sum = checksum(mem, address, length).map_err(|_| unreadable)?;
        if sum != 0 {
            return Err(AcpiError::RsdpExtendedChecksum { sum });
        }
        let xsdt = layout.xsdt_address.get();
        rsdp.xsdt_address = (xsdt != 0).then_some(xsdt);
    }
    Ok(rsdp)
}

fn sum_bytes(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// Sums `length` bytes at `address` in small chunks (no heap, no large stack buffer); a valid
/// ACPI structure sums to zero.
fn checksum<M: PhysRead + ?Sized>(mem: &M, address: u64, length: u32) -> Result<u8, ReadError> {
    let mut chunk = [0u8; 256];
    let mut sum = 0u8;
    let mut offset: u32 = 0;
    while offset < length {
        let take = (length - offset).min(chunk.len() as u32);
        let buffer = chunk.get_mut(..take as usize).ok_or(ReadError)?;
        let at = address.checked_add(u64::from(offset)).ok_or(ReadError)?;
        mem.read(at, buffer)?;
        sum = sum.wrapping_add(sum_bytes(buffer));
        offset += take;
    }
    Ok(sum)
}

/// Shows firmware bytes as text, with `?` for anything that is not printable ASCII.
struct Printable<'a, const N: usize>(&'a [u8; N]);

impl<const N: usize> fmt::Display for Printable<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            let shown = if byte == b' ' || byte.is_ascii_graphic() {
                char::from(byte)
            } else {
                '?'
            };
            fmt::Write::write_char(f, shown)?;
        }
        Ok(())
    }
}

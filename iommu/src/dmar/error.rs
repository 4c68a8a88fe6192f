//! Why a DMAR table was rejected. Every variant says where (a byte offset from the start of
//! the table) so a boot report can point at the broken bytes.

use core::fmt;

/// A DMAR table that cannot be trusted. Offsets count bytes from the start of the table.
///
/// The parser checks every length before it advances, so a malformed table yields one of
/// these instead of a panic, an out-of-bounds read or an endless loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarError {
    /// The slice is shorter than the 48-byte DMAR header (36-byte ACPI header, host address
    /// width, flags, 10 reserved bytes).
    TruncatedHeader {
        /// Bytes available.
        available: usize,
    },
    /// The signature is not `DMAR`.
    BadSignature {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// The header's length field claims more bytes than the slice holds.
    LengthExceedsSlice {
        /// The length field.
        length: u32,
        /// Bytes available.
        available: usize,
    },
    /// The header's length field is smaller than the DMAR header itself.
    LengthBelowHeader {
        /// The length field.
        length: u32,
    },
    /// The table's bytes do not sum to zero (mod 256).
    BadChecksum {
        /// The checksum byte stored in the header.
        stored: u8,
        /// The sum of all bytes; zero for a valid table.
        sum: u8,
    },
    /// The host address width field would mean more than 64 address bits.
    InvalidHostAddressWidth {
        /// The raw field (address width minus one).
        raw: u8,
    },
    /// Fewer than 4 bytes remain for a remapping structure's type and length.
    TruncatedStructureHeader {
        /// Where the structure starts.
        offset: usize,
        /// Bytes left in the table.
        available: usize,
    },
    /// A remapping structure has length zero (walking on would never advance).
    ZeroLengthStructure {
        /// Where the structure starts.
        offset: usize,
        /// Its type field.
        kind: u16,
    },
    /// A remapping structure is shorter than its type's fixed part.
    StructureTooShort {
        /// Where the structure starts.
        offset: usize,
        /// Its type field.
        kind: u16,
        /// Its length field.
        length: u16,
        /// The smallest length valid for this type.
        minimum: usize,
    },
    /// A remapping structure runs past the end of the table.
    StructurePastEnd {
        /// Where the structure starts.
        offset: usize,
        /// Its type field.
        kind: u16,
        /// Its length field.
        length: u16,
        /// The table's length.
        table_length: usize,
    },
    /// Fewer than 2 bytes remain in a structure for a device scope's type and length.
    TruncatedScopeHeader {
        /// Where the scope starts.
        offset: usize,
        /// Bytes left in the structure.
        available: usize,
    },
    /// A device scope has length zero.
    ZeroLengthScope {
        /// Where the scope starts.
        offset: usize,
    },
    /// A device scope is shorter than 8 bytes: its 6-byte fixed part plus at least one
    /// path element.
    ScopeTooShort {
        /// Where the scope starts.
        offset: usize,
        /// Its length field.
        length: u8,
    },
    /// A device scope runs past the end of the structure holding it.
    ScopePastStructure {
        /// Where the scope starts.
        offset: usize,
        /// Its length field.
        length: u8,
        /// Bytes left in the structure.
        available: usize,
    },
    /// A device scope's path is not a whole number of 2-byte (device, function) pairs.
    OddScopePath {
        /// Where the scope starts.
        offset: usize,
        /// Its length field.
        length: u8,
    },
    /// A path element names a device above 31 or a function above 7.
    InvalidPathElement {
        /// Where the path element is.
        offset: usize,
        /// The device number found.
        device: u8,
        /// The function number found.
        function: u8,
    },
    /// A DRHD's register base address is not 4 KiB aligned.
    MisalignedRegisterBase {
        /// Where the DRHD starts.
        offset: usize,
        /// The register base address.
        base: u64,
    },
    /// A second DRHD with INCLUDE_PCI_ALL for the same segment: the spec allows one.
    DuplicateIncludeAll {
        /// Where the second DRHD starts.
        offset: usize,
        /// The segment both claim.
        segment: u16,
    },
    /// An RMRR whose base or `limit + 1` is not 4 KiB aligned.
    MisalignedReservedRegion {
        /// Where the RMRR starts.
        offset: usize,
        /// Its base address.
        base: u64,
        /// Its limit (last byte, inclusive).
        limit: u64,
    },
    /// An RMRR whose limit lies below its base.
    InvertedReservedRegion {
        /// Where the RMRR starts.
        offset: usize,
        /// Its base address.
        base: u64,
        /// Its limit (last byte, inclusive).
        limit: u64,
    },
}

impl fmt::Display for DmarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DmarError::TruncatedHeader { available } => {
                write!(f, "DMAR header needs 48 bytes, only {available} available")
            }
            DmarError::BadSignature { found } => {
                write!(f, "signature {} is not DMAR", found.escape_ascii())
            }
            DmarError::LengthExceedsSlice { length, available } => write!(
                f,
                "length field {length} exceeds the {available} bytes available"
            ),
            DmarError::LengthBelowHeader { length } => {
                write!(f, "length field {length} is below the 48-byte DMAR header")
            }
            DmarError::BadChecksum { stored, sum } => write!(
                f,
                "checksum mismatch: bytes sum to {sum:#04x}, not 0 (stored checksum {stored:#04x})"
            ),
            DmarError::InvalidHostAddressWidth { raw } => write!(
                f,
                "host address width field {raw} means {} bits, more than 64",
                u16::from(raw) + 1
            ),
            DmarError::TruncatedStructureHeader { offset, available } => write!(
                f,
                "at {offset:#x}: only {available} bytes left, a structure header needs 4"
            ),
            DmarError::ZeroLengthStructure { offset, kind } => {
                write!(f, "at {offset:#x}: structure type {kind} has length 0")
            }
            DmarError::StructureTooShort {
                offset,
                kind,
                length,
                minimum,
            } => write!(
                f,
                "at {offset:#x}: structure type {kind} has length {length}, below its minimum {minimum}"
            ),
            DmarError::StructurePastEnd {
                offset,
                kind,
                length,
                table_length,
            } => write!(
                f,
                "at {offset:#x}: structure type {kind} of length {length} runs past the table end at {table_length:#x}"
            ),
            DmarError::TruncatedScopeHeader { offset, available } => write!(
                f,
                "at {offset:#x}: only {available} byte left in the structure, a device scope header needs 2"
            ),
            DmarError::ZeroLengthScope { offset } => {
                write!(f, "at {offset:#x}: device scope has length 0")
            }
            DmarError::ScopeTooShort { offset, length } => write!(
                f,
                "at {offset:#x}: device scope has length {length}, below 8 (header plus one path element)"
            ),
            DmarError::ScopePastStructure {
                offset,
                length,
                available,
            } => write!(
                f,
                "at {offset:#x}: device scope of length {length} runs past its structure ({available} bytes left)"
            ),
            DmarError::OddScopePath { offset, length } => write!(
                f,
                "at {offset:#x}: device scope length {length} leaves an odd number of path bytes"
            ),
            DmarError::InvalidPathElement {
                offset,
                device,
                function,
            } => write!(
                f,
                "at {offset:#x}: path element device {device:#x} function {function:#x} is out of range"
            ),
            DmarError::MisalignedRegisterBase { offset, base } => write!(
                f,
                "at {offset:#x}: DRHD register base {base:#x} is not 4 KiB aligned"
            ),
            DmarError::DuplicateIncludeAll { offset, segment } => write!(
                f,
                "at {offset:#x}: second INCLUDE_PCI_ALL DRHD for segment {segment}"
            ),
            DmarError::MisalignedReservedRegion {
                offset,
                base,
                limit,
            } => write!(
                f,
                "at {offset:#x}: RMRR {base:#x}..={limit:#x} is not 4 KiB aligned"
            ),
            DmarError::InvertedReservedRegion {
                offset,
                base,
                limit,
            } => write!(
                f,
                "at {offset:#x}: RMRR limit {limit:#x} lies below its base {base:#x}"
            ),
        }
    }
}

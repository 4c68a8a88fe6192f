//! The walk over a DMAR table's remapping structures. Each structure's length is checked
//! before the walk advances past it, so every step moves forward by at least 4 bytes and the
//! walk ends within `length / 4` steps, whatever the bytes say.

use alloc::vec::Vec;

use zerocopy::FromBytes;

use super::error::DmarError;
use super::header::{DmarFlags, ParseOptions, TableHeader, parse_header};
use super::layout::{
    ANDD_FIXED_LEN, AnddFixed, DMAR_HEADER_LEN, DRHD_FIXED_LEN, DrhdFixed, FLAGS_SEGMENT_FIXED_LEN,
    FlagsSegmentFixed, RHSA_LEN, RMRR_FIXED_LEN, RhsaFixed, RmrrFixed, STRUCTURE_HEADER_LEN,
    StructureHeader,
};
use super::scope::parse_scopes;
use super::structures::{
    Andd, Atsr, AtsrFlags, Drhd, DrhdFlags, PAGE_SIZE, Rhsa, Rmrr, Satc, SatcFlags, Structure,
    UnknownStructure,
};

/// Remapping structure type numbers (VT-d 8.2).
mod kind {
    pub(super) const DRHD: u16 = 0;
    pub(super) const RMRR: u16 = 1;
    pub(super) const ATSR: u16 = 2;
    pub(super) const RHSA: u16 = 3;
    pub(super) const ANDD: u16 = 4;
    pub(super) const SATC: u16 = 5;
}

/// An iterator over the remapping structures of a DMAR table, in table order.
///
/// [`Structures::new`] checks the header (signature, length, checksum per the options);
/// each step then yields one structure or the first error, after which the iterator is
/// exhausted. [`Dmar::parse`](super::Dmar::parse) is this walk collected; use the iterator
/// directly to report the structures that precede a defect.
#[derive(Debug, Clone)]
pub struct Structures<'a> {
    header: TableHeader,
    host_address_width: u8,
    flags: DmarFlags,
    table: &'a [u8],
    offset: usize,
    failed: bool,
    /// Segments that already have an INCLUDE_PCI_ALL unit.
    include_all_segments: Vec<u16>,
}

impl<'a> Structures<'a> {
    /// Checks the table header at the start of `bytes` and starts the walk. Bytes past the
    /// header's length field are ignored.
    pub fn new(bytes: &'a [u8], options: ParseOptions) -> Result<Structures<'a>, DmarError> {
        let parsed = parse_header(bytes, options.checksum)?;
        Ok(Structures {
            header: parsed.header,
            host_address_width: parsed.host_address_width,
            flags: parsed.flags,
            table: parsed.table,
            offset: DMAR_HEADER_LEN,
            failed: false,
            include_all_segments: Vec::new(),
        })
    }

    /// The table's ACPI header.
    pub fn header(&self) -> &TableHeader {
        &self.header
    }

    /// The raw host address width field (address bits minus one).
    pub const fn host_address_width(&self) -> u8 {
        self.host_address_width
    }

    /// The table's flags.
    pub const fn flags(&self) -> DmarFlags {
        self.flags
    }

    /// Where the next structure starts.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Takes the walk apart into what `Dmar` keeps of the header.
    pub(super) fn into_header(self) -> (TableHeader, u8, DmarFlags) {
        (self.header, self.host_address_width, self.flags)
    }

    /// Validates the structure at `self.offset` and returns it with its exact bytes.
    fn next_structure(&mut self) -> Result<Structure, DmarError> {
        let offset = self.offset;
        let rest = self.table.get(offset..).unwrap_or(&[]);
        let Ok((header, _)) = StructureHeader::ref_from_prefix(rest) else {
            return Err(DmarError::TruncatedStructureHeader {
                offset,
                available: rest.len(),
            });
        };
        let kind = header.kind.get();
        let length = header.length.get();
        if length == 0 {
            return Err(DmarError::ZeroLengthStructure { offset, kind });
        }
        let minimum = minimum_length(kind);
        if usize::from(length) < minimum {
            return Err(DmarError::StructureTooShort {
                offset,
                kind,
                length,
                minimum,
            });
        }
        let Some(bytes) = rest.get(..usize::from(length)) else {
            return Err(DmarError::StructurePastEnd {
                offset,
                kind,
                length,
                table_length: self.table.len(),
            });
        };
        let structure = match kind {
            kind::DRHD => Structure::Drhd(self.parse_drhd(bytes, offset)?),
            kind::RMRR => Structure::Rmrr(parse_rmrr(bytes, offset)?),
            kind::ATSR => {
                let (flags, segment, scopes) = parse_flags_segment(bytes, offset)?;
                Structure::Atsr(Atsr {
                    flags: AtsrFlags::from_bits_retain(flags),
                    segment,
                    scopes,
                })
            }
            kind::RHSA => Structure::Rhsa(parse_rhsa(bytes, offset)?),
            kind::ANDD => Structure::Andd(parse_andd(bytes, offset)?),
            kind::SATC => {
                let (flags, segment, scopes) = parse_flags_segment(bytes, offset)?;
                Structure::Satc(Satc {
                    flags: SatcFlags::from_bits_retain(flags),
                    segment,
                    scopes,
                })
            }
            _ => Structure::Unknown(UnknownStructure {
                kind,
                length,
                offset,
            }),
        };
        // `length >= minimum >= 4`, so the walk always moves forward.
        self.offset = offset + bytes.len();
        Ok(structure)
    }

    fn parse_drhd(&mut self, bytes: &[u8], offset: usize) -> Result<Drhd, DmarError> {
        let (fixed, scope_bytes) = fixed_part::<DrhdFixed>(bytes, offset)?;
        let flags = DrhdFlags::from_bits_retain(fixed.flags);
        let segment = fixed.segment.get();
        let register_base = fixed.register_base.get();
        if !register_base.is_multiple_of(PAGE_SIZE) {
            return Err(DmarError::MisalignedRegisterBase {
                offset,
                base: register_base,
            });
        }
        if flags.contains(DrhdFlags::INCLUDE_PCI_ALL) {
            if self.include_all_segments.contains(&segment) {
                return Err(DmarError::DuplicateIncludeAll { offset, segment });
            }
            self.include_all_segments.push(segment);
        }
        Ok(Drhd {
            flags,
            size: fixed.size,
            segment,
            register_base,
            scopes: parse_scopes(scope_bytes, offset + DRHD_FIXED_LEN)?,
        })
    }
}

impl Iterator for Structures<'_> {
    type Item = Result<Structure, DmarError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.table.len() {
            return None;
        }
        let result = self.next_structure();
        self.failed = result.is_err();
        Some(result)
    }
}

impl core::iter::FusedIterator for Structures<'_> {}

/// The smallest valid length of a structure of `kind`: its fixed part, or just the type and
/// length header for types this parser skips.
const fn minimum_length(kind: u16) -> usize {
    match kind {
        kind::DRHD => DRHD_FIXED_LEN,
        kind::RMRR => RMRR_FIXED_LEN,
        kind::ATSR | kind::SATC => FLAGS_SEGMENT_FIXED_LEN,
        kind::RHSA => RHSA_LEN,
        kind::ANDD => ANDD_FIXED_LEN,
        _ => STRUCTURE_HEADER_LEN,
    }
}

/// Splits a structure whose length `next_structure` checked into its fixed part and the rest.
fn fixed_part<T>(bytes: &[u8], offset: usize) -> Result<(&T, &[u8]), DmarError>
where
    T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable,
{
    // Unreachable for lengths `next_structure` accepted; an error rather than a panic anyway.
    T::ref_from_prefix(bytes).map_err(|_| DmarError::StructureTooShort {
        offset,
        kind: bytes
            .first_chunk::<2>()
            .map_or(0, |kind| u16::from_le_bytes(*kind)),
        length: u16::try_from(bytes.len()).unwrap_or(u16::MAX),
        minimum: size_of::<T>(),
    })
}

fn parse_rmrr(bytes: &[u8], offset: usize) -> Result<Rmrr, DmarError> {
    let (fixed, scope_bytes) = fixed_part::<RmrrFixed>(bytes, offset)?;
    let base = fixed.base.get();
    let limit = fixed.limit.get();
    if limit < base {
        return Err(DmarError::InvertedReservedRegion {
            offset,
            base,
            limit,
        });
    }
    // `limit + 1` must be page aligned; a limit of u64::MAX has no representable end.
    let end_aligned = limit
        .checked_add(1)
        .is_some_and(|end| end.is_multiple_of(PAGE_SIZE));
    if !base.is_multiple_of(PAGE_SIZE) || !end_aligned {
        return Err(DmarError::MisalignedReservedRegion {
            offset,
            base,
            limit,
        });
    }
    Ok(Rmrr {
        segment: fixed.segment.get(),
        base,
        limit,
        scopes: parse_scopes(scope_bytes, offset + RMRR_FIXED_LEN)?,
    })
}

/// ATSR and SATC share a layout: flags, reserved byte, segment, device scopes.
fn parse_flags_segment(
    bytes: &[u8],
    offset: usize,
) -> Result<(u8, u16, Vec<super::scope::DeviceScope>), DmarError> {
    let (fixed, scope_bytes) = fixed_part::<FlagsSegmentFixed>(bytes, offset)?;
    let scopes = parse_scopes(scope_bytes, offset + FLAGS_SEGMENT_FIXED_LEN)?;
    Ok((fixed.flags, fixed.segment.get(), scopes))
}

fn parse_rhsa(bytes: &[u8], offset: usize) -> Result<Rhsa, DmarError> {
    // Bytes past the 20 the spec defines (none in real tables) are ignored.
    let (fixed, _) = fixed_part::<RhsaFixed>(bytes, offset)?;
    Ok(Rhsa {
        register_base: fixed.register_base.get(),
        proximity_domain: fixed.proximity_domain.get(),
    })
}

fn parse_andd(bytes: &[u8], offset: usize) -> Result<Andd, DmarError> {
    let (fixed, name_bytes) = fixed_part::<AnddFixed>(bytes, offset)?;
    // The name is NUL-terminated; firmware pads the structure after it.
    let name_len = name_bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(name_bytes.len());
    Ok(Andd {
        device_number: fixed.device_number,
        name: name_bytes.get(..name_len).unwrap_or(&[]).to_vec(),
    })
}

//! Byte layouts of the DMAR table and its remapping structures, as safe little-endian views.
//!
//! Every type here is `FromBytes + KnownLayout + Immutable + Unaligned`, so a view is taken
//! from any `&[u8]` with `ref_from_prefix` (no alignment requirement, no `unsafe`). Field
//! offsets and sizes follow the Intel VT-d specification, chapter 8 ("BIOS Considerations");
//! the size of each layout is checked at compile time below. These views are private to the
//! parser: callers see the validated, owned model in the sibling modules.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The 36-byte header every ACPI system description table starts with (ACPI 6.x, 5.2.6).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct SdtHeader {
    pub(super) signature: [u8; 4],
    /// Length of the whole table in bytes, this header included.
    pub(super) length: U32,
    pub(super) revision: u8,
    /// Chosen so that all `length` bytes of the table sum to zero (mod 256).
    pub(super) checksum: u8,
    pub(super) oem_id: [u8; 6],
    pub(super) oem_table_id: [u8; 8],
    pub(super) oem_revision: U32,
    pub(super) creator_id: [u8; 4],
    pub(super) creator_revision: U32,
}

/// The DMAR table's fixed part: the SDT header, then HAW, flags and 10 reserved bytes
/// (VT-d 8.1, "DMA Remapping Reporting Structure").
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct DmarHeader {
    pub(super) sdt: SdtHeader,
    /// Host address width minus one (the platform addresses `value + 1` bits).
    pub(super) host_address_width: u8,
    pub(super) flags: u8,
    pub(super) reserved: [u8; 10],
}

/// Type and length, the first four bytes of every remapping structure (VT-d 8.2).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct StructureHeader {
    pub(super) kind: U16,
    /// Length of the structure in bytes, this header and any device scopes included.
    pub(super) length: U16,
}

/// DMA Remapping Hardware Unit Definition, fixed part (VT-d 8.3, type 0).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct DrhdFixed {
    pub(super) header: StructureHeader,
    pub(super) flags: u8,
    /// Bits 3:0: the register set spans 2^N 4 KiB pages. Reserved (zero) before VT-d 3.x,
    /// which reads as one page, the historical size.
    pub(super) size: u8,
    pub(super) segment: U16,
    pub(super) register_base: U64,
}

/// Reserved Memory Region Reporting structure, fixed part (VT-d 8.4, type 1).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct RmrrFixed {
    pub(super) header: StructureHeader,
    pub(super) reserved: U16,
    pub(super) segment: U16,
    pub(super) base: U64,
    /// The last byte of the region (inclusive).
    pub(super) limit: U64,
}

/// The shape shared by the Root Port ATS Capability Reporting structure (VT-d 8.5, type 2)
/// and the SoC Integrated Address Translation Cache structure (VT-d 8.8, type 5): flags, a
/// reserved byte and a segment, then device scopes.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct FlagsSegmentFixed {
    pub(super) header: StructureHeader,
    pub(super) flags: u8,
    pub(super) reserved: u8,
    pub(super) segment: U16,
}

/// Remapping Hardware Static Affinity structure (VT-d 8.6, type 3).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct RhsaFixed {
    pub(super) header: StructureHeader,
    pub(super) reserved: U32,
    pub(super) register_base: U64,
    pub(super) proximity_domain: U32,
}

/// ACPI Name-space Device Declaration structure, fixed part (VT-d 8.7, type 4); the
/// NUL-terminated ASCII object name follows.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct AnddFixed {
    pub(super) header: StructureHeader,
    pub(super) reserved: [u8; 3],
    pub(super) device_number: u8,
}

/// Device Scope structure, fixed part (VT-d 8.3.1); `(device, function)` pairs follow.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct ScopeFixed {
    pub(super) kind: u8,
    /// Length of this scope entry in bytes: 6 plus 2 per path element.
    pub(super) length: u8,
    /// Reserved before VT-d 4.0, scope flags since.
    pub(super) flags: u8,
    pub(super) reserved: u8,
    pub(super) enumeration_id: u8,
    pub(super) start_bus: u8,
}

/// One hop of a device scope path.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct PathPair {
    pub(super) device: u8,
    pub(super) function: u8,
}

/// Size of the SDT header.
pub(super) const SDT_HEADER_LEN: usize = size_of::<SdtHeader>();
/// Size of the DMAR table's fixed part; remapping structures start here.
pub(super) const DMAR_HEADER_LEN: usize = size_of::<DmarHeader>();
/// Size of a remapping structure's type/length header.
pub(super) const STRUCTURE_HEADER_LEN: usize = size_of::<StructureHeader>();
/// Fixed part of a DRHD, before its device scopes.
pub(super) const DRHD_FIXED_LEN: usize = size_of::<DrhdFixed>();
/// Fixed part of an RMRR, before its device scopes.
pub(super) const RMRR_FIXED_LEN: usize = size_of::<RmrrFixed>();
/// Fixed part of an ATSR or SATC, before its device scopes.
pub(super) const FLAGS_SEGMENT_FIXED_LEN: usize = size_of::<FlagsSegmentFixed>();
/// Size of an RHSA.
pub(super) const RHSA_LEN: usize = size_of::<RhsaFixed>();
/// Fixed part of an ANDD, before its object name.
pub(super) const ANDD_FIXED_LEN: usize = size_of::<AnddFixed>();
/// Fixed part of a device scope, before its path.
pub(super) const SCOPE_FIXED_LEN: usize = size_of::<ScopeFixed>();
/// Size of one path element.
pub(super) const PATH_PAIR_LEN: usize = size_of::<PathPair>();

// The spec's sizes; a wrong field type above fails the build here.
const _: () = assert!(SDT_HEADER_LEN == 36);
const _: () = assert!(DMAR_HEADER_LEN == 48);
const _: () = assert!(STRUCTURE_HEADER_LEN == 4);
const _: () = assert!(DRHD_FIXED_LEN == 16);
const _: () = assert!(RMRR_FIXED_LEN == 24);
const _: () = assert!(FLAGS_SEGMENT_FIXED_LEN == 8);
const _: () = assert!(RHSA_LEN == 20);
const _: () = assert!(ANDD_FIXED_LEN == 8);
const _: () = assert!(SCOPE_FIXED_LEN == 6);
const _: () = assert!(PATH_PAIR_LEN == 2);

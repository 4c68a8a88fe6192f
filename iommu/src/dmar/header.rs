//! The DMAR table header: ACPI signature, length and checksum checks, and the platform flags
//! (VT-d 8.1).

use bitflags::bitflags;
use zerocopy::FromBytes;

use super::error::DmarError;
use super::layout::{DMAR_HEADER_LEN, DmarHeader};

/// The signature a DMAR table starts with.
pub const SIGNATURE: [u8; 4] = *b"DMAR";

bitflags! {
    /// The DMAR table's Flags byte (VT-d 8.1). Bits this version does not name are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct DmarFlags: u8 {
        /// The platform supports interrupt remapping.
        const INTR_REMAP = 1 << 0;
        /// Firmware asks the OS not to enable x2APIC mode (only meaningful with INTR_REMAP).
        const X2APIC_OPT_OUT = 1 << 1;
        /// Firmware set up DMA protection before handing over and asks the OS to keep
        /// remapping enabled (Kernel DMA Protection).
        const DMA_CTRL_PLATFORM_OPT_IN = 1 << 2;
        // Reserved bits are retained, not dropped, so a boot report shows them.
        const _ = !0;
    }
}

/// Whether [`Dmar::parse_with`](super::Dmar::parse_with) insists on a valid checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumPolicy {
    /// A table whose bytes do not sum to zero is rejected with
    /// [`DmarError::BadChecksum`]. Use this for anything the kernel acts on.
    #[default]
    Verify,
    /// Parse anyway and record the result in [`TableHeader::checksum_valid`]. For
    /// diagnostics only (dumping a table firmware got wrong): every other check still runs,
    /// but a bad checksum usually means corrupt or truncated bytes.
    Ignore,
}

/// How [`Dmar::parse_with`](super::Dmar::parse_with) and
/// [`Structures::new`](super::Structures::new) treat a table. `Default` is
/// [`ParseOptions::STRICT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Whether a bad checksum rejects the table.
    pub checksum: ChecksumPolicy,
}

impl ParseOptions {
    /// Every check, the checksum included. What [`Dmar::parse`](super::Dmar::parse) uses.
    pub const STRICT: ParseOptions = ParseOptions {
        checksum: ChecksumPolicy::Verify,
    };

    /// Every check except the checksum, for dumping a table firmware got wrong.
    pub const DIAGNOSTIC: ParseOptions = ParseOptions {
        checksum: ChecksumPolicy::Ignore,
    };

    /// These options with `checksum` as the checksum policy.
    pub const fn with_checksum(self, checksum: ChecksumPolicy) -> ParseOptions {
        ParseOptions { checksum }
    }
}

/// The identifying fields of the table's ACPI header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHeader {
    length: u32,
    revision: u8,
    checksum: u8,
    checksum_valid: bool,
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    oem_revision: u32,
    creator_id: [u8; 4],
    creator_revision: u32,
}

impl TableHeader {
    /// The table length in bytes, header included (a validated length field).
    pub const fn length(&self) -> u32 {
        self.length
    }

    /// The DMAR revision (1 on most firmware and on QEMU).
    pub const fn revision(&self) -> u8 {
        self.revision
    }

    /// The checksum byte as stored.
    pub const fn checksum(&self) -> u8 {
        self.checksum
    }

    /// Whether the table's bytes sum to zero. Always true unless the table was parsed with
    /// [`ChecksumPolicy::Ignore`].
    pub const fn checksum_valid(&self) -> bool {
        self.checksum_valid
    }

    /// OEM ID, 6 bytes, usually space-padded ASCII (`BOCHS ` on QEMU).
    pub const fn oem_id(&self) -> &[u8; 6] {
        &self.oem_id
    }

    /// OEM table ID, 8 bytes (`BXPC    ` on QEMU).
    pub const fn oem_table_id(&self) -> &[u8; 8] {
        &self.oem_table_id
    }

    /// OEM revision.
    pub const fn oem_revision(&self) -> u32 {
        self.oem_revision
    }

    /// Creator ID, 4 bytes (`BXPC` on QEMU).
    pub const fn creator_id(&self) -> &[u8; 4] {
        &self.creator_id
    }

    /// Creator revision.
    pub const fn creator_revision(&self) -> u32 {
        self.creator_revision
    }
}

/// What the header parse hands on to the structure walker.
pub(super) struct ParsedHeader<'a> {
    pub(super) header: TableHeader,
    pub(super) host_address_width: u8,
    pub(super) flags: DmarFlags,
    /// Exactly `length` bytes: bytes past the length field (a mapping rounded up to pages)
    /// are not part of the table and are never looked at.
    pub(super) table: &'a [u8],
}

/// Checks the header of the table at the start of `bytes` and cuts the slice to its length.
pub(super) fn parse_header(
    bytes: &[u8],
    policy: ChecksumPolicy,
) -> Result<ParsedHeader<'_>, DmarError> {
    let Ok((raw, _)) = DmarHeader::ref_from_prefix(bytes) else {
        return Err(DmarError::TruncatedHeader {
            available: bytes.len(),
        });
    };
    if raw.sdt.signature != SIGNATURE {
        return Err(DmarError::BadSignature {
            found: raw.sdt.signature,
        });
    }
    let length = raw.sdt.length.get();
    // A u32 always fits a usize on the 64-bit targets this crate builds for; on anything
    // smaller the conversion failing means "longer than any slice", which is what we report.
    let table_len = usize::try_from(length).unwrap_or(usize::MAX);
    if table_len < DMAR_HEADER_LEN {
        return Err(DmarError::LengthBelowHeader { length });
    }
    let Some(table) = bytes.get(..table_len) else {
        return Err(DmarError::LengthExceedsSlice {
            length,
            available: bytes.len(),
        });
    };
    let sum = checksum(table);
    if sum != 0 && policy == ChecksumPolicy::Verify {
        return Err(DmarError::BadChecksum {
            stored: raw.sdt.checksum,
            sum,
        });
    }
    // HAW is "N where the platform addresses N+1 bits"; past 63 that is more than 64 bits.
    if raw.host_address_width > 63 {
        return Err(DmarError::InvalidHostAddressWidth {
            raw: raw.host_address_width,
        });
    }
    Ok(ParsedHeader {
        header: TableHeader {
            length,
            revision: raw.sdt.revision,
            checksum: raw.sdt.checksum,
            checksum_valid: sum == 0,
            oem_id: raw.sdt.oem_id,
            oem_table_id: raw.sdt.oem_table_id,
            oem_revision: raw.sdt.oem_revision.get(),
            creator_id: raw.sdt.creator_id,
            creator_revision: raw.sdt.creator_revision.get(),
        },
        host_address_width: raw.host_address_width,
        flags: DmarFlags::from_bits_retain(raw.flags),
        table,
    })
}

/// The 8-bit sum of `bytes`; zero for a table with a correct ACPI checksum.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

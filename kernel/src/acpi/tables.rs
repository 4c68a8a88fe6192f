//! The ACPI table listing: every table reachable from the RSDP (root, each root entry, and the
//! DSDT and FACS named by the FADT) with the result of its checks. A bad entry is reported and
//! skipped, never trusted, and never stops the listing.

pub use super::{AcpiError, PhysRead, ReadError, Rsdp, find_rsdp, read_rsdp};

use super::{Printable, checksum};
use alloc::vec::Vec;
use core::fmt;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// Length of the common System Description Table header.
pub const HEADER_LENGTH: u32 = 36;
/// Largest table length believed; anything longer is reported as [`TableStatus::BadLength`].
pub const MAX_TABLE_LENGTH: u32 = 16 << 20;
/// Smallest valid FACS (its fixed 64-byte structure, ACPI 6.5 section 5.2.10).
const FACS_MIN_LENGTH: u32 = 64;
/// Offset of the FACS version byte, shown as its revision.
const FACS_VERSION_OFFSET: usize = 32;

/// The System Description Table header, ACPI 6.5 section 5.2.6.
#[derive(FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct SdtHeader {
    signature: [u8; 4],
    length: U32,
    revision: u8,
    _checksum: u8,
    oem_id: [u8; 6],
    _oem_table_id: [u8; 8],
    _oem_revision: U32,
    _creator_id: U32,
    _creator_revision: U32,
}

/// The FADT fields that point at other tables, ACPI 6.5 section 5.2.9 (offsets 36..148).
#[derive(FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct FadtPointers {
    firmware_ctrl: U32,
    dsdt: U32,
    _between: [u8; 88],
    x_firmware_ctrl: U64,
    x_dsdt: U64,
}

/// FADT length up to and including `X_FIRMWARE_CTRL` / `X_DSDT`.
const FADT_X_FIRMWARE_CTRL_END: u32 = 140;
const FADT_X_DSDT_END: u32 = 148;
/// FADT length up to and including `DSDT`.
const FADT_DSDT_END: u32 = 44;

/// The result of checking one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStatus {
    /// Signature, length and checksum are valid (the FACS has no checksum).
    Ok,
    /// The bytes do not sum to zero.
    BadChecksum {
        /// Their sum.
        sum: u8,
    },
    /// The length field is below the header size or above [`MAX_TABLE_LENGTH`].
    BadLength {
        /// The length field.
        length: u32,
    },
    /// Some of the table's bytes cannot be read.
    Unreadable,
    /// A pointer to a specific table (RSDT, XSDT, DSDT, FACS) lands on another signature.
    SignatureMismatch {
        /// The signature the pointer promised.
        expected: [u8; 4],
    },
    /// The pointer is zero.
    NullAddress,
}

impl fmt::Display for TableStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableStatus::Ok => f.write_str("checksum ok"),
            TableStatus::BadChecksum { sum } => write!(f, "BAD CHECKSUM (sum {sum:#04x})"),
            TableStatus::BadLength { length } => write!(f, "BAD LENGTH {length}"),
            TableStatus::Unreadable => f.write_str("UNREADABLE"),
            TableStatus::SignatureMismatch { expected } => {
                write!(f, "SIGNATURE MISMATCH (expected {})", Printable(expected))
            }
            TableStatus::NullAddress => f.write_str("NULL ADDRESS"),
        }
    }
}

/// One table as found. Fields other than `address` and `status` are as read from memory and are
/// meaningful only as far as `status` says (zero when unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    /// Signature read from the table, or the expected one if it could not be read.
    pub signature: [u8; 4],
    /// Physical address of the table.
    pub address: u64,
    /// Length field.
    pub length: u32,
    /// Revision field (for the FACS, its version byte).
    pub revision: u8,
    /// OEM ID (all zero for the FACS, which has none).
    pub oem_id: [u8; 6],
    /// Result of the checks.
    pub status: TableStatus,
}

impl TableInfo {
    fn new(signature: [u8; 4], address: u64, status: TableStatus) -> TableInfo {
        TableInfo {
            signature,
            address,
            length: 0,
            revision: 0,
            oem_id: [0; 6],
            status,
        }
    }

    fn is_facs(&self) -> bool {
        &self.signature == b"FACS"
    }
}

impl fmt::Display for TableInfo {
    /// `DMAR @ 0x000000001ffe2000 len 80 rev 1 oem BOCHS  checksum ok`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} @ {:#018x} len {} rev {} oem ",
            Printable(&self.signature),
            self.address,
            self.length,
            self.revision,
        )?;
        if self.is_facs() {
            // The FACS has neither an OEM ID nor a checksum.
            f.write_str("-      ")?;
            match self.status {
                TableStatus::Ok => f.write_str("ok (no checksum)"),
                status => write!(f, "{status}"),
            }
        } else {
            write!(f, "{} {}", Printable(&self.oem_id), self.status)
        }
    }
}

/// Every table found, in discovery order: the root table(s) tried, the root's entries, then the
/// DSDT and FACS named by the first valid FADT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableList {
    tables: Vec<TableInfo>,
}

impl TableList {
    /// All tables, including the ones that failed their checks.
    pub fn iter(&self) -> core::slice::Iter<'_, TableInfo> {
        self.tables.iter()
    }

    /// The first table with `signature` whose status is [`TableStatus::Ok`].
    pub fn find(&self, signature: [u8; 4]) -> Option<&TableInfo> {
        self.tables
            .iter()
            .find(|table| table.signature == signature && table.status == TableStatus::Ok)
    }

    /// Number of tables listed.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether nothing was listed.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

impl<'a> IntoIterator for &'a TableList {
    type Item = &'a TableInfo;
    type IntoIter = core::slice::Iter<'a, TableInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Lists every table reachable from `rsdp`.
///
/// The XSDT is used when the RSDP names one and it passes its checks; otherwise the RSDT (the
/// failed XSDT stays in the list so the report shows why). Fails only if no root table is valid.
pub fn list_tables<M: PhysRead + ?Sized>(mem: &M, rsdp: &Rsdp) -> Result<TableList, AcpiError> {
    let mut tables = Vec::new();
    let mut root = None;
    if let Some(address) = rsdp.xsdt_address {
        let xsdt = probe(mem, address, Some(*b"XSDT"));
        tables.push(xsdt);
        if xsdt.status == TableStatus::Ok {
            root = Some((xsdt, 8));
        }
    }
    if root.is_none() && rsdp.rsdt_address != 0 {
        let rsdt = probe(mem, u64::from(rsdp.rsdt_address), Some(*b"RSDT"));
        tables.push(rsdt);
        if rsdt.status == TableStatus::Ok {
            root = Some((rsdt, 4));
        }
    }
    let (root, entry_size) = match (root, tables.last()) {
        (Some(root), _) => root,
        (None, Some(failed)) => {
            return Err(AcpiError::RootTable {
                signature: failed.signature,
                address: failed.address,
                status: failed.status,
            });
        }
        (None, None) => return Err(AcpiError::NoRootTable),
    };

    // A trailing partial entry (length not a multiple of the entry size) is ignored.
    let count = (root.length - HEADER_LENGTH) / entry_size;
    for index in 0..count {
        let offset = HEADER_LENGTH + index * entry_size;
        // Cannot overflow: the whole root table was just read for its checksum.
        let at = root.address.saturating_add(u64::from(offset));
        let mut entry = [0u8; 8];
        let entry = entry
            .get_mut(..entry_size as usize)
            .ok_or(AcpiError::Unreadable { address: at })?;
        mem.read(at, entry)
            .map_err(|_| AcpiError::Unreadable { address: at })?;
        let address = entry
            .iter()
            .rev()
            .fold(0u64, |value, &byte| value << 8 | u64::from(byte));
        tables.push(probe(mem, address, None));
    }

    let fadt = tables
        .iter()
        .find(|table| &table.signature == b"FACP" && table.status == TableStatus::Ok)
        .copied();
    if let Some(fadt) = fadt {
        let pointers = fadt_pointers(mem, &fadt);
        let (x_dsdt, dsdt, x_facs, facs) = pointers;
        follow(&mut tables, x_dsdt, dsdt, |address| {
            probe(mem, address, Some(*b"DSDT"))
        });
        follow(&mut tables, x_facs, facs, |address| {
            probe_facs(mem, address)
        });
    }
    Ok(TableList { tables })
}

/// Copies a table that was listed as [`TableStatus::Ok`], checking again that it still matches
/// its listing (firmware memory should not change, but nothing here trusts that it does not).
pub fn read_table<M: PhysRead + ?Sized>(mem: &M, table: &TableInfo) -> Result<Vec<u8>, AcpiError> {
    if table.status != TableStatus::Ok {
        return Err(AcpiError::TableNotOk {
            status: table.status,
        });
    }
    let length = table.length;
    let size = usize::try_from(length).map_err(|_| AcpiError::OutOfMemory { length })?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(size)
        .map_err(|_| AcpiError::OutOfMemory { length })?;
    bytes.resize(size, 0);
    mem.read(table.address, &mut bytes)
        .map_err(|_| AcpiError::Unreadable {
            address: table.address,
        })?;
    let same_signature = bytes.get(..4) == Some(table.signature.as_slice());
    let same_length = bytes.get(4..8) == Some(length.to_le_bytes().as_slice());
    let checksum_ok = table.is_facs() || super::sum_bytes(&bytes) == 0;
    if same_signature && same_length && checksum_ok {
        Ok(bytes)
    } else {
        Err(AcpiError::TableChanged)
    }
}

/// Reads the DSDT and FACS pointers of a valid FADT as `(X_DSDT, DSDT, X_FIRMWARE_CTRL,
/// FIRMWARE_CTRL)`, zero where the FADT is too short to have the field.
fn fadt_pointers<M: PhysRead + ?Sized>(mem: &M, fadt: &TableInfo) -> (u64, u64, u64, u64) {
    let mut bytes = [0u8; (FADT_X_DSDT_END - HEADER_LENGTH) as usize];
    let available = fadt
        .length
        .min(FADT_X_DSDT_END)
        .saturating_sub(HEADER_LENGTH) as usize;
    let Some(buffer) = bytes.get_mut(..available) else {
        return (0, 0, 0, 0);
    };
    if mem
        .read(fadt.address + u64::from(HEADER_LENGTH), buffer)
        .is_err()
    {
        return (0, 0, 0, 0);
    }
    let Ok((pointers, _)) = FadtPointers::read_from_prefix(&bytes) else {
        return (0, 0, 0, 0);
    };
    let has = |end: u32| fadt.length >= end;
    let field = |end: u32, value: u64| if has(end) { value } else { 0 };
    (
        field(FADT_X_DSDT_END, pointers.x_dsdt.get()),
        field(FADT_DSDT_END, u64::from(pointers.dsdt.get())),
        field(FADT_X_FIRMWARE_CTRL_END, pointers.x_firmware_ctrl.get()),
        field(FADT_DSDT_END, u64::from(pointers.firmware_ctrl.get())),
    )
}

/// Follows a FADT pointer pair: the 64-bit one when nonzero and valid, else the 32-bit one.
/// Every table probed is listed; a zero pair (e.g. no FACS on hardware-reduced ACPI) adds none.
fn follow(
    tables: &mut Vec<TableInfo>,
    extended: u64,
    legacy: u64,
    probe: impl Fn(u64) -> TableInfo,
) {
    if extended != 0 {
        let table = probe(extended);
        tables.push(table);
        if table.status == TableStatus::Ok || legacy == extended {
            return;
        }
    }
    if legacy != 0 {
        tables.push(probe(legacy));
    }
}

/// Checks the System Description Table at `address`: readable header, expected signature if
/// any, sane length, whole table readable and summing to zero.
fn probe<M: PhysRead + ?Sized>(mem: &M, address: u64, expected: Option<[u8; 4]>) -> TableInfo {
    let unknown = expected.unwrap_or(*b"????");
    if address == 0 {
        return TableInfo::new(unknown, address, TableStatus::NullAddress);
    }
    let mut bytes = [0u8; HEADER_LENGTH as usize];
    if mem.read(address, &mut bytes).is_err() {
        return TableInfo::new(unknown, address, TableStatus::Unreadable);
    }
    let Ok((header, _)) = SdtHeader::read_from_prefix(&bytes) else {
        return TableInfo::new(unknown, address, TableStatus::Unreadable);
    };
    let length = header.length.get();
    let mut table = TableInfo {
        signature: header.signature,
        address,
        length,
        revision: header.revision,
        oem_id: header.oem_id,
        status: TableStatus::Ok,
    };
    table.status = if expected.is_some_and(|expected| expected != header.signature) {
        TableStatus::SignatureMismatch { expected: unknown }
    } else if !(HEADER_LENGTH..=MAX_TABLE_LENGTH).contains(&length) {
        TableStatus::BadLength { length }
    } else {
        match checksum(mem, address, length) {
            Ok(0) => TableStatus::Ok,
            Ok(sum) => TableStatus::BadChecksum { sum },
            Err(ReadError) => TableStatus::Unreadable,
        }
    };
    table
}

/// Checks the FACS at `address`: it has no SDT header and no checksum, only a signature, a
/// length of at least 64 and a version byte.
fn probe_facs<M: PhysRead + ?Sized>(mem: &M, address: u64) -> TableInfo {
    if address == 0 {
        return TableInfo::new(*b"FACS", address, TableStatus::NullAddress);
    }
    let mut bytes = [0u8; FACS_MIN_LENGTH as usize];
    if mem.read(address, &mut bytes).is_err() {
        return TableInfo::new(*b"FACS", address, TableStatus::Unreadable);
    }
    let mut signature = [0u8; 4];
    let mut length = [0u8; 4];
    signature.copy_from_slice(bytes.get(..4).unwrap_or(&[0; 4]));
    length.copy_from_slice(bytes.get(4..8).unwrap_or(&[0; 4]));
    let length = u32::from_le_bytes(length);
    let mut table = TableInfo {
        signature,
        address,
        length,
        revision: bytes.get(FACS_VERSION_OFFSET).copied().unwrap_or(0),
        oem_id: [0; 6],
        status: TableStatus::Ok,
    };
    table.status = if &signature != b"FACS" {
        TableStatus::SignatureMismatch { expected: *b"FACS" }
    } else if !(FACS_MIN_LENGTH..=MAX_TABLE_LENGTH).contains(&length) {
        TableStatus::BadLength { length }
    } else if checksum(mem, address, length).is_err() {
        // Not a checksum: just proof that every byte the length claims is readable.
        TableStatus::Unreadable
    } else {
        TableStatus::Ok
    };
    table
}

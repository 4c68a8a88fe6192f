//! Legacy-mode root entry (VT-d spec 9.1): one per PCI bus, pointing at that bus's context table.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{EntryError, PhysAddr, field};

const PRESENT: u64 = 1 << 0;
const CONTEXT_TABLE_MASK: u64 = 0xFFFF_FFFF_FFFF_F000;

/// A 128-bit legacy root entry (VT-d spec 9.1, "Root Entry").
///
/// * `lo` bit 0: P (present); bits 63:12: context-table pointer (CTP). Bits 11:1 are reserved.
/// * `hi`: reserved in legacy mode and always 0 here (QEMU raises fault 0xA otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RootEntry {
    lo: u64,
    hi: u64,
}

impl RootEntry {
    /// A not-present root entry: requests from this bus fault with reason 1.
    pub const NOT_PRESENT: Self = Self { lo: 0, hi: 0 };

    /// A present entry pointing at a 4 KiB-aligned context table.
    pub const fn present(context_table: PhysAddr) -> Result<Self, EntryError> {
        match context_table.require_4k() {
            Ok(table) => Ok(Self {
                lo: table.as_u64() | PRESENT,
                hi: 0,
            }),
            Err(error) => Err(error),
        }
    }

    /// Reinterprets the two 64-bit halves read from a root table.
    pub const fn from_raw(lo: u64, hi: u64) -> Self {
        Self { lo, hi }
    }

    /// The low 64 bits, as stored at byte offset 0 of the entry.
    pub const fn lo(self) -> u64 {
        self.lo
    }

    /// The high 64 bits, as stored at byte offset 8 of the entry.
    pub const fn hi(self) -> u64 {
        self.hi
    }

    /// Whether P is set.
    pub const fn is_present(self) -> bool {
        field(self.lo, 0, 1) == 1
    }

    /// The context-table pointer, if the entry is present.
    pub const fn context_table(self) -> Option<PhysAddr> {
        if self.is_present() {
            Some(PhysAddr::new_truncate(self.lo & CONTEXT_TABLE_MASK))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_entry_encoding() {
        let table = PhysAddr::new(0x1234_5000).unwrap();
        let entry = RootEntry::present(table).unwrap();
        assert_eq!((entry.lo(), entry.hi()), (0x1234_5001, 0));
        assert_eq!(entry.context_table(), Some(table));
        assert_eq!(entry.as_bytes().len(), 16);
    }

    #[test]
    fn rejects_misaligned_table() {
        let table = PhysAddr::new(0x1234_5008).unwrap();
        assert_eq!(RootEntry::present(table), Err(EntryError::Misaligned));
    }

    #[test]
    fn not_present() {
        assert_eq!(RootEntry::NOT_PRESENT.context_table(), None);
        assert_eq!(RootEntry::from_raw(0x5000, 0).context_table(), None);
    }
}

//! Physical Region Page entries for one transfer (NVMe 1.4, 4.3): PRP1 names the first byte
//! (any dword-aligned offset), every later page starts on a page boundary. Two pages fit in
//! PRP1 and PRP2; more need a PRP list, whose address goes in PRP2. This driver uses one list
//! page (512 entries), never a chained list, which bounds a transfer (see [`MAX_LIST_ENTRIES`]).

use crate::registers::PAGE_SIZE;
use alloc::vec::Vec;

/// Entries in one PRP list page.
pub(crate) const MAX_LIST_ENTRIES: usize = PAGE_SIZE / 8;

const PAGE: u64 = PAGE_SIZE as u64;

/// What goes in PRP2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Second {
    /// The transfer ends in the first page: PRP2 is 0.
    Unused,
    /// The transfer ends in the second page, which PRP2 names.
    Page(u64),
    /// The pages after the first, in order: they go in a PRP list that PRP2 points at.
    List(Vec<u64>),
}

/// The PRP entries of one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// PRP1: the IOVA of the first byte.
    pub(crate) first: u64,
    /// PRP2, or the list it points at.
    pub(crate) second: Second,
}

/// Why a transfer cannot be described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrpError {
    /// Empty, or the start is not dword aligned.
    Shape,
    /// More pages than PRP1 and one list page can name.
    TooManyPages,
}

/// The PRP entries for `len` bytes at IOVA `start` (contiguous in the device's address space).
pub(crate) fn plan(start: u64, len: usize) -> Result<Plan, PrpError> {
    if len == 0 || !start.is_multiple_of(4) {
        return Err(PrpError::Shape);
    }
    let in_first_page = (PAGE - start % PAGE) as usize;
    let second = if len <= in_first_page {
        Second::Unused
    } else {
        let next = start - start % PAGE + PAGE;
        let pages = (len - in_first_page).div_ceil(PAGE_SIZE);
        if pages == 1 {
            Second::Page(next)
        } else if pages <= MAX_LIST_ENTRIES {
            Second::List((0..pages as u64).map(|i| next + i * PAGE).collect())
        } else {
            return Err(PrpError::TooManyPages);
        }
    };
    Ok(Plan {
        first: start,
        second,
    })
}

/// A PRP list as the bytes of its page (little-endian entries).
pub(crate) fn list_bytes(entries: &[u64]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x7_0000_0000;

    fn pages(first: u64, count: u64) -> Vec<u64> {
        (0..count).map(|i| first + i * PAGE).collect()
    }

    #[test]
    fn one_page_needs_only_prp1() {
        for (start, len) in [
            (BASE, 512),
            (BASE, 4096),
            (BASE + 0x800, 0x800),
            (BASE + 4, 8),
        ] {
            assert_eq!(
                plan(start, len),
                Ok(Plan {
                    first: start,
                    second: Second::Unused
                }),
                "{start:#x} + {len}"
            );
        }
    }

    #[test]
    fn two_pages_put_the_second_in_prp2() {
        assert_eq!(plan(BASE, 8192).unwrap().second, Second::Page(BASE + PAGE));
        assert_eq!(plan(BASE, 4097).unwrap().second, Second::Page(BASE + PAGE));
        // Unaligned: 0x200 bytes left in the first page, the rest in the next.
        assert_eq!(
            plan(BASE + 0xe00, 0x1200),
            Ok(Plan {
                first: BASE + 0xe00,
                second: Second::Page(BASE + PAGE)
            })
        );
    }

    #[test]
    fn three_or_more_pages_use_a_list_of_the_pages_after_the_first() {
        assert_eq!(
            plan(BASE, 3 * 4096).unwrap().second,
            Second::List(pages(BASE + PAGE, 2))
        );
        assert_eq!(
            plan(BASE, 3 * 4096 + 1).unwrap().second,
            Second::List(pages(BASE + PAGE, 3))
        );
        assert_eq!(
            plan(BASE, 128 * 1024).unwrap().second,
            Second::List(pages(BASE + PAGE, 31))
        );
        // Unaligned start: 2 pages' worth starting mid-page touches three pages.
        let plan3 = plan(BASE + 0x10, 8192).unwrap();
        assert_eq!(plan3.first, BASE + 0x10);
        assert_eq!(plan3.second, Second::List(pages(BASE + PAGE, 2)));
        // Ending exactly on a page boundary adds no entry.
        let exact = plan(BASE + 0xc00, 0x400 + 3 * 4096).unwrap();
        assert_eq!(exact.second, Second::List(pages(BASE + PAGE, 3)));
    }

    #[test]
    fn one_list_page_is_the_limit() {
        let most = PAGE_SIZE * (MAX_LIST_ENTRIES + 1);
        assert!(
            matches!(plan(BASE, most).unwrap().second, Second::List(l) if l.len() == MAX_LIST_ENTRIES)
        );
        assert_eq!(plan(BASE, most + 1), Err(PrpError::TooManyPages));
    }

    #[test]
    fn empty_or_unaligned_starts_are_refused() {
        assert_eq!(plan(BASE, 0), Err(PrpError::Shape));
        assert_eq!(plan(BASE + 2, 16), Err(PrpError::Shape));
    }

    #[test]
    fn list_entries_are_little_endian() {
        let bytes = list_bytes(&[0x1122_3344_5566_7000, 1]);
        assert_eq!(
            &bytes[..8],
            &[0x00, 0x70, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(&bytes[8..], &[1, 0, 0, 0, 0, 0, 0, 0]);
    }
}

//! The shape of a second-level table: how many levels, how many IOVA bits it translates, and
//! which superpage sizes the hardware accepts. Chosen from CAP (VT-d spec 10.4.2) by pure
//! functions so the choice is testable on the host.

use bitflags::bitflags;

use crate::entries::{ContextAddressWidth, PageSize};

/// Number of second-level table levels (VT-d spec 3.7, 9.3 AW). Five-level (57-bit) tables are
/// not supported: no QEMU configuration offers them and Moat needs far less address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Levels {
    /// 3 levels, 39-bit IOVAs (SAGAW bit 1, context AW = 1).
    Three,
    /// 4 levels, 48-bit IOVAs (SAGAW bit 2, context AW = 2).
    Four,
}

impl Levels {
    /// Number of levels.
    pub const fn count(self) -> u8 {
        match self {
            Self::Three => 3,
            Self::Four => 4,
        }
    }

    /// IOVA bits the table format can translate (the AGAW).
    pub const fn width_bits(self) -> u8 {
        match self {
            Self::Three => 39,
            Self::Four => 48,
        }
    }

    /// The AW value a context entry pointing at such a table must carry.
    pub const fn context_address_width(self) -> ContextAddressWidth {
        match self {
            Self::Three => ContextAddressWidth::Bits39,
            Self::Four => ContextAddressWidth::Bits48,
        }
    }

    const fn sagaw_bit(self) -> u8 {
        match self {
            Self::Three => 1 << 1,
            Self::Four => 1 << 2,
        }
    }

    /// Picks the level count from CAP.SAGAW (bits 12:8, shifted down) and CAP.MGAW (bits 21:16,
    /// shifted down; the width is MGAW + 1) for IOVAs of `wanted_bits` bits. See
    /// [`Geometry::from_cap`] for the rule.
    pub const fn from_cap(sagaw: u8, mgaw: u8, wanted_bits: u8) -> Option<Self> {
        match Geometry::from_cap(sagaw, mgaw, wanted_bits) {
            Some(geometry) => Some(geometry.levels),
            None => None,
        }
    }
}

/// Levels plus the number of IOVA bits the table accepts, which may be fewer than the levels
/// could translate: hardware with MGAW = 38 (39 bits) may offer only 4-level tables
/// (CAP `0x00d2008c40660462` is such a part), and addresses at or above `2^(MGAW+1)` fault
/// (QEMU: fault 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    levels: Levels,
    iova_bits: u8,
}

impl Geometry {
    /// A table with `levels` that accepts IOVAs below `2^iova_bits`;
    /// `21 <= iova_bits <= levels.width_bits()`.
    pub const fn new(levels: Levels, iova_bits: u8) -> Option<Self> {
        if iova_bits >= 21 && iova_bits <= levels.width_bits() {
            Some(Self { levels, iova_bits })
        } else {
            None
        }
    }

    /// A table that accepts every IOVA its levels can translate.
    pub const fn full(levels: Levels) -> Self {
        Self {
            levels,
            iova_bits: levels.width_bits(),
        }
    }

    /// Chooses the geometry for IOVAs of `wanted_bits` bits from CAP.SAGAW and CAP.MGAW (raw
    /// field values).
    ///
    /// Rule: the hardware must translate `wanted_bits` (MGAW + 1 >= wanted), and among the level
    /// counts SAGAW offers, the **smallest** whose width covers `wanted_bits` wins: every level
    /// less is one memory access less per IOTLB miss and one table less per mapping. The
    /// result accepts `min(levels width, MGAW + 1)` bits. `None` if nothing fits (including
    /// hardware that offers only 5-level tables).
    ///
    /// QEMU `aw-bits=48` (SAGAW 0x6, MGAW 47): 39 wanted gives 3 levels, 48 wanted 4 levels.
    pub const fn from_cap(sagaw: u8, mgaw: u8, wanted_bits: u8) -> Option<Self> {
        if mgaw >= 64 {
            return None;
        }
        let hardware_bits = mgaw + 1;
        if wanted_bits > hardware_bits {
            return None;
        }
        let candidates = [Levels::Three, Levels::Four];
        let mut index = 0;
        while index < candidates.len() {
            let levels = candidates[index];
            if sagaw & levels.sagaw_bit() != 0 && levels.width_bits() >= wanted_bits {
                let width = levels.width_bits();
                let iova_bits = if width < hardware_bits {
                    width
                } else {
                    hardware_bits
                };
                return Self::new(levels, iova_bits);
            }
            index += 1;
        }
        None
    }

    /// The level count.
    pub const fn levels(self) -> Levels {
        self.levels
    }

    /// IOVAs must be below `2^iova_bits()`.
    pub const fn iova_bits(self) -> u8 {
        self.iova_bits
    }

    /// `2^iova_bits()`: the first IOVA the table rejects.
    pub const fn iova_end(self) -> u64 {
        1 << self.iova_bits
    }
}

impl From<Levels> for Geometry {
    fn from(levels: Levels) -> Self {
        Self::full(levels)
    }
}

bitflags! {
    /// Superpage sizes the hardware accepts in second-level tables, from CAP.SLLPS (bits 37:34,
    /// VT-d spec 10.4.2). 4 KiB pages are always supported.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SuperpageSupport: u8 {
        /// SLLPS bit 0: 2 MiB pages (level-2 leaves).
        const SIZE_2M = 1 << 0;
        /// SLLPS bit 1: 1 GiB pages (level-3 leaves).
        const SIZE_1G = 1 << 1;
    }
}

impl SuperpageSupport {
    /// Decodes the SLLPS field (shifted down). The 512 GiB and 1 TiB bits are ignored.
    pub const fn from_sllps(sllps: u8) -> Self {
        Self::from_bits_truncate(sllps)
    }

    /// Whether pages of `size` may be mapped.
    pub const fn supports(self, size: PageSize) -> bool {
        match size {
            PageSize::Size4K => true,
            PageSize::Size2M => self.contains(Self::SIZE_2M),
            PageSize::Size1G => self.contains(Self::SIZE_1G),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CAP.SAGAW and CAP.MGAW as the decoder in `dmar`/the kernel would extract them.
    fn fields(cap: u64) -> (u8, u8) {
        (((cap >> 8) & 0x1F) as u8, ((cap >> 16) & 0x3F) as u8)
    }

    #[test]
    fn qemu_aw_bits_39() {
        let (sagaw, mgaw) = fields(0x00d2_008c_2226_0206);
        assert_eq!((sagaw, mgaw), (0x2, 38));
        assert_eq!(Levels::from_cap(sagaw, mgaw, 39), Some(Levels::Three));
        assert_eq!(
            Geometry::from_cap(sagaw, mgaw, 32),
            Geometry::new(Levels::Three, 39)
        );
        assert_eq!(Levels::from_cap(sagaw, mgaw, 40), None);
    }

    #[test]
    fn qemu_aw_bits_48_prefers_the_smallest_covering() {
        let (sagaw, mgaw) = fields(0x00d2_008c_222f_0606);
        assert_eq!((sagaw, mgaw), (0x6, 47));
        assert_eq!(Levels::from_cap(sagaw, mgaw, 39), Some(Levels::Three));
        assert_eq!(Levels::from_cap(sagaw, mgaw, 40), Some(Levels::Four));
        assert_eq!(
            Geometry::from_cap(sagaw, mgaw, 48),
            Some(Geometry::full(Levels::Four))
        );
        assert_eq!(Levels::from_cap(sagaw, mgaw, 49), None);
    }

    #[test]
    fn four_levels_with_a_39_bit_mgaw() {
        let (sagaw, mgaw) = fields(0x00d2_008c_4066_0462);
        assert_eq!((sagaw, mgaw), (0x4, 38));
        let geometry = Geometry::from_cap(sagaw, mgaw, 39).unwrap();
        assert_eq!(geometry.levels(), Levels::Four);
        assert_eq!(geometry.iova_bits(), 39);
        assert_eq!(geometry.iova_end(), 1 << 39);
    }

    #[test]
    fn unusable_capabilities() {
        assert_eq!(
            Levels::from_cap(0, 47, 39),
            None,
            "no translation (dma-translation=off)"
        );
        assert_eq!(Levels::from_cap(1 << 3, 56, 39), None, "5-level only");
        assert_eq!(Geometry::new(Levels::Three, 40), None);
        assert_eq!(Geometry::new(Levels::Three, 20), None);
    }

    #[test]
    fn superpage_support() {
        // QEMU: SLLPS = 0b0011.
        let qemu = SuperpageSupport::from_sllps(0b0011);
        assert!(qemu.supports(PageSize::Size2M) && qemu.supports(PageSize::Size1G));
        let two_meg_only = SuperpageSupport::from_sllps(0b1101);
        assert_eq!(two_meg_only, SuperpageSupport::SIZE_2M);
        assert!(!two_meg_only.supports(PageSize::Size1G));
        assert!(SuperpageSupport::empty().supports(PageSize::Size4K));
    }
}

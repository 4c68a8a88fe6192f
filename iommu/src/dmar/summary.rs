//! The boot-report text: one line per remapping structure, and the whole table as a header
//! line followed by those lines.

use core::fmt;

use super::Dmar;
use super::header::DmarFlags;
use super::scope::DeviceScope;
use super::structures::{
    Andd, Atsr, AtsrFlags, Drhd, DrhdFlags, Rhsa, Rmrr, Satc, SatcFlags, Structure,
    UnknownStructure,
};

/// Writes the names of the set flags joined by `|`, then any unnamed bits in hex, or `none`.
fn write_flags<B>(f: &mut fmt::Formatter<'_>, flags: B) -> fmt::Result
where
    B: bitflags::Flags<Bits = u8> + Copy,
{
    if flags.bits() == 0 {
        return f.write_str("none");
    }
    let mut separator = "";
    let mut unnamed = flags.bits();
    for flag in B::FLAGS.iter().filter(|flag| flag.is_named()) {
        let value = *flag.value();
        if flags.contains(value) {
            write!(f, "{separator}{}", flag.name())?;
            separator = "|";
            unnamed &= !value.bits();
        }
    }
    if unnamed != 0 {
        write!(f, "{separator}{unnamed:#04x}")?;
    }
    Ok(())
}

impl fmt::Display for DmarFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, *self)
    }
}

impl fmt::Display for DrhdFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, *self)
    }
}

impl fmt::Display for AtsrFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, *self)
    }
}

impl fmt::Display for SatcFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, *self)
    }
}

/// Writes firmware text: printable ASCII as is (ACPI paths keep their backslashes), anything
/// else as `\xNN`, so a boot report line stays one line of plain ASCII.
fn write_text(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for &byte in bytes {
        if byte.is_ascii_graphic() || byte == b' ' {
            write!(f, "{}", char::from(byte))?;
        } else {
            write!(f, "\\x{byte:02x}")?;
        }
    }
    Ok(())
}

/// Writes `: a, b, c` for a non-empty scope list, nothing for an empty one.
fn write_scopes(f: &mut fmt::Formatter<'_>, scopes: &[DeviceScope]) -> fmt::Result {
    for (index, scope) in scopes.iter().enumerate() {
        f.write_str(if index == 0 { ": " } else { ", " })?;
        write!(f, "{scope}")?;
    }
    Ok(())
}

impl fmt::Display for Drhd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DRHD segment {} registers {:#x} ({} KiB)",
            self.segment,
            self.register_base,
            self.register_set_len() / 1024
        )?;
        if self.include_pci_all() {
            f.write_str(" INCLUDE_PCI_ALL")?;
        }
        let other_flags = self.flags.difference(DrhdFlags::INCLUDE_PCI_ALL);
        if !other_flags.is_empty() {
            f.write_str(" flags ")?;
            write_flags(f, other_flags)?;
        }
        write_scopes(f, &self.scopes)
    }
}

impl fmt::Display for Rmrr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RMRR segment {} {:#x}..={:#x}",
            self.segment, self.base, self.limit
        )?;
        write_scopes(f, &self.scopes)
    }
}

impl fmt::Display for Atsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ATSR segment {} flags ", self.segment)?;
        write_flags(f, self.flags)?;
        write_scopes(f, &self.scopes)
    }
}

impl fmt::Display for Rhsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RHSA registers {:#x} proximity domain {}",
            self.register_base, self.proximity_domain
        )
    }
}

impl fmt::Display for Andd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ANDD device {} \"", self.device_number)?;
        write_text(f, &self.name)?;
        f.write_str("\"")
    }
}

impl fmt::Display for Satc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SATC segment {} flags ", self.segment)?;
        write_flags(f, self.flags)?;
        write_scopes(f, &self.scopes)
    }
}

impl fmt::Display for UnknownStructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipped structure type {} ({} bytes) at {:#x}",
            self.kind, self.length, self.offset
        )
    }
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Structure::Drhd(drhd) => drhd.fmt(f),
            Structure::Rmrr(rmrr) => rmrr.fmt(f),
            Structure::Atsr(atsr) => atsr.fmt(f),
            Structure::Rhsa(rhsa) => rhsa.fmt(f),
            Structure::Andd(andd) => andd.fmt(f),
            Structure::Satc(satc) => satc.fmt(f),
            Structure::Unknown(unknown) => unknown.fmt(f),
        }
    }
}

/// A summary for the boot report: a header line, then one line per structure (units, RMRRs,
/// ATSRs, RHSAs, ANDDs, SATCs, skipped), separated by `\n` with no trailing newline.
impl fmt::Display for Dmar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = &self.header;
        write!(f, "DMAR rev {} oem \"", header.revision())?;
        write_text(f, header.oem_id())?;
        f.write_str("\" \"")?;
        write_text(f, header.oem_table_id())?;
        write!(
            f,
            "\": {}-bit DMA addresses, flags ",
            self.address_width_bits()
        )?;
        write_flags(f, self.flags())?;
        if !header.checksum_valid() {
            f.write_str(", BAD CHECKSUM (ignored)")?;
        }
        let lines = self
            .units
            .iter()
            .map(|s| s as &dyn fmt::Display)
            .chain(self.reserved_memory.iter().map(|s| s as &dyn fmt::Display))
            .chain(self.atsr.iter().map(|s| s as &dyn fmt::Display))
            .chain(self.rhsa.iter().map(|s| s as &dyn fmt::Display))
            .chain(self.andd.iter().map(|s| s as &dyn fmt::Display))
            .chain(self.satc.iter().map(|s| s as &dyn fmt::Display))
            .chain(self.skipped.iter().map(|s| s as &dyn fmt::Display));
        for line in lines {
            write!(f, "\n{line}")?;
        }
        Ok(())
    }
}

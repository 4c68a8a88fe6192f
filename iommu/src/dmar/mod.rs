//! ACPI DMAR table parser (VT-d spec chapter 8): which VT-d units exist, which devices each
//! translates for, and the memory some devices must keep reaching.
//!
//! [`Dmar::parse`] turns the table's bytes into an owned, validated [`Dmar`]; nothing in it
//! uses `unsafe`. Byte views come from `zerocopy` over an arbitrary `&[u8]`, and every length
//! is checked before the parser moves past it. A zero-length record, a record shorter than its
//! fixed part or one running past its container is a [`DmarError`] that names the offset,
//! never a panic or a hang. Structure types this parser does not know are skipped and listed
//! in [`Dmar::skipped`].
//!
//! [`resolve_scope`] and [`unit_for_device`] map the table's device scopes onto the live PCI
//! topology, seen through [`PciTopology`]. Note that QEMU's DMAR has one DRHD *without*
//! INCLUDE_PCI_ALL and lists every root-bus device explicitly, bridges as sub-hierarchies: code
//! that only looks for the INCLUDE_PCI_ALL unit finds none there.
//!
//! ```
//! # fn demo(bytes: &[u8]) -> Result<(), moat_iommu::dmar::DmarError> {
//! use moat_iommu::dmar::Dmar;
//! let dmar = Dmar::parse(bytes)?;
//! for unit in dmar.units() {
//!     let _ = (unit.register_base(), unit.scopes().len());
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
mod header;
mod layout;
mod resolve;
mod scope;
mod structures;
mod summary;
mod walk;

use alloc::vec::Vec;

pub use error::DmarError;
pub use header::{ChecksumPolicy, DmarFlags, ParseOptions, SIGNATURE, TableHeader, checksum};
pub use resolve::{PciTopology, ResolvedScope, ScopeError, resolve_scope, unit_for_device};
pub use scope::{DeviceScope, PathElement, ScopeKind};
pub use structures::{
    Andd, Atsr, AtsrFlags, Drhd, DrhdFlags, PAGE_SIZE, Rhsa, Rmrr, Satc, SatcFlags, Structure,
    UnknownStructure,
};
pub use walk::Structures;

/// A parsed DMAR table: the header facts and every remapping structure, grouped by type in
/// table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmar {
    header: TableHeader,
    host_address_width: u8,
    flags: DmarFlags,
    units: Vec<Drhd>,
    reserved_memory: Vec<Rmrr>,
    atsr: Vec<Atsr>,
    rhsa: Vec<Rhsa>,
    andd: Vec<Andd>,
    satc: Vec<Satc>,
    skipped: Vec<UnknownStructure>,
}

impl Dmar {
    /// Parses a DMAR table with every check on ([`ParseOptions::STRICT`]). `bytes` may be
    /// longer than the table (a page-rounded mapping); only the header's length is read.
    pub fn parse(bytes: &[u8]) -> Result<Dmar, DmarError> {
        Dmar::parse_with(bytes, ParseOptions::STRICT)
    }

    /// Parses a DMAR table with the given options. With
    /// [`ParseOptions::DIAGNOSTIC`] a bad checksum is recorded in
    /// [`TableHeader::checksum_valid`] instead of rejecting the table; do not program
    /// hardware from a table parsed that way without saying so.
    pub fn parse_with(bytes: &[u8], options: ParseOptions) -> Result<Dmar, DmarError> {
        let mut walk = Structures::new(bytes, options)?;
        let mut units = Vec::new();
        let mut reserved_memory = Vec::new();
        let mut atsr = Vec::new();
        let mut rhsa = Vec::new();
        let mut andd = Vec::new();
        let mut satc = Vec::new();
        let mut skipped = Vec::new();
        for structure in &mut walk {
            match structure? {
                Structure::Drhd(s) => units.push(s),
                Structure::Rmrr(s) => reserved_memory.push(s),
                Structure::Atsr(s) => atsr.push(s),
                Structure::Rhsa(s) => rhsa.push(s),
                Structure::Andd(s) => andd.push(s),
                Structure::Satc(s) => satc.push(s),
                Structure::Unknown(s) => skipped.push(s),
            }
        }
        let (header, host_address_width, flags) = walk.into_header();
        Ok(Dmar {
            header,
            host_address_width,
            flags,
            units,
            reserved_memory,
            atsr,
            rhsa,
            andd,
            satc,
            skipped,
        })
    }

    /// The table's ACPI header.
    pub fn header(&self) -> &TableHeader {
        &self.header
    }

    /// The Host Address Width field as stored: the platform's DMA address width minus one
    /// (38 for 39-bit addressing). See [`address_width_bits`](Self::address_width_bits).
    pub const fn host_address_width(&self) -> u8 {
        self.host_address_width
    }

    /// How many physical address bits DMA can reach: the field plus one, at most 64.
    pub const fn address_width_bits(&self) -> u8 {
        self.host_address_width + 1
    }

    /// The table's flags (interrupt remapping, x2APIC opt-out, DMA protection opt-in).
    pub const fn flags(&self) -> DmarFlags {
        self.flags
    }

    /// The VT-d units (DRHDs), in table order. Indexes into this slice identify units in
    /// [`unit_for_device`] and [`Dmar::include_all_unit`].
    pub fn units(&self) -> &[Drhd] {
        &self.units
    }

    /// The reserved memory regions (RMRRs).
    pub fn reserved_memory(&self) -> &[Rmrr] {
        &self.reserved_memory
    }

    /// The root port ATS reports (ATSRs).
    pub fn atsr(&self) -> &[Atsr] {
        &self.atsr
    }

    /// The unit proximity domains (RHSAs).
    pub fn rhsa(&self) -> &[Rhsa] {
        &self.rhsa
    }

    /// The ACPI name-space device declarations (ANDDs).
    pub fn andd(&self) -> &[Andd] {
        &self.andd
    }

    /// The SoC integrated ATC reports (SATCs).
    pub fn satc(&self) -> &[Satc] {
        &self.satc
    }

    /// Number of remapping structures in the table, skipped unknown ones included.
    pub fn structure_count(&self) -> usize {
        self.units().len()
            + self.reserved_memory().len()
            + self.atsr().len()
            + self.rhsa().len()
            + self.andd().len()
            + self.satc().len()
            + self.skipped().len()
    }

    /// Structures of types this parser does not interpret, skipped.
    pub fn skipped(&self) -> &[UnknownStructure] {
        &self.skipped
    }

    /// The index of the INCLUDE_PCI_ALL unit for `segment`, if the table has one (at most one,
    /// checked when parsed).
    pub fn include_all_unit(&self, segment: u16) -> Option<usize> {
        self.units
            .iter()
            .position(|unit| unit.include_pci_all() && unit.segment() == segment)
    }

    /// The ANDD that a type-5 scope with this enumeration ID refers to.
    pub fn andd_by_number(&self, device_number: u8) -> Option<&Andd> {
        self.andd
            .iter()
            .find(|andd| andd.device_number() == device_number)
    }
}

//! Device scopes (VT-d 8.3.1): which PCI devices, I/O APICs, HPETs or ACPI devices a
//! remapping structure applies to, named by a start bus and a path of (device, function) hops.

use alloc::vec::Vec;
use core::fmt;

use zerocopy::FromBytes;

use super::error::DmarError;
use super::layout::{PATH_PAIR_LEN, SCOPE_FIXED_LEN, ScopeFixed};
use crate::Bdf;

/// Largest PCI device number on a bus.
const MAX_DEVICE: u8 = 31;
/// Largest PCI function number in a device.
const MAX_FUNCTION: u8 = 7;
/// Smallest valid scope: the fixed part plus one path element.
const MIN_SCOPE_LEN: usize = SCOPE_FIXED_LEN + PATH_PAIR_LEN;

/// One hop of a scope path: a device and function on the bus reached so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathElement {
    device: u8,
    function: u8,
}

impl PathElement {
    /// `device.function`, or `None` if `device > 31` or `function > 7`.
    pub const fn new(device: u8, function: u8) -> Option<PathElement> {
        if device > MAX_DEVICE || function > MAX_FUNCTION {
            return None;
        }
        Some(PathElement { device, function })
    }

    /// The device number, 0..=31.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number, 0..=7.
    pub const fn function(self) -> u8 {
        self.function
    }

    /// Device and function packed as PCI's devfn byte.
    pub const fn devfn(self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The function this element names on `bus` of `segment`.
    pub const fn on_bus(self, segment: u16, bus: u8) -> Bdf {
        // Device and function were range checked when the element was made, so the devfn
        // round trip is exact.
        Bdf::from_devfn(segment, bus, self.devfn())
    }
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}.{:x}", self.device, self.function)
    }
}

/// What a device scope names (VT-d 8.3.1, Table "Device Scope Type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// Type 1: one PCI endpoint function.
    PciEndpoint,
    /// Type 2: a PCI-PCI bridge and every device below it.
    PciSubHierarchy,
    /// Type 3: an I/O APIC; the enumeration ID is its APIC ID, the path its source-id.
    IoApic,
    /// Type 4: an MSI-capable HPET; the enumeration ID is its HPET number.
    MsiCapableHpet,
    /// Type 5: an ACPI name-space device; the enumeration ID matches an ANDD's device number.
    AcpiNamespaceDevice,
    /// Type 0 or above 5: reserved by the spec. Kept so a report can show it; resolution
    /// skips it.
    Reserved(u8),
}

impl ScopeKind {
    /// The kind for a raw type byte.
    pub const fn from_raw(raw: u8) -> ScopeKind {
        match raw {
            1 => ScopeKind::PciEndpoint,
            2 => ScopeKind::PciSubHierarchy,
            3 => ScopeKind::IoApic,
            4 => ScopeKind::MsiCapableHpet,
            5 => ScopeKind::AcpiNamespaceDevice,
            other => ScopeKind::Reserved(other),
        }
    }

    /// The raw type byte.
    pub const fn raw(self) -> u8 {
        match self {
            ScopeKind::PciEndpoint => 1,
            ScopeKind::PciSubHierarchy => 2,
            ScopeKind::IoApic => 3,
            ScopeKind::MsiCapableHpet => 4,
            ScopeKind::AcpiNamespaceDevice => 5,
            ScopeKind::Reserved(raw) => raw,
        }
    }
}

/// One device scope entry. The path is never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceScope {
    kind: ScopeKind,
    flags: u8,
    enumeration_id: u8,
    start_bus: u8,
    path: Vec<PathElement>,
}

impl DeviceScope {
    /// A scope with flags 0, or `None` if `path` is empty (a scope names at least one hop).
    pub fn new(
        kind: ScopeKind,
        enumeration_id: u8,
        start_bus: u8,
        path: Vec<PathElement>,
    ) -> Option<DeviceScope> {
        if path.is_empty() {
            return None;
        }
        Some(DeviceScope {
            kind,
            flags: 0,
            enumeration_id,
            start_bus,
            path,
        })
    }

    /// What the scope names.
    pub const fn kind(&self) -> ScopeKind {
        self.kind
    }

    /// The scope's flags byte (reserved before VT-d 4.0, so usually 0).
    pub const fn flags(&self) -> u8 {
        self.flags
    }

    /// The I/O APIC ID, HPET number or ANDD device number; 0 for PCI scopes.
    pub const fn enumeration_id(&self) -> u8 {
        self.enumeration_id
    }

    /// The bus the first path element is on.
    pub const fn start_bus(&self) -> u8 {
        self.start_bus
    }

    /// The hops, first on [`start_bus`](Self::start_bus), each further one on the secondary
    /// bus of the bridge before it. Never empty.
    pub fn path(&self) -> &[PathElement] {
        &self.path
    }

    /// The function the first hop names in `segment`, before any bridge is crossed.
    pub fn first_hop(&self, segment: u16) -> Bdf {
        // `path` is non-empty by construction; the fallback is never taken.
        let first = self.path.first().copied().unwrap_or(PathElement {
            device: 0,
            function: 0,
        });
        first.on_bus(segment, self.start_bus)
    }
}

impl fmt::Display for DeviceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ScopeKind::PciEndpoint => f.write_str("endpoint ")?,
            ScopeKind::PciSubHierarchy => f.write_str("bridge ")?,
            ScopeKind::IoApic => write!(f, "ioapic {} at ", self.enumeration_id)?,
            ScopeKind::MsiCapableHpet => write!(f, "hpet {} at ", self.enumeration_id)?,
            ScopeKind::AcpiNamespaceDevice => write!(f, "acpi-device {} at ", self.enumeration_id)?,
            ScopeKind::Reserved(raw) => write!(f, "reserved-type-{raw} at ")?,
        }
        // `bb:dd.f` for the first hop, then `/dd.f` for each hop below a bridge.
        write!(f, "{:02x}:", self.start_bus)?;
        for (index, element) in self.path.iter().enumerate() {
            if index > 0 {
                f.write_str("/")?;
            }
            write!(f, "{element}")?;
        }
        if self.flags != 0 {
            write!(f, " (flags {:#04x})", self.flags)?;
        }
        Ok(())
    }
}

/// Parses the device scopes filling `bytes`, the part of a structure after its fixed fields.
/// `base_offset` is where `bytes` starts in the table, for error messages.
pub(super) fn parse_scopes(
    bytes: &[u8],
    base_offset: usize,
) -> Result<Vec<DeviceScope>, DmarError> {
    let mut scopes = Vec::new();
    let mut position = 0;
    while let Some(rest) = bytes.get(position..).filter(|rest| !rest.is_empty()) {
        let offset = base_offset + position;
        let entry = scope_entry(rest, offset)?;
        scopes.push(parse_scope(entry, offset)?);
        // `scope_entry` returned at least MIN_SCOPE_LEN bytes, so this always advances.
        position += entry.len();
    }
    Ok(scopes)
}

/// Checks the length of the scope at the start of `rest` and returns exactly its bytes.
fn scope_entry(rest: &[u8], offset: usize) -> Result<&[u8], DmarError> {
    let Some(&length) = rest.get(1) else {
        return Err(DmarError::TruncatedScopeHeader {
            offset,
            available: rest.len(),
        });
    };
    let len = usize::from(length);
    if len == 0 {
        return Err(DmarError::ZeroLengthScope { offset });
    }
    if len < MIN_SCOPE_LEN {
        return Err(DmarError::ScopeTooShort { offset, length });
    }
    let Some(entry) = rest.get(..len) else {
        return Err(DmarError::ScopePastStructure {
            offset,
            length,
            available: rest.len(),
        });
    };
    if !(len - SCOPE_FIXED_LEN).is_multiple_of(PATH_PAIR_LEN) {
        return Err(DmarError::OddScopePath { offset, length });
    }
    Ok(entry)
}

/// Parses one scope whose length `scope_entry` already checked.
fn parse_scope(entry: &[u8], offset: usize) -> Result<DeviceScope, DmarError> {
    let Ok((fixed, path_bytes)) = ScopeFixed::ref_from_prefix(entry) else {
        return Err(DmarError::ScopeTooShort {
            offset,
            length: entry.get(1).copied().unwrap_or(0),
        });
    };
    let mut path = Vec::with_capacity(path_bytes.len() / PATH_PAIR_LEN);
    for (index, pair) in path_bytes.chunks_exact(PATH_PAIR_LEN).enumerate() {
        let &[device, function] = pair else {
            continue; // chunks_exact yields only 2-byte chunks
        };
        let element = PathElement::new(device, function).ok_or(DmarError::InvalidPathElement {
            offset: offset + SCOPE_FIXED_LEN + index * PATH_PAIR_LEN,
            device,
            function,
        })?;
        path.push(element);
    }
    if path.is_empty() {
        return Err(DmarError::ScopeTooShort {
            offset,
            length: fixed.length,
        });
    }
    Ok(DeviceScope {
        kind: ScopeKind::from_raw(fixed.kind),
        flags: fixed.flags,
        enumeration_id: fixed.enumeration_id,
        start_bus: fixed.start_bus,
        path,
    })
}

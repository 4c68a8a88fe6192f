//! What Linux and Moat report and how they compare: parsing the guest's report between the
//! markers, parsing the `pci:` lines of Moat's boot report, and diffing the two device lists.

use std::collections::BTreeMap;
use std::fmt;

use super::{BEGIN_MARKER, END_MARKER, Groups};

/// One PCI function: its address and identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PciEntry {
    /// Segment, bus, device and function as `ssss:bb:dd.f`, lowercase hex.
    pub(crate) bdf: String,
    /// Vendor ID.
    pub(crate) vendor: u16,
    /// Device ID.
    pub(crate) device: u16,
    /// Class code: base class, subclass and programming interface (`0x00ff00` for edu).
    pub(crate) class: u32,
}

impl fmt::Display for PciEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} {:06x}",
            self.bdf, self.vendor, self.device, self.class
        )
    }
}

/// What the Linux guest reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinuxReport {
    /// Every PCI function in `/sys/bus/pci/devices`, sorted by BDF.
    pub(crate) devices: Vec<PciEntry>,
    /// IOMMU group number to its members (sorted BDFs), from `/sys/kernel/iommu_groups`.
    pub(crate) groups: Groups,
    /// Kernel log lines matching `DMAR|IOMMU|iommu`, in log order.
    pub(crate) dmesg: Vec<String>,
    /// The guest's whole serial log, set by [`boot_linux`](super::boot_linux) (empty from
    /// [`parse_linux_report`]), so that a failed comparison can show what Linux printed.
    pub(crate) serial: String,
}

/// Parses the guest's serial log: the lines between `oracle-begin` and `oracle-end`.
///
/// Lines between the markers that are not `pci`, `group` or `dmesg` lines (stray kernel console
/// messages) are ignored; a malformed `pci` or `group` line is an error.
pub(crate) fn parse_linux_report(serial: &str) -> Result<LinuxReport, String> {
    let mut lines = serial.lines().map(str::trim);
    if !lines.any(|line| line == BEGIN_MARKER) {
        return Err(format!("no `{BEGIN_MARKER}` line in the serial log"));
    }
    let mut report = LinuxReport::default();
    let mut ended = false;
    for line in lines {
        if line == END_MARKER {
            ended = true;
            break;
        }
        if let Some(rest) = line.strip_prefix("pci ") {
            report.devices.push(parse_sysfs_pci(rest).ok_or(format!(
                "malformed line `{line}` (expected `pci BDF 0xVVVV 0xDDDD 0xCCCCCC`)"
            ))?);
        } else if let Some(rest) = line.strip_prefix("group ") {
            let (group, bdf) = parse_group(rest)
                .ok_or(format!("malformed line `{line}` (expected `group N BDF`)"))?;
            report.groups.entry(group).or_default().push(bdf);
        } else if let Some(text) = line.strip_prefix("dmesg ") {
            report.dmesg.push(text.to_string());
        }
    }
    if !ended {
        return Err(format!(
            "no `{END_MARKER}` line after `{BEGIN_MARKER}` (the guest stopped early)"
        ));
    }
    report.devices.sort();
    for members in report.groups.values_mut() {
        members.sort();
    }
    Ok(report)
}

/// `BDF 0xVVVV 0xDDDD 0xCCCCCC`, as the init script prints sysfs's values.
fn parse_sysfs_pci(rest: &str) -> Option<PciEntry> {
    let mut fields = rest.split_whitespace();
    let bdf = parse_bdf(fields.next()?)?;
    let vendor = u16::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    let device = u16::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    let class = parse_class(fields.next()?.strip_prefix("0x")?)?;
    fields.next().is_none().then_some(PciEntry {
        bdf,
        vendor,
        device,
        class,
    })
}

/// `N BDF`.
fn parse_group(rest: &str) -> Option<(u32, String)> {
    let mut fields = rest.split_whitespace();
    let group = fields.next()?.parse().ok()?;
    let bdf = parse_bdf(fields.next()?)?;
    fields.next().is_none().then_some((group, bdf))
}

/// A 24-bit class code of exactly six hex digits.
fn parse_class(text: &str) -> Option<u32> {
    (text.len() == 6)
        .then(|| u32::from_str_radix(text, 16).ok())
        .flatten()
}

/// Validates `ssss:bb:dd.f` (hex; device < 0x20, function < 8) and lowercases it.
pub(super) fn parse_bdf(text: &str) -> Option<String> {
    let (segment, rest) = text.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit());
    let valid = hex(segment, 4)
        && hex(bus, 2)
        && hex(device, 2)
        && u8::from_str_radix(device, 16).ok()? < 0x20
        && hex(function, 1)
        && u8::from_str_radix(function, 16).ok()? < 8;
    valid.then(|| text.to_ascii_lowercase())
}

/// The devices in Moat's boot report: lines `pci: SSSS:BB:DD.F vvvv:dddd cccccc TYPE [caps]`,
/// possibly indented and ending in `\r`. Other lines, and `pci:` lines not in that format, are
/// skipped. The result is sorted by BDF.
pub(crate) fn parse_moat_pci(serial: &str) -> Vec<PciEntry> {
    let mut devices: Vec<PciEntry> = serial
        .lines()
        .filter_map(|line| parse_moat_pci_line(line.trim()))
        .collect();
    devices.sort();
    devices
}

fn parse_moat_pci_line(line: &str) -> Option<PciEntry> {
    let mut fields = line.strip_prefix("pci:")?.split_whitespace();
    let bdf = parse_bdf(fields.next()?)?;
    let (vendor, device) = fields.next()?.split_once(':')?;
    let hex16 = |s: &str| {
        (s.len() == 4)
            .then(|| u16::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some(PciEntry {
        bdf,
        vendor: hex16(vendor)?,
        device: hex16(device)?,
        class: parse_class(fields.next()?)?,
    })
}

/// Compares Moat's device list with Linux's: `Ok` when they hold the same functions with the
/// same identities, otherwise a readable list of differences sorted by BDF.
pub(crate) fn compare(moat: &[PciEntry], linux: &[PciEntry]) -> Result<(), String> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let moat_map = index_by_bdf(moat, "Moat", &mut problems);
    let linux_map = index_by_bdf(linux, "Linux", &mut problems);
    for (bdf, linux_entry) in &linux_map {
        match moat_map.get(bdf) {
            None => problems.push((bdf.clone(), format!("missing in Moat: {linux_entry}"))),
            Some(moat_entry) => {
                let mut fields = Vec::new();
                if moat_entry.vendor != linux_entry.vendor {
                    fields.push(format!(
                        "vendor Moat {:04x} Linux {:04x}",
                        moat_entry.vendor, linux_entry.vendor
                    ));
                }
                if moat_entry.device != linux_entry.device {
                    fields.push(format!(
                        "device Moat {:04x} Linux {:04x}",
                        moat_entry.device, linux_entry.device
                    ));
                }
                if moat_entry.class != linux_entry.class {
                    fields.push(format!(
                        "class Moat {:06x} Linux {:06x}",
                        moat_entry.class, linux_entry.class
                    ));
                }
                if !fields.is_empty() {
                    problems.push((bdf.clone(), format!("{bdf}: {}", fields.join(", "))));
                }
            }
        }
    }
    for (bdf, moat_entry) in &moat_map {
        if !linux_map.contains_key(bdf) {
            problems.push((bdf.clone(), format!("extra in Moat: {moat_entry}")));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    let mut message = format!(
        "Moat's PCI devices differ from Linux's ({} in Moat, {} in Linux):",
        moat.len(),
        linux.len()
    );
    for (_, problem) in problems {
        message.push_str("\n  ");
        message.push_str(&problem);
    }
    Err(message)
}

/// Maps BDF (lowercase) to entry, noting BDFs listed more than once.
fn index_by_bdf<'a>(
    entries: &'a [PciEntry],
    who: &str,
    problems: &mut Vec<(String, String)>,
) -> BTreeMap<String, &'a PciEntry> {
    let mut map = BTreeMap::new();
    for entry in entries {
        let bdf = entry.bdf.to_ascii_lowercase();
        if map.insert(bdf.clone(), entry).is_some() {
            problems.push((bdf.clone(), format!("{bdf} listed more than once by {who}")));
        }
    }
    map
}

//! IOMMU groups on both sides: parsing Moat's `iommu group N: BDF BDF ...` report lines, and
//! comparing Moat's partition of the devices into groups with Linux's. Group numbers are each
//! side's own labels and are ignored; only which devices share a group counts.

use std::collections::{BTreeMap, BTreeSet};

use super::report::parse_bdf;

/// IOMMU groups: group number to its members (sorted, lowercase BDFs, as both parsers
/// return them).
pub(crate) type Groups = BTreeMap<u32, Vec<String>>;

/// The prefix of a group line in Moat's boot report.
const MOAT_GROUP_PREFIX: &str = "iommu group ";

/// Moat's IOMMU groups from its boot report: lines `iommu group N: SSSS:BB:DD.F ...` (members
/// sorted, Linux's BDF form), possibly indented and ending in `\r`. Other lines are skipped.
///
/// A line that starts `iommu group ` but does not have that form (no number, no colon, no
/// member, a malformed BDF) is an error, and so is a group number listed twice.
pub(crate) fn parse_moat_groups(serial: &str) -> Result<Groups, String> {
    let mut groups = Groups::new();
    for line in serial.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix(MOAT_GROUP_PREFIX) else {
            continue;
        };
        let (group, members) = parse_moat_group(rest).ok_or(format!(
            "malformed line `{line}` in Moat's boot report (expected `iommu group N: BDF ...`)"
        ))?;
        if groups.insert(group, members).is_some() {
            return Err(format!(
                "Moat's boot report lists iommu group {group} twice"
            ));
        }
    }
    Ok(groups)
}

/// `N: BDF BDF ...` with at least one member.
fn parse_moat_group(rest: &str) -> Option<(u32, Vec<String>)> {
    let (number, members) = rest.split_once(':')?;
    let number = number.trim();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut members: Vec<String> = members
        .split_whitespace()
        .map(parse_bdf)
        .collect::<Option<_>>()?;
    if members.is_empty() {
        return None;
    }
    members.sort();
    Some((number.parse().ok()?, members))
}

/// A side's groups as a partition: each group as a set, and each device's group.
struct Partition {
    /// Every group's member set.
    sets: BTreeSet<BTreeSet<String>>,
    /// Device to its group's member set.
    of: BTreeMap<String, BTreeSet<String>>,
}

impl Partition {
    /// Builds the partition; a device in more than one group becomes a problem line.
    fn new(groups: &Groups, who: &str, problems: &mut Vec<String>) -> Partition {
        let mut sets = BTreeSet::new();
        let mut of = BTreeMap::new();
        let mut first_group: BTreeMap<&str, u32> = BTreeMap::new();
        for (number, members) in groups {
            let set: BTreeSet<String> = members.iter().cloned().collect();
            for member in members {
                if let Some(earlier) = first_group.insert(member, *number) {
                    problems.push(format!(
                        "{who} lists {member} in group {earlier} and in group {number}"
                    ));
                }
                of.insert(member.clone(), set.clone());
            }
            sets.insert(set);
        }
        Partition { sets, of }
    }

    /// How this side divides `devices`: the groups that hold any of them, then the devices
    /// in no group, e.g. `{0000:00:02.0} {0000:01:00.0} 0000:01:00.1 (in no group)`.
    fn divides(&self, devices: &BTreeSet<String>) -> String {
        let mut holding: BTreeSet<&BTreeSet<String>> = BTreeSet::new();
        let mut ungrouped = Vec::new();
        for device in devices {
            match self.of.get(device) {
                Some(group) => {
                    holding.insert(group);
                }
                None => ungrouped.push(format!("{device} (in no group)")),
            }
        }
        let mut parts: Vec<String> = holding.into_iter().map(braced).collect();
        parts.extend(ungrouped);
        parts.join(" ")
    }
}

/// `{a b c}`.
fn braced(set: &BTreeSet<String>) -> String {
    let members: Vec<&str> = set.iter().map(String::as_str).collect();
    format!("{{{}}}", members.join(" "))
}

/// Compares Moat's IOMMU groups with Linux's as partitions of the devices (sets of sets; the
/// group numbers are ignored). `Ok` when every group of one side is exactly a group of the
/// other; otherwise each group that differs, with how the other side divides its devices:
///
/// ```text
/// Linux's group {0000:00:02.2 0000:03:00.0} is {0000:00:02.2} {0000:03:00.0} in Moat
/// Moat's group {0000:00:02.2} is {0000:00:02.2 0000:03:00.0} in Linux
/// ```
pub(crate) fn compare_groups(moat: &Groups, linux: &Groups) -> Result<(), String> {
    let mut problems = Vec::new();
    let moat_partition = Partition::new(moat, "Moat", &mut problems);
    let linux_partition = Partition::new(linux, "Linux", &mut problems);
    for group in linux_partition.sets.difference(&moat_partition.sets) {
        problems.push(format!(
            "Linux's group {} is {} in Moat",
            braced(group),
            moat_partition.divides(group)
        ));
    }
    for group in moat_partition.sets.difference(&linux_partition.sets) {
        problems.push(format!(
            "Moat's group {} is {} in Linux",
            braced(group),
            linux_partition.divides(group)
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "Moat's IOMMU groups differ from Linux's ({} groups in Moat, {} in Linux; group \
         numbers ignored):",
        moat.len(),
        linux.len()
    );
    for problem in problems {
        message.push_str("\n  ");
        message.push_str(&problem);
    }
    Err(message)
}

#[cfg(test)]
mod tests;

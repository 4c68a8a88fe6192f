//! Wiring DMA remapping at boot: DMAR -> units, IOMMU groups -> which unit translates each
//! group and with which requester IDs, RMRRs -> identity maps; then the report lines. Any
//! failure turns remapping off with one clear line, and DMA isolation is recorded unavailable.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use moat_iommu::dmar::{self, Dmar, ResolvedScope};
use moat_iommu::group::Groups;
use moat_kernel::cmdline::CommandLine;
use moat_kernel::pci::Enumeration;
use moat_kernel::vtd::topology::EnumeratedTopology;
use moat_kernel::vtd::{self, GroupPlacement, PassThroughChoice, ReservedRegion, UnitDescription};

/// Brings remapping up; returns the report lines.
pub(crate) fn bring_up(
    options: &CommandLine,
    dmar_bytes: Option<&[u8]>,
    devices: &Enumeration,
    groups: Option<&Groups>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if options.iommu_off {
        vtd::turn_off(&crate::ROOT, "iommu=off on the command line".into());
    } else if let Some(bytes) = dmar_bytes {
        match Dmar::parse(bytes) {
            Ok(table) => {
                lines.extend(table.to_string().lines().map(|l| format!("dmar: {l}")));
                let result = match groups {
                    Some(groups) => enable(options, &table, devices, groups, &mut lines),
                    None => Err("no IOMMU groups could be computed".into()),
                };
                if let Err(reason) = result {
                    vtd::turn_off(&crate::ROOT, reason);
                }
            }
            Err(error) => vtd::turn_off(&crate::ROOT, format!("DMAR table rejected: {error}")),
        }
    } else {
        vtd::turn_off(
            &crate::ROOT,
            "no valid DMAR table: the firmware describes no remapping hardware".into(),
        );
    }
    if let Some(reason) = vtd::off_reason() {
        lines.push(format!(
            "dmar: remapping off ({reason}); DMA isolation unavailable"
        ));
    }
    lines
}

fn enable(
    options: &CommandLine,
    table: &Dmar,
    devices: &Enumeration,
    groups: &Groups,
    lines: &mut Vec<String>,
) -> Result<(), String> {
    let topology = EnumeratedTopology(devices);
    let units: Vec<UnitDescription> = table
        .units()
        .iter()
        .map(|u| UnitDescription {
            base: u.register_base(),
            length: u.register_set_len(),
            segment: u.segment(),
        })
        .collect();
    if units.is_empty() {
        return Err("the DMAR lists no remapping unit".into());
    }
    let mut placements: Vec<GroupPlacement> = Vec::new();
    for group in groups.iter() {
        let members = group.members();
        let units: Vec<Option<usize>> = members
            .iter()
            .map(|bdf| dmar::unit_for_device(table, *bdf, &topology))
            .collect();
        let Some(first) = units.first().copied() else {
            continue;
        };
        if units.iter().any(|unit| *unit != first) {
            return Err(format!(
                "iommu group {}: its devices are translated by different units ({units:?})",
                group.id()
            ));
        }
        let Some(unit) = first else { continue };
        placements.push(GroupPlacement {
            id: group.id().number() as u32,
            unit,
            members: members.to_vec(),
            requester_ids: group
                .requester_ids()
                .iter()
                .map(|bdf| bdf.requester_id())
                .collect(),
        });
    }
    let mut reserved = Vec::new();
    for rmrr in table.reserved_memory() {
        let mut in_scope = Vec::new();
        for scope in rmrr.scopes() {
            match dmar::resolve_scope(scope, rmrr.segment(), &topology) {
                Ok(
                    resolved @ (ResolvedScope::Endpoint(_) | ResolvedScope::SubHierarchy { .. }),
                ) => {
                    in_scope.extend(
                        devices
                            .devices
                            .iter()
                            .map(|d| d.bdf)
                            .filter(|bdf| resolved.covers(*bdf)),
                    );
                }
                Ok(_) => {}
                Err(error) => lines.push(format!(
                    "dmar: RMRR {:#x}..{:#x}: scope not resolved: {error}",
                    rmrr.base(),
                    rmrr.end()
                )),
            }
        }
        reserved.push(ReservedRegion {
            range: rmrr.base()..rmrr.end(),
            devices: in_scope,
        });
    }
    let summary = vtd::init(&crate::ROOT, options, &units, placements, reserved)?;
    lines.push(format!(
        "  domain IDs in use: {:?} (one blocking domain per unit)",
        vtd::domain_ids_in_use()
    ));
    for (index, (description, unit)) in summary.units.iter().enumerate() {
        let cap = unit.capability;
        let ecap = unit.extended;
        lines.push(format!(
            "dmar: unit {index} at {:#x} segment {}: VT-d {}.{}, CAP {:#018x}, ECAP {:#018x}",
            description.base, description.segment, unit.version.0, unit.version.1, cap.0, ecap.0
        ));
        lines.push(format!(
            "  features: {}{}{}{}{}{}{}superpages{}{}, {} fault record(s), {}-bit domain IDs{}",
            if ecap.queued_invalidation() {
                "QI "
            } else {
                ""
            },
            if ecap.interrupt_remapping() {
                "IR "
            } else {
                ""
            },
            if ecap.pass_through() { "PT " } else { "" },
            if ecap.device_tlb() { "DT " } else { "" },
            if ecap.snoop_control() { "SC " } else { "" },
            if cap.psi() {
                format!("PSI(MAMV {}) ", cap.mamv())
            } else {
                String::new()
            },
            if cap.caching_mode() { "CM " } else { "" },
            if cap.sllps() & 1 != 0 { " 2M" } else { "" },
            if cap.sllps() & 2 != 0 { " 1G" } else { "" },
            cap.fault_records(),
            4 + 2 * u32::from(cap.nd()),
            if ecap.coherent() {
                ", coherent walks"
            } else {
                ", non-coherent walks (cache lines flushed)"
            },
        ));
        lines.push(format!(
            "  address width {} bits (MGAW), {}-level tables ({}-bit IOVAs), invalidation: {}",
            cap.mgaw(),
            unit.geometry.levels().count(),
            unit.geometry.iova_bits(),
            unit.invalidation.map_or("none", |m| m.name())
        ));
        lines.push(format!(
            "  translation: {}",
            if unit.translating {
                "enabled"
            } else {
                "DISABLED"
            }
        ));
    }
    for placement in &summary.blocked {
        let sources: Vec<String> = placement
            .requester_ids
            .iter()
            .map(|s| format!("{:02x}:{:02x}.{}", s >> 8, (s >> 3) & 0x1f, s & 7))
            .collect();
        let members: Vec<String> = placement.members.iter().map(ToString::to_string).collect();
        lines.push(format!(
            "  blocked: group {}: {} (unit {}, requester IDs {})",
            placement.id,
            members.join(" "),
            placement.unit,
            sources.join(" ")
        ));
    }
    for choice in &summary.pass_through {
        match choice {
            PassThroughChoice::Selected {
                device,
                group,
                members,
            } => {
                let members: Vec<String> = members.iter().map(ToString::to_string).collect();
                lines.push(format!(
                    "  pass-through: group {group}: {} (iommu.passthrough={device}): benchmark \
                     yardstick, no isolation once attached",
                    members.join(" ")
                ));
            }
            PassThroughChoice::Refused { device, reason } => lines.push(format!(
                "  pass-through refused for {device} (iommu.passthrough): {reason}; it stays translated"
            )),
        }
    }
    if summary.identity_mapped.is_empty() {
        lines.push("  rmrr: none".into());
    }
    for region in &summary.identity_mapped {
        let devices: Vec<String> = region.devices.iter().map(ToString::to_string).collect();
        lines.push(format!(
            "  rmrr: {:#x}..{:#x} identity-mapped for {}",
            region.range.start,
            region.range.end,
            devices.join(" ")
        ));
    }
    Ok(())
}

//! Pass-through (context entries with TT = 2, VT-d spec 9.3): the benchmark's yardstick and
//! nothing else. `iommu.passthrough=BDF,...` marks the groups of those devices at bring-up;
//! when such a group is attached to an address space its requester IDs get pass-through
//! entries instead of entries naming the space's table, so the device's DMA reaches physical
//! memory untranslated and nothing is mapped or invalidated for it. The device is then not
//! isolated at all; the boot report and the registry say so.

use super::groups::GroupContext;
use super::hw::KernelTables;
use super::{State, with_state};
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::entries::{ContextEntry, ContextTranslation, DomainId, FaultProcessing};
use moat_iommu::paging::PageTable;

/// How an attached group's DMA is translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translation {
    /// Through the address space's table: the device reaches only what is mapped there.
    Strict,
    /// Untranslated (TT = 2): the device's DMA addresses are physical addresses. Only for the
    /// benchmark's yardstick (`iommu.passthrough=`); no isolation.
    PassThrough,
}

impl Translation {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::PassThrough => "pass-through",
        }
    }
}

/// What bring-up did with one device named by `iommu.passthrough=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassThroughChoice {
    /// The device's group passes DMA through once attached.
    Selected {
        /// The device named on the command line.
        device: Bdf,
        /// Its group.
        group: u32,
        /// Every member of the group (all of them pass through: entries are per group).
        members: Vec<Bdf>,
    },
    /// The device stays translated, and why.
    Refused {
        /// The device named on the command line.
        device: Bdf,
        /// Why.
        reason: &'static str,
    },
}

/// Marks the groups of `devices` for pass-through on the `state` bring-up is building.
pub(super) fn select(state: &mut State, devices: &[Bdf]) -> Vec<PassThroughChoice> {
    let mut choices = Vec::new();
    for &device in devices {
        let Some(&group) = state.device_groups.get(&device) else {
            choices.push(PassThroughChoice::Refused {
                device,
                reason: "no remapping unit translates this device (not present?)",
            });
            continue;
        };
        let Some(context) = state.groups.get_mut(&group) else {
            unreachable!("device_groups names only placed groups");
        };
        if !state.units[context.unit].engine.offers_pass_through() {
            choices.push(PassThroughChoice::Refused {
                device,
                reason: "its remapping unit lacks ECAP.PT",
            });
            continue;
        }
        context.translation = Translation::PassThrough;
        crate::warn!(
            "dmar",
            "group {group} ({device} named by iommu.passthrough) will pass DMA through \
             untranslated once attached: benchmark yardstick, no isolation"
        );
        choices.push(PassThroughChoice::Selected {
            device,
            group,
            members: context.members.clone(),
        });
    }
    choices
}

/// The context entry `context` gets when attached under `domain` to a space with `table`.
pub(super) fn entry_for(
    context: &GroupContext,
    table: &PageTable<KernelTables>,
    domain: DomainId,
) -> ContextEntry {
    match context.translation {
        Translation::Strict => super::context_for(table, domain),
        Translation::PassThrough => {
            // AW still has to name a width in CAP.SAGAW (QEMU checks it for every type); the
            // space's table has one.
            let Ok(entry) = ContextEntry::new(
                ContextTranslation::PassThrough,
                table.levels().context_address_width(),
                domain,
                FaultProcessing::Report,
            ) else {
                unreachable!("a pass-through entry has no table to misalign");
            };
            entry
        }
    }
}

/// How `group` is translated once attached (`Strict` for an unknown group or with remapping
/// off: nothing is passed through then either).
pub fn translation_of(group: u32) -> Translation {
    with_state(|state| {
        Ok(state
            .groups
            .get(&group)
            .map_or(Translation::Strict, |c| c.translation))
    })
    .unwrap_or(Translation::Strict)
}

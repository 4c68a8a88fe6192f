//! Deferred work: routing DMA faults to the owners of the devices that caused them (and
//! quarantining past the policy), and finishing releases (bus mastering off, interrupts
//! masked, the group blocked, the device reset and the reset checked). Runs from [`settle`],
//! in thread context, never under the registry lock and never in an interrupt handler.

use super::registry::with_registry;
use super::{PassthroughError, bus_master, config_space};
use crate::pci::reset;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::ownership::{DeviceState, FaultOutcome, OwnerId, ResetOutcome};

/// Routes pending faults and finishes pending releases. Called by the kernel's idle loop, by
/// handles before they report events, and by scenarios that need the effects now.
pub fn settle() {
    route_faults();
    loop {
        let next = with_registry(|registry| Ok(registry.deferred.pop()))
            .ok()
            .flatten();
        let Some((bdf, owner)) = next else { break };
        finish_release(bdf, owner);
    }
}

/// Attributes every fault the interrupt handler queued to the group of its source ID and the
/// device(s) behind that ID, and queues it to their owner.
fn route_faults() {
    let (records, dropped) = crate::vtd::faults::take_for_routing();
    if dropped > 0 {
        crate::error!(
            "registry",
            "{dropped} DMA fault(s) arrived faster than they were routed and reached no owner"
        );
    }
    if records.is_empty() {
        return;
    }
    let now_ms = crate::time::now_ns() / 1_000_000;
    for (segment, record) in records {
        let Some(group) = crate::vtd::group_of_requester(segment, record.source) else {
            let source = Bdf::from_requester_id(segment, record.source);
            let _ = with_registry(|registry| {
                // Not a registered device: the table counts it as a fault of unknown origin.
                registry.table.fault(source, now_ms);
                Ok(())
            });
            continue;
        };
        let quarantined = with_registry(|registry| {
            let members = registry.group_members(group);
            // The device whose own requester ID it is, else every member (an alias ID is
            // shared by the group: the IOMMU cannot tell the devices apart).
            let exact: Vec<Bdf> = members
                .iter()
                .copied()
                .filter(|bdf| bdf.segment() == segment && bdf.requester_id() == record.source)
                .collect();
            let targets = if exact.is_empty() { members } else { exact };
            let mut quarantined = Vec::new();
            for bdf in targets {
                if let FaultOutcome::Quarantined { owner } = registry.table.fault(bdf, now_ms) {
                    registry.quarantine_reasons.insert(
                        bdf,
                        format!("quarantined: DMA fault limit reached under owner {owner}"),
                    );
                    quarantined.push(bdf);
                }
            }
            if !quarantined.is_empty() {
                // The whole group goes to the blocking domain (its requester IDs are shared):
                // siblings still attached are detached in the table too, so it says what the
                // hardware does. Their owner keeps them, bound, and cannot attach them again
                // while the quarantined device is there.
                for member in registry.group_members(group) {
                    if let Some(DeviceState::Attached { owner, .. }) =
                        registry.table.device(member).map(|v| v.state)
                    {
                        let _ = registry.table.detach(owner, member);
                    }
                }
            }
            Ok((quarantined, group))
        });
        if let Ok((devices, group)) = quarantined {
            for bdf in devices {
                quarantine_hardware(bdf, group);
            }
        }
    }
}

/// Bus mastering off and the group back to the blocking domain, reported.
fn quarantine_hardware(bdf: Bdf, group: u32) {
    let detached = crate::vtd::groups::detach(group);
    let bus_master_off = bus_master(bdf, false);
    crate::error!(
        "registry",
        "{bdf} quarantined: too many DMA faults; bus mastering {}, group {group} {}",
        match bus_master_off {
            Ok(()) => String::from("off"),
            Err(e) => format!("could NOT be turned off ({e:?})"),
        },
        match detached {
            Ok(()) => String::from("blocked"),
            Err(e) => format!("could NOT be blocked: {e:?}"),
        }
    );
}

/// Finishes the release of `bdf` by `owner`: bus mastering off, MSI/MSI-X masked, the group
/// blocked (unless a sibling of the same owner is still attached), the device reset and the
/// reset checked. A device whose reset cannot be done or checked stays blocked, quarantined,
/// and reported.
fn finish_release(bdf: Bdf, owner: OwnerId) {
    let prepared = with_registry(|registry| {
        let state = registry.table.device(bdf).map(|v| v.state);
        if !matches!(state, Some(DeviceState::Releasing { .. })) {
            return Ok(None);
        }
        let record = registry.record(bdf)?;
        let group = record.group;
        let device = record.device;
        let detach = !registry.other_member_attached(group, bdf);
        Ok(Some((group, device, detach)))
    });
    let Ok(Some((group, device, detach))) = prepared else {
        return;
    };
    // Blocking comes first and on its own: whatever fails after it, the device's DMA goes
    // nowhere. A failed detach is reported as such, never as "blocked".
    let blocked = if detach {
        crate::vtd::groups::detach(group)
            .map_err(|e| format!("the group could NOT be blocked: {e:?}"))
    } else {
        Ok(())
    };
    let outcome = (|| -> Result<String, String> {
        blocked.clone()?;
        let config = config_space().map_err(|e| format!("{e:?}"))?;
        reset::bus_master(config, bdf, reset::BusMaster::Disabled)
            .map_err(|e| format!("bus mastering stays on: {e}"))?;
        reset::mask_interrupts(config, device)
            .map_err(|e| format!("interrupts not masked: {e}"))?;
        let revoked = crate::vtd::interrupt_remapping::revoke_device(bdf);
        if revoked > 0 {
            crate::warn!(
                "registry",
                "{bdf}: {revoked} interrupt remapping entr(y/ies) its owner leaked were revoked"
            );
        }
        let all = crate::devices::all().ok_or("no PCI enumeration")?;
        let done =
            reset::reset_for_release(config, all, bdf, |affected| may_reset(owner, affected))
                .map_err(|e| format!("{e}"))?;
        let mut method = format!("{}", done.method);
        for fallback in &done.fallbacks {
            method.push_str(&format!("; before it: {fallback}"));
        }
        let evidence: Vec<String> = done
            .evidence
            .iter()
            .filter(|o| o.device == bdf)
            .map(|o| format!("{o}"))
            .collect();
        method.push_str(&format!("; check saw {}", evidence.join(", ")));
        Ok(method)
    })();
    let result = with_registry(|registry| {
        let passed = outcome.is_ok();
        registry.transition(|table| {
            table.release_finished(
                bdf,
                if passed {
                    ResetOutcome::Passed
                } else {
                    ResetOutcome::Failed
                },
            )
        })?;
        match &outcome {
            Err(why) => {
                registry
                    .quarantine_reasons
                    .insert(bdf, format!("stays blocked: reset failed: {why}"));
                registry
                    .last_release
                    .insert(bdf, format!("reset failed: {why}"));
            }
            Ok(method) => {
                registry.quarantine_reasons.remove(&bdf);
                registry.last_release.insert(bdf, format!("reset {method}"));
            }
        }
        Ok::<(), PassthroughError>(())
    });
    match (&outcome, result) {
        (Ok(method), Ok(())) => crate::info!(
            "registry",
            "{bdf} released by owner {owner}: bus mastering off, reset ({method}) checked, blocked"
        ),
        (Err(why), _) => crate::error!(
            "registry",
            "{bdf} released by owner {owner} but quarantined: {why}{}",
            if crate::vtd::attachment(group).is_none() {
                " (its group is blocked)"
            } else {
                " (its group is STILL ATTACHED)"
            }
        ),
        (Ok(_), Err(error)) => {
            crate::error!("registry", "{bdf}: finishing the release: {error:?}")
        }
    }
}

/// Whether a bus reset that affects `affected` may run for a release by `owner`: every device
/// must belong to `owner` or be unowned and blocked (no kernel DMA-API user either).
fn may_reset(owner: OwnerId, affected: &[Bdf]) -> bool {
    with_registry(|registry| {
        Ok(affected.iter().all(|bdf| {
            match registry.table.device(*bdf) {
                Some(view) => match view.state {
                    DeviceState::Registered => view.kernel_users == 0,
                    state => state.owner() == Some(owner),
                },
                // Not registered: a bridge below, or a device no unit translates. Bridges are
                // restored by the reset code; anything else is refused.
                None => crate::devices::all()
                    .and_then(|all| all.device(*bdf))
                    .is_some_and(|d| d.is_bridge()),
            }
        }))
    })
    .unwrap_or(false)
}

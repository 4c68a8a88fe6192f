//! Device reset on release, when an owner gives a PCI function up: the methods in Linux
//! VFIO's order (FLR, PM D3hot -> D0, secondary bus reset on the bridge above), each
//! checked, then the configuration restored so the next owner can use the function.
//!
//! The check is what makes a reset trustworthy: before each attempt canaries are armed in
//! registers every reset clears (Command, Cache Line Size, Interrupt Line, BARs, MSI data,
//! MSI-X enable; facts H.7), and afterwards they must read their reset values. On QEMU 7.2
//! a PM reset changes nothing (facts H.3), so the check fails and the bus reset is next.
//! After any attempt the function gets Command = 0 written explicitly (a reset does not
//! close QEMU's bus-master gate, facts H.6.1) and its saved configuration back, BARs at
//! their enumerated addresses; after a bus reset the bridges below also get their bus
//! numbers and windows back (facts H.4).
//!
//! A bus reset reaches every function below the bridge. The caller decides whether that
//! is allowed: [`reset_for_release`] asks its `may_reset` predicate with the full list
//! ([`devices_affected_by_bus_reset`]), and Linux's own rule is `|d| d == [bdf]` (the
//! function is alone below its bridge). Every error means the function was not proven
//! reset and must stay blocked.
//!
//! Everything here works through [`ConfigAccess`] and an [`Enumeration`], so it runs on
//! the host against a fake configuration space; the QEMU scenario `test=reset` is the proof
//! on the emulated devices.

mod check;
mod control;
mod error;
mod methods;
mod registers;
mod state;

use alloc::vec::Vec;
use moat_iommu::Bdf;

pub use control::{BusMaster, bus_master, mask_interrupts};
pub use error::{Mismatch, Observation, Register, Reset, ResetError, ResetMethod};

use super::access::ConfigAccess;
use super::{Enumeration, PciDevice};
use state::Saved;

/// Resets `bdf` for release with the first method that works and checks, then restores its
/// configuration (Command = 0, BARs as enumerated). Methods: FLR if the function advertises
/// it; PM if it has a PM capability with No_Soft_Reset clear; a secondary bus reset on the
/// bridge above it if `may_reset` approves the list of every function that would be reset
/// (the function itself included). A method whose check fails, or after which the function
/// stays silent, falls through to the next; the error of the last one tried is returned,
/// and the earlier failures are in [`Reset::fallbacks`] on success.
pub fn reset_for_release(
    config: &impl ConfigAccess,
    devices: &Enumeration,
    bdf: Bdf,
    may_reset: impl FnOnce(&[Bdf]) -> bool,
) -> Result<Reset, ResetError> {
    let device = devices.device(bdf).ok_or(ResetError::UnknownDevice(bdf))?;
    if device.is_bridge() {
        return Err(ResetError::Bridge(bdf));
    }
    let saved = state::save(config, device);
    let mut fallbacks = Vec::new();
    let mut function_methods = Vec::new();
    if methods::flr_capable(config, device) {
        function_methods.push(ResetMethod::Flr);
    }
    if methods::pm_control(config, device).is_some() {
        function_methods.push(ResetMethod::Pm);
    }
    for method in function_methods {
        match reset_function(config, device, &saved, method) {
            Ok(evidence) => {
                return Ok(Reset {
                    method,
                    fallbacks,
                    evidence,
                });
            }
            Err(error @ (ResetError::CheckFailed { .. } | ResetError::Timeout { .. })) => {
                fallbacks.push(error);
            }
            Err(error) => return Err(error),
        }
    }
    let Some(bridge) = parent_bridge(devices, bdf) else {
        return Err(fallbacks.pop().unwrap_or(ResetError::NoMethod));
    };
    let evidence = reset_bus(config, devices, bridge, device, &saved, may_reset)?;
    Ok(Reset {
        method: ResetMethod::Bus,
        fallbacks,
        evidence,
    })
}

/// Every function a secondary bus reset for `bdf` would reset: all functions on the buses
/// of the bridge directly above it (its secondary through subordinate bus), `bdf` included,
/// sorted. Empty when `bdf` is unknown or no enumerated bridge is above it (a root bus).
pub fn devices_affected_by_bus_reset(devices: &Enumeration, bdf: Bdf) -> Vec<Bdf> {
    parent_bridge(devices, bdf).map_or_else(Vec::new, |bridge| {
        below(devices, bridge).map(|device| device.bdf).collect()
    })
}

/// The bridge whose secondary bus is `bdf`'s bus.
fn parent_bridge(devices: &Enumeration, bdf: Bdf) -> Option<&PciDevice> {
    devices.device(bdf)?;
    devices.devices.iter().find(|device| {
        device.bdf.segment() == bdf.segment() && device.secondary_bus == Some(bdf.bus())
    })
}

/// The functions below `bridge`, in BDF order: a bridge comes before the buses it leads to,
/// because firmware numbers a bridge's buses above its own and discovery checks that.
fn below<'a>(devices: &'a Enumeration, bridge: &PciDevice) -> impl Iterator<Item = &'a PciDevice> {
    let segment = bridge.bdf.segment();
    let buses = bridge.secondary_bus.unwrap_or(1)..=bridge.subordinate_bus.unwrap_or(0);
    devices
        .devices
        .iter()
        .filter(move |device| device.bdf.segment() == segment && buses.contains(&device.bdf.bus()))
}

/// One FLR or PM attempt on `device`: arm, reset, check, restore.
fn reset_function(
    config: &impl ConfigAccess,
    device: &PciDevice,
    saved: &Saved,
    method: ResetMethod,
) -> Result<Vec<Observation>, ResetError> {
    let canaries = check::arm(config, device);
    if !check::verifiable(&canaries, device.bdf) {
        restore(config, device, saved, method)?;
        return Err(ResetError::Unverifiable { device: device.bdf });
    }
    let done = match method {
        ResetMethod::Flr => methods::flr(config, device, saved.identity()),
        ResetMethod::Pm => match methods::pm_control(config, device) {
            Some(control) => methods::pm(config, device, control, saved.identity()),
            None => Err(ResetError::NoMethod),
        },
        ResetMethod::Bus => Err(ResetError::NoMethod),
    };
    if let Err(error @ ResetError::Timeout { .. }) = done {
        // Nothing to restore into a function that does not answer.
        return Err(error);
    }
    let checked = done.and_then(|()| {
        check::check(config, &canaries).map_err(|what| ResetError::CheckFailed { method, what })
    });
    restore(config, device, saved, method)?;
    checked
}

/// A secondary bus reset on `bridge` for `target`, if `may_reset` approves every function
/// below it: arm every endpoint below, pulse the reset, bring nested bridges' bus numbers
/// back top-down as their functions answer, check the canaries and that `bridge` itself
/// kept its bus numbers and ACS Control (restored if not), then restore everything below.
fn reset_bus(
    config: &impl ConfigAccess,
    devices: &Enumeration,
    bridge: &PciDevice,
    target: &PciDevice,
    target_saved: &Saved,
    may_reset: impl FnOnce(&[Bdf]) -> bool,
) -> Result<Vec<Observation>, ResetError> {
    let method = ResetMethod::Bus;
    let affected: Vec<&PciDevice> = below(devices, bridge).collect();
    let bdfs: Vec<Bdf> = affected.iter().map(|device| device.bdf).collect();
    if !may_reset(&bdfs) {
        return Err(ResetError::NotApproved { devices: bdfs });
    }
    let saved: Vec<Saved> = affected
        .iter()
        .map(|device| {
            if device.bdf == target.bdf {
                target_saved.clone()
            } else {
                state::save(config, device)
            }
        })
        .collect();
    let issuer = methods::issuer_registers(config, bridge);
    let issuer_saved = state::save(config, bridge);
    // A function that does not answer (an FLR left it silent) gets no canaries: it would
    // read all ones. That it answers after the reset is its evidence.
    let mut canaries = Vec::new();
    let mut silent_before = Vec::new();
    for (device, saved) in affected.iter().zip(&saved) {
        if device.is_bridge() {
            continue;
        }
        match registers::identity(config, device.bdf) {
            Some(_) => canaries.extend(check::arm(config, device)),
            None => silent_before.push(Observation {
                device: device.bdf,
                register: Register::Identity,
                before: u32::MAX,
                after: saved.identity(),
            }),
        }
    }
    let target_silent = silent_before.iter().any(|seen| seen.device == target.bdf);
    if !check::verifiable(&canaries, target.bdf) && !target_silent {
        for (device, saved) in affected.iter().zip(&saved) {
            restore(config, device, saved, method)?;
        }
        return Err(ResetError::Unverifiable { device: target.bdf });
    }

    methods::secondary_bus_reset(config, bridge.bdf);
    // A bridge that reset itself hides everything below it: put it back before waiting.
    let issuer_changed = methods::issuer_changed(config, bridge, &issuer);
    if issuer_changed.is_some() {
        restore(config, bridge, &issuer_saved, method)?;
    }
    let mut silent = None;
    let mut answering = Vec::new();
    for (device, saved) in affected.iter().zip(&saved) {
        match methods::wait_ready(config, device.bdf, saved.identity(), method) {
            Ok(()) if device.is_bridge() => {
                config.write32(device.bdf, registers::BUS_NUMBERS, saved.bus_numbers());
                answering.push((*device, saved));
            }
            Ok(()) => answering.push((*device, saved)),
            Err(error) => {
                silent.get_or_insert(error);
            }
        }
    }

    let checked = if let Some(what) = issuer_changed {
        Err(ResetError::CheckFailed { method, what })
    } else if let Some(error) = silent {
        Err(error)
    } else {
        let checked = check::check(config, &canaries);
        checked
            .map(|evidence| [silent_before, evidence].concat())
            .map_err(|what| ResetError::CheckFailed { method, what })
    };
    for (device, saved) in answering {
        restore(config, device, saved, method)?;
    }
    checked
}

fn restore(
    config: &impl ConfigAccess,
    device: &PciDevice,
    saved: &Saved,
    method: ResetMethod,
) -> Result<(), ResetError> {
    state::restore(config, device, saved)
        .map_err(|mismatch| ResetError::RestoreFailed { method, mismatch })
}

//! MSI vectors of a bound device, delivered to its owner's handler. With interrupt remapping
//! each vector gets its own remapping entry that accepts only the device's requester ID (or
//! its bridge alias); the device's MSI capability is programmed by the kernel, never by the
//! owner. Without interrupt remapping a vector is only handed out when the command line said
//! `iommu.allow_unsafe_interrupts` (bind refuses MSI devices otherwise).

use super::handle::Bound;
use super::{PassthroughError, config_space};
use crate::arch::device_vectors::{self, Callback, DeviceVector};
use crate::pci::Msi;
use crate::vtd::interrupt_remapping::{self, RemappedVector};
use core::marker::PhantomData;
use moat_iommu::Bdf;

/// Where an MSI vector's deliveries come from.
#[derive(Debug)]
enum Route {
    /// Through its own remapping entry, source-validated.
    Remapped(RemappedVector),
    /// Compatibility format (no remapping; only with `iommu.allow_unsafe_interrupts`).
    Unsafe(DeviceVector),
}

/// One MSI vector of a bound device, valid while the handle is borrowed. Dropping it turns
/// the device's MSI off, then frees the entry and the vector.
#[derive(Debug)]
pub struct Interrupt<'a> {
    bdf: Bdf,
    msi: Msi,
    route: Option<Route>,
    _handle: PhantomData<&'a Bound>,
}

impl Interrupt<'_> {
    /// The CPU vector the owner's handler runs on.
    pub fn vector(&self) -> u8 {
        match &self.route {
            Some(Route::Remapped(remapped)) => remapped.vector(),
            Some(Route::Unsafe(vector)) => vector.number(),
            None => 0,
        }
    }

    /// Deliveries so far.
    pub fn deliveries(&self) -> u64 {
        match &self.route {
            Some(Route::Remapped(remapped)) => remapped.deliveries(),
            Some(Route::Unsafe(vector)) => vector.deliveries(),
            None => 0,
        }
    }

    /// The remapping entry's index, if the vector is remapped.
    pub fn remapping_handle(&self) -> Option<u16> {
        match &self.route {
            Some(Route::Remapped(remapped)) => Some(remapped.handle()),
            _ => None,
        }
    }

    /// The requests the remapping entry accepts (its source-ID validation), if remapped.
    pub fn accepted_source(&self) -> Option<moat_iommu::entries::SourceValidation> {
        match &self.route {
            Some(Route::Remapped(remapped)) => Some(remapped.source()),
            _ => None,
        }
    }

    /// The MSI address and data the kernel programmed (for reports and tests).
    pub fn message(&self) -> Option<(u32, u32)> {
        match &self.route {
            Some(Route::Remapped(remapped)) => Some(remapped.msi_message()),
            Some(Route::Unsafe(vector)) => Some(compatibility_message(vector.number())),
            None => None,
        }
    }
}

fn compatibility_message(vector: u8) -> (u32, u32) {
    (
        0xfee0_0000 | (u32::from(crate::arch::apic::id()) << 12),
        u32::from(vector),
    )
}

impl Drop for Interrupt<'_> {
    fn drop(&mut self) {
        if let Ok(config) = config_space() {
            self.msi.disable(config);
        }
        // The device can no longer send it; now the entry and the vector go.
        drop(self.route.take());
        crate::debug!("registry", "{}: MSI vector released", self.bdf);
    }
}

/// Gives `device` one MSI vector whose deliveries run `handler`.
pub(super) fn msi(
    device: &Bound,
    handler: Option<Callback>,
    allow_unsafe: bool,
) -> Result<Interrupt<'_>, PassthroughError> {
    let bdf = device.bdf();
    let config = config_space()?;
    let pci = crate::devices::all()
        .and_then(|all| all.device(bdf))
        .ok_or(PassthroughError::NotRegistered(bdf))?;
    let msi =
        Msi::of(config, pci).map_err(|e| PassthroughError::Interrupts(alloc::format!("{e:?}")))?;
    let vector = device_vectors::allocate(handler)
        .map_err(|e| PassthroughError::Interrupts(alloc::format!("{e:?}")))?;
    let route = match interrupt_remapping::status() {
        Ok(_) => Route::Remapped(
            interrupt_remapping::allocate(bdf, vector)
                .map_err(|(e, _)| PassthroughError::Interrupts(alloc::format!("{e:?}")))?,
        ),
        Err(_) if allow_unsafe => Route::Unsafe(vector),
        Err(reason) => return Err(PassthroughError::Interrupts(reason.into())),
    };
    let interrupt = Interrupt {
        bdf,
        msi,
        route: Some(route),
        _handle: PhantomData,
    };
    let (address, data) = interrupt
        .message()
        .ok_or(PassthroughError::Interrupts("no route".into()))?;
    interrupt
        .msi
        .program(config, address, data)
        .map_err(|e| PassthroughError::Interrupts(alloc::format!("{e:?}")))?;
    interrupt.msi.enable(config);
    Ok(interrupt)
}

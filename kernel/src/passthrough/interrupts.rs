//! MSI and MSI-X vectors of a bound device, delivered to its owner's handler. With interrupt remapping
//! each vector gets its own remapping entry that accepts only the device's requester ID (or
//! its bridge alias); the device's MSI capability is programmed by the kernel, never by the
//! owner. Without interrupt remapping a vector is only handed out when the command line said
//! `iommu.allow_unsafe_interrupts` (bind refuses MSI devices otherwise).

use super::{PassthroughError, config_space};
use crate::arch::device_vectors::{self, Callback, DeviceVector};
use crate::dma::RegisterWindow;
use crate::pci::Msi;
use crate::pci::msix::{ENTRY_MASKED, Msix};
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

/// Which message the device sends.
#[derive(Debug)]
enum Source {
    /// Its MSI capability.
    Msi(Msi),
    /// Entry `offset` of its MSI-X table, in the BAR mapped by `table`.
    Msix { table: RegisterWindow, offset: u64 },
}

/// One MSI or MSI-X vector of a bound device, valid while the handle is borrowed. Dropping it
/// turns the message off at the device (MSI disabled, or the MSI-X entry masked and cleared),
/// then frees the remapping entry and the vector.
#[derive(Debug)]
pub struct Interrupt<'a> {
    bdf: Bdf,
    source: Source,
    route: Option<Route>,
    /// Borrowed from the bound handle that asked for it (`Bound::msi`/`msix` tie the lifetime),
    /// so the handle cannot be released while the vector lives.
    _handle: PhantomData<&'a ()>,
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
        match &self.source {
            Source::Msi(msi) => {
                if let Ok(config) = config_space() {
                    msi.disable(config);
                }
            }
            Source::Msix { table, offset } => {
                let _ = table.write32(offset + 12, ENTRY_MASKED);
                let _ = table.write32(*offset, 0);
                let _ = table.write32(offset + 4, 0);
                let _ = table.write32(offset + 8, 0);
            }
        }
        // The device can no longer send it; now the entry and the vector go.
        drop(self.route.take());
        crate::debug!("registry", "{}: MSI vector released", self.bdf);
    }
}

/// The vector and, with interrupt remapping, its entry for `bdf`.
fn route(
    bdf: Bdf,
    handler: Option<Callback>,
    allow_unsafe: bool,
) -> Result<Route, PassthroughError> {
    let fail = |e: &dyn core::fmt::Debug| PassthroughError::Interrupts(alloc::format!("{e:?}"));
    let vector = device_vectors::allocate(handler).map_err(|e| fail(&e))?;
    match interrupt_remapping::status() {
        Ok(_) => Ok(Route::Remapped(
            interrupt_remapping::allocate(bdf, vector).map_err(|(e, _)| fail(&e))?,
        )),
        Err(_) if allow_unsafe => Ok(Route::Unsafe(vector)),
        Err(reason) => Err(PassthroughError::Interrupts(reason.into())),
    }
}

/// The device's PCI record and the config space, for programming its interrupts.
fn device_of(
    bdf: Bdf,
) -> Result<
    (
        &'static crate::ecam::ConfigSpace,
        &'static crate::pci::PciDevice,
    ),
    PassthroughError,
> {
    let pci = crate::devices::all()
        .and_then(|all| all.device(bdf))
        .ok_or(PassthroughError::NotRegistered(bdf))?;
    Ok((config_space()?, pci))
}

/// Gives `device` one MSI vector whose deliveries run `handler`.
pub(super) fn msi<'a>(
    bdf: Bdf,
    handler: Option<Callback>,
    allow_unsafe: bool,
) -> Result<Interrupt<'a>, PassthroughError> {
    let (config, pci) = device_of(bdf)?;
    let msi =
        Msi::of(config, pci).map_err(|e| PassthroughError::Interrupts(alloc::format!("{e:?}")))?;
    if msi.is_enabled(config) {
        // One MSI message per function: a second vector would reprogram the first one's.
        return Err(PassthroughError::Interrupts("MSI is in use already".into()));
    }
    let interrupt = Interrupt {
        bdf,
        route: Some(route(bdf, handler, allow_unsafe)?),
        source: Source::Msi(msi),
        _handle: PhantomData,
    };
    let (address, data) = interrupt
        .message()
        .ok_or(PassthroughError::Interrupts("no route".into()))?;
    msi.program(config, address, data)
        .map_err(|e| PassthroughError::Interrupts(alloc::format!("{e:?}")))?;
    msi.enable(config);
    Ok(interrupt)
}

/// Gives `device` MSI-X table entry `index`, delivering to `handler`: the entry is written
/// masked, MSI-X turned on, then the entry unmasked.
pub(super) fn msix<'a>(
    bdf: Bdf,
    index: u16,
    handler: Option<Callback>,
    allow_unsafe: bool,
) -> Result<Interrupt<'a>, PassthroughError> {
    let (config, pci) = device_of(bdf)?;
    let fail = |e: &dyn core::fmt::Debug| PassthroughError::Interrupts(alloc::format!("{e:?}"));
    let msix = Msix::of(config, pci).map_err(|e| fail(&e))?;
    let offset = msix.entry_offset(index).map_err(|e| fail(&e))?;
    let (_, bar_address, bar_size) = msix.table_bar();
    let table = RegisterWindow::map(bar_address, bar_size).map_err(|e| fail(&e))?;
    let interrupt = Interrupt {
        bdf,
        route: Some(route(bdf, handler, allow_unsafe)?),
        source: Source::Msix { table, offset },
        _handle: PhantomData,
    };
    let (address, data) = interrupt
        .message()
        .ok_or(PassthroughError::Interrupts("no route".into()))?;
    if let Source::Msix { table, offset } = &interrupt.source {
        let write = |at: u64, value: u32| table.write32(at, value).map_err(|e| fail(&e));
        write(offset + 12, ENTRY_MASKED)?;
        write(*offset, address)?;
        write(offset + 4, 0)?;
        write(offset + 8, data)?;
        msix.enable(config);
        write(offset + 12, 0)?;
    }
    Ok(interrupt)
}

//! Interrupt remapping scenario (`test=irq-remap`), proven with two edus' MSIs: edu A's MSI
//! through its own entry reaches A's vector (raised, and on DMA completion); A's MSI carrying
//! the handle of B's entry is dropped by source-ID validation (B's vector stays silent while
//! B itself still gets through); a compatibility-format MSI on a vector nobody owns is counted
//! as stray, not fatal; and a freed entry delivers nothing. Counts come from the kernel's
//! per-vector delivery counters, i.e. from interrupts the CPU actually took.

use crate::dma_tests::{self, Rig};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use moat_edu::{Completion, Direction, INTERRUPT_DMA_DONE};
use moat_iommu::Bdf;
use moat_iommu::entries::{Access, PageSize};
use moat_kernel::arch::{apic, device_vectors};
use moat_kernel::dma::DmaBuffer;
use moat_kernel::ecam::{self, ConfigSpace};
use moat_kernel::pci::Msi;
use moat_kernel::vtd;
use moat_kernel::vtd::interrupt_remapping::{self, RemappedVector};
use moat_kernel::{devices, info, time};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[(
    "irq-remap",
    "two edus: own entry delivers, another device's entry is refused by source-ID validation, \
     a compatibility-format MSI on an unowned vector is a counted stray, a freed entry is dead",
)];

/// TIMEOUT: QEMU delivers an edu MSI during the register write, and a DMA completion 100 ms
/// (virtual) after the command; 1 s is plenty on a loaded TCG host.
const DELIVERY_BUDGET_US: u64 = 1_000_000;
/// How long an interrupt that must not arrive is waited for. A delivered MSI is taken as soon
/// as the raising write returns, so this is ample.
const SILENCE_US: u64 = 200_000;
/// The status bit the scenario raises (any non-zero value makes edu send its MSI).
const RAISED: u32 = 0x1;
/// An IOVA for the completion-interrupt DMA, below edu's 28-bit DMA mask.
const IOVA: u64 = 0x0700_0000;

/// Deliveries that reached the registered callback.
static CALLBACKS: AtomicU64 = AtomicU64::new(0);

fn on_edu_interrupt(_vector: u8) {
    CALLBACKS.fetch_add(1, Ordering::Relaxed);
}

/// Runs `name`, or `None` if it is not an interrupt scenario.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    (name == "irq-remap").then(remap)
}

/// One edu with its MSI capability.
struct Device {
    rig: Rig,
    msi: Msi,
}

/// What a raised interrupt must do.
enum Expect<'a> {
    /// Bring `count` up to the value within [`DELIVERY_BUDGET_US`].
    Reach(&'a dyn Fn() -> u64, u64),
    /// Nothing is waited for: [`SILENCE_US`] pass, and the caller compares counters.
    Silence,
}

impl Device {
    /// Opens edu `bdf` (own domain attached) and gives it a vector with a remapping entry.
    fn open(bdf: Bdf) -> Result<(Self, RemappedVector), String> {
        let rig = dma_tests::rig(bdf)?;
        let device = devices::all()
            .and_then(|all| all.device(bdf))
            .ok_or("device vanished")?;
        let msi = Msi::of(config()?, device).map_err(|e| format!("{bdf}: {e:?}"))?;
        let vector = device_vectors::allocate(Some(on_edu_interrupt))
            .map_err(|e| format!("{bdf}: vector: {e:?}"))?;
        let remapped = interrupt_remapping::allocate(bdf, vector)
            .map_err(|(e, _)| format!("{bdf}: remapping entry: {e:?}"))?;
        Ok((Self { rig, msi }, remapped))
    }

    /// Points the MSI capability at `(address, data)` and enables it.
    fn program(&self, (address, data): (u32, u32)) -> Result<(), String> {
        let config = config()?;
        self.msi
            .program(config, address, data)
            .map_err(|e| format!("{}: MSI: {e:?}", self.rig.bdf))?;
        self.msi.enable(config);
        Ok(())
    }

    /// Raises an interrupt, waits as `expect` says, then acknowledges it at the device.
    fn raise(&mut self, expect: Expect<'_>, what: &str) -> Result<(), String> {
        self.rig.edu.raise_interrupt(RAISED);
        let waited = match expect {
            Expect::Reach(count, target) => {
                time::poll(DELIVERY_BUDGET_US, || (count() >= target).then_some(()))
                    .map_err(|_| format!("{what}: {} deliveries, expected {target}", count()))
            }
            Expect::Silence => {
                time::delay_us(SILENCE_US);
                Ok(())
            }
        };
        let status = self.rig.edu.interrupt_status();
        self.rig.edu.acknowledge_interrupt(status);
        waited
    }

    fn disable(&self) -> Result<(), String> {
        self.msi.disable(config()?);
        Ok(())
    }
}

fn config() -> Result<&'static ConfigSpace, String> {
    ecam::config().ok_or_else(|| String::from("no config space"))
}

/// A's edu, whose requests carry only its own requester ID, and another edu as B.
fn two_edus() -> Result<(Bdf, Bdf), String> {
    let all = devices::all().ok_or("no PCI enumeration")?;
    let edus: Vec<Bdf> = all
        .devices
        .iter()
        .filter(|d| d.vendor == moat_edu::VENDOR_ID && d.device == moat_edu::DEVICE_ID)
        .map(|d| d.bdf)
        .collect();
    let a = *edus
        .iter()
        .find(|bdf| vtd::sources_of(**bdf).is_ok_and(|s| s.len() == 1))
        .ok_or("no edu without bridge aliases")?;
    let b = *edus
        .iter()
        .find(|bdf| **bdf != a)
        .ok_or("the scenario needs a second edu")?;
    Ok((a, b))
}

fn remap() -> Result<(), String> {
    let entries = interrupt_remapping::status()
        .map_err(|reason| format!("interrupt remapping is off ({reason})"))?;
    let (a_bdf, b_bdf) = two_edus()?;
    let (mut a, a_vector) = Device::open(a_bdf)?;
    let (mut b, b_vector) = Device::open(b_bdf)?;
    for (name, device, remapped) in [("A", &a, &a_vector), ("B", &b, &b_vector)] {
        info!(
            "test",
            "irq-remap: edu {name} {}: entry {} of {entries}, vector {}, accepts {:?}",
            device.rig.bdf,
            remapped.handle(),
            remapped.vector(),
            remapped.source()
        );
    }
    own_entry(&mut a, &a_vector)?;
    foreign_entry(&mut a, &a_vector, &mut b, &b_vector)?;
    compatibility_format(&mut a, &a_vector)?;
    let expected = a_vector.deliveries() + b_vector.deliveries();
    let callbacks = CALLBACKS.load(Ordering::Relaxed);
    if callbacks != expected {
        return Err(format!(
            "the callback ran {callbacks} times for {expected} deliveries"
        ));
    }
    freed_entry(&mut a, a_vector)?;
    b.disable()
}

/// A's MSI through A's entry: three raises and one DMA completion arrive on A's vector.
fn own_entry(a: &mut Device, own: &RemappedVector) -> Result<(), String> {
    a.program(own.msi_message())?;
    let count = || own.deliveries();
    for target in 1..=3 {
        a.raise(Expect::Reach(&count, target), "raised MSI on A's own entry")?;
    }
    let buffer = DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))?;
    a.rig
        .map(IOVA, &buffer, PageSize::Size4K, Access::ReadWrite)?;
    a.rig
        .edu
        .transfer_with(
            Direction::ToDevice,
            IOVA,
            0,
            64,
            Completion::Interrupt,
            &dma_tests::now_us,
        )
        .map_err(|e| format!("edu DMA: {e:?}"))?;
    let arrived = time::poll(DELIVERY_BUDGET_US, || (own.deliveries() >= 4).then_some(()));
    let status = a.rig.edu.interrupt_status();
    a.rig.edu.acknowledge_interrupt(status);
    if arrived.is_err() || status & INTERRUPT_DMA_DONE == 0 {
        return Err(format!(
            "DMA completion: {} deliveries (expected 4), edu status {status:#x}",
            own.deliveries()
        ));
    }
    info!(
        "test",
        "irq-remap: own entry: ok ({} deliveries on vector {}: 3 raised, 1 DMA completion)",
        own.deliveries(),
        own.vector()
    );
    Ok(())
}

/// B's MSI reaches B; A's MSI with B's handle reaches nobody; A's own entry works again.
fn foreign_entry(
    a: &mut Device,
    a_vector: &RemappedVector,
    b: &mut Device,
    b_vector: &RemappedVector,
) -> Result<(), String> {
    b.program(b_vector.msi_message())?;
    let b_count = || b_vector.deliveries();
    let b_before = b_count();
    b.raise(
        Expect::Reach(&b_count, b_before + 1),
        "B's MSI on B's own entry",
    )?;

    a.program(b_vector.msi_message())?;
    let counters = || {
        (
            a_vector.deliveries(),
            b_vector.deliveries(),
            device_vectors::stray_count(),
        )
    };
    let before = counters();
    a.raise(Expect::Silence, "A's MSI with B's handle")?;
    let after = counters();
    if after != before {
        return Err(format!(
            "A's MSI with B's handle {} was delivered: (A, B, stray) deliveries {before:?} -> \
             {after:?}; source-ID validation did not hold",
            b_vector.handle()
        ));
    }
    a.program(a_vector.msi_message())?;
    let a_count = || a_vector.deliveries();
    a.raise(
        Expect::Reach(&a_count, before.0 + 1),
        "A's MSI back on its own entry",
    )?;
    info!(
        "test",
        "irq-remap: foreign entry: ok (A's MSI with B's handle {}: dropped, B's vector {} stayed \
         at {}; then A on its own entry: {} deliveries, B on its own: {})",
        b_vector.handle(),
        b_vector.vector(),
        before.1,
        a_vector.deliveries(),
        b_vector.deliveries()
    );
    Ok(())
}

/// A compatibility-format MSI (no remapping handle) on a vector nobody owns: counted as stray.
fn compatibility_format(a: &mut Device, own: &RemappedVector) -> Result<(), String> {
    // Hand a vector out and give it straight back: it is free and known.
    let unowned = device_vectors::allocate(None)
        .map_err(|e| format!("{e:?}"))?
        .number();
    if device_vectors::is_owned(unowned) {
        return Err(format!("vector {unowned} is still owned"));
    }
    let address = 0xfee0_0000 | u32::from(apic::id()) << 12;
    a.program((address, u32::from(unowned)))?;
    let stray_before = device_vectors::stray_count();
    let delivered_before = device_vectors::deliveries(unowned);
    let own_before = own.deliveries();
    a.raise(
        Expect::Reach(&device_vectors::stray_count, stray_before + 1),
        "compatibility-format MSI as stray",
    )?;
    a.disable()?;
    let delivered = device_vectors::deliveries(unowned) - delivered_before;
    if delivered != 1 || own.deliveries() != own_before {
        return Err(format!(
            "compatibility-format MSI: {delivered} deliveries on vector {unowned}, A's own \
             vector {own_before} -> {}",
            own.deliveries()
        ));
    }
    info!(
        "test",
        "irq-remap: compatibility format: ok (address {address:#x} vector {unowned}, owned by \
         nobody: counted as stray ({} so far) and ignored; QEMU passes it through with IR on)",
        device_vectors::stray_count()
    );
    Ok(())
}

/// After A's entry is freed, A's old message reaches nothing: neither its old vector nor the
/// stray count moves.
fn freed_entry(a: &mut Device, own: RemappedVector) -> Result<(), String> {
    let message = own.msi_message();
    let (handle, vector) = (own.handle(), own.vector());
    drop(own);
    a.program(message)?;
    let counters = || {
        (
            device_vectors::deliveries(vector),
            device_vectors::stray_count(),
        )
    };
    let before = counters();
    a.raise(Expect::Silence, "A's MSI on its freed entry")?;
    a.disable()?;
    let after = counters();
    if after != before {
        return Err(format!(
            "the freed entry {handle} still delivered: (vector {vector}, stray) {before:?} -> \
             {after:?}"
        ));
    }
    info!(
        "test",
        "irq-remap: freed entry: ok (entry {handle} cleared and invalidated; A's old message \
         reached nothing)"
    );
    Ok(())
}

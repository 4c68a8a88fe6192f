//! Device reset scenario (`test=reset`): each reset method on the QEMU 7.2 device that needs
//! it, proven by canaries (facts H.7) set before the reset and read after it, and by what the
//! reset module's own check reports. FLR on an nvme (also CC and CSTS.RDY cleared, MSI-X
//! table zeroed), a PM reset on an e1000e detected as ineffective with the bus reset used
//! instead (also the e1000e's RDBAL0 cleared), a bus reset for an edu alone below a root
//! port, a bus reset refused for an edu with a sibling behind a pcie-pci-bridge, then
//! approved, and a bus reset that reaches a nested bridge, whose bus numbers come back.

use alloc::format;
use alloc::string::String;
use moat_iommu::Bdf;
use moat_kernel::dma::RegisterWindow;
use moat_kernel::ecam::ConfigSpace;
use moat_kernel::pci::reset::{Register, Reset, ResetError, ResetMethod, reset_for_release};
use moat_kernel::pci::{
    BarKind, CapabilityId, ConfigAccess, ConfigAccessExt, Enumeration, PciDevice,
};
use moat_kernel::{devices, ecam, info};

mod cases;

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[(
    "reset",
    "FLR (nvme), PM detected ineffective then bus (e1000e), bus (edu), refused and nested bus resets",
)];

/// The machine under test.
struct Machine {
    config: &'static ConfigSpace,
    all: &'static Enumeration,
}

/// One case: a description of what it saw, or why it failed.
type Case = fn(&Machine) -> Result<String, String>;

/// Runs `name`, or `None` if it is not the reset scenario.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    if name != "reset" {
        return None;
    }
    let (Some(config), Some(all)) = (ecam::config(), devices::all()) else {
        return Some(Err("no PCI config space or enumeration".into()));
    };
    let machine = Machine { config, all };
    let cases: &[(&str, Case)] = &[
        ("reset-flr", cases::flr_nvme),
        ("reset-pm-then-bus", cases::pm_then_bus_e1000e),
        ("reset-bus", cases::bus_edu_alone),
        ("reset-bus-refused", cases::bus_refused_then_approved),
        ("reset-bus-nested", cases::bus_nested_bridge),
    ];
    for (case, body) in cases {
        match body(&machine) {
            Ok(detail) => info!("test", "{case}: ok ({detail})"),
            Err(why) => return Some(Err(format!("{case}: {why}"))),
        }
    }
    Some(Ok(()))
}

const NVME: (u16, u16) = (0x1b36, 0x0010);
const E1000E: (u16, u16) = (0x8086, 0x10d3);
const EDU: (u16, u16) = (moat_edu::VENDOR_ID, moat_edu::DEVICE_ID);

impl Machine {
    /// The first function with `id` whose parent bridge and bus-reset set satisfy `fits`.
    fn find(
        &self,
        id: (u16, u16),
        what: &str,
        fits: impl Fn(&PciDevice, &[Bdf]) -> bool,
    ) -> Result<&'static PciDevice, String> {
        self.all
            .devices
            .iter()
            .filter(|device| (device.vendor, device.device) == id)
            .find(|device| {
                let parent = self.parent(device.bdf);
                let affected =
                    moat_kernel::pci::reset::devices_affected_by_bus_reset(self.all, device.bdf);
                parent.is_some_and(|parent| fits(parent, &affected))
            })
            .ok_or(format!("no {what} in this machine"))
    }

    fn parent(&self, bdf: Bdf) -> Option<&'static PciDevice> {
        self.all
            .devices
            .iter()
            .find(|device| device.secondary_bus == Some(bdf.bus()))
    }

    fn reset(
        &self,
        device: &PciDevice,
        may_reset: impl FnOnce(&[Bdf]) -> bool,
    ) -> Result<Reset, ResetError> {
        reset_for_release(self.config, self.all, device.bdf, may_reset)
    }

    /// Facts H.7's canaries: Command 0x0006, Cache Line Size 0x10, Interrupt Line 0x0b if it
    /// is 0, MSI data 0x4d4f, MSI-X enabled with its Function Mask (BARs stay as assigned).
    fn set_canaries(&self, device: &PciDevice) {
        let (config, bdf) = (self.config, device.bdf);
        config.write32(bdf, 0x04, 0x0006);
        let dword = config.read32(bdf, 0x0c);
        config.write32(bdf, 0x0c, (dword & !0x40ff) | 0x10);
        let dword = config.read32(bdf, 0x3c);
        if dword & 0xff == 0 {
            config.write32(bdf, 0x3c, dword | 0x0b);
        }
        if let Some(msi) = device.capability(CapabilityId::Msi) {
            let cap = u16::from(msi.offset);
            let wide = config.read16(bdf, cap + 2) & 0x80 != 0;
            config.write32(bdf, if wide { cap + 0x0c } else { cap + 8 }, 0x4d4f);
        }
        if let Some(msix) = device.capability(CapabilityId::MsiX) {
            let cap = u16::from(msix.offset);
            config.write32(bdf, cap, config.read32(bdf, cap) | 0xc000_0000);
        }
    }

    /// What release must leave: Command 0, BARs as enumerated, MSI and MSI-X off.
    fn released(&self, device: &PciDevice) -> Result<(), String> {
        let (config, bdf) = (self.config, device.bdf);
        let command = config.read16(bdf, 0x04);
        if command != 0 {
            return Err(format!("{bdf}: Command {command:#06x} after release"));
        }
        for bar in &device.bars {
            let offset = 0x10 + 4 * u16::from(bar.index);
            let mask = if bar.kind == BarKind::Io { !3 } else { !0xf };
            let mut read = u64::from(config.read32(bdf, offset) & mask);
            if bar.kind == BarKind::Memory64 {
                read |= u64::from(config.read32(bdf, offset + 4)) << 32;
            }
            if read != bar.address {
                return Err(format!(
                    "{bdf}: BAR{} {read:#x}, not {:#x}",
                    bar.index, bar.address
                ));
            }
        }
        let control = |id| {
            device
                .capability(id)
                .map_or(0, |cap| config.read16(bdf, u16::from(cap.offset) + 2))
        };
        if control(CapabilityId::Msi) & 1 != 0 || control(CapabilityId::MsiX) & 0xc000 != 0 {
            return Err(format!("{bdf}: MSI or MSI-X still on after release"));
        }
        Ok(())
    }

    /// BAR 0 of `device`, mapped, with memory decoding on (Command = Memory Space only).
    fn bar0(&self, device: &PciDevice) -> Result<RegisterWindow, String> {
        let bar = device
            .bars
            .iter()
            .find(|bar| bar.index == 0 && bar.kind != BarKind::Io)
            .ok_or(format!("{}: no memory BAR 0", device.bdf))?;
        self.config
            .write_command(device.bdf, pci_types::CommandRegister::MEMORY_ENABLE);
        RegisterWindow::map(bar.address, bar.size).map_err(|e| format!("mapping BAR 0: {e:?}"))
    }
}

/// `reset` used `method` and its check saw each of `registers` change on `device`.
fn expect(
    reset: &Reset,
    method: ResetMethod,
    device: Bdf,
    registers: &[Register],
) -> Result<(), String> {
    if reset.method != method {
        return Err(format!("method {} used, expected {method}", reset.method));
    }
    for register in registers {
        let seen = reset
            .evidence
            .iter()
            .any(|seen| seen.device == device && seen.register == *register);
        if !seen {
            return Err(format!(
                "the check did not see {device} {register} change: {reset:?}"
            ));
        }
    }
    Ok(())
}

/// One line: method, earlier failures, what the check saw.
fn summary(reset: &Reset) -> String {
    let mut text = format!("method {}", reset.method);
    for failed in &reset.fallbacks {
        text.push_str(&format!("; tried first: {failed}"));
    }
    text.push_str("; check saw:");
    for seen in &reset.evidence {
        text.push_str(&format!(" {seen},"));
    }
    text.pop();
    text
}

/// The registers every QEMU function with MSI gets canaries in.
const HEADER: [Register; 4] = [
    Register::Command,
    Register::CacheLineSize,
    Register::InterruptLine,
    Register::Bar(0),
];

//! What a reset reports: the method that worked and what its check saw, or why the device
//! could not be reset (so the caller keeps it blocked).

use alloc::vec::Vec;
use core::fmt;

use moat_iommu::Bdf;

/// How a function was reset, in the order they are tried (Linux's `reset_method` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetMethod {
    /// Function Level Reset: Initiate FLR in the PCI Express Device Control register.
    Flr,
    /// PCI power management: D3hot, then D0, on a function whose No_Soft_Reset is clear.
    Pm,
    /// Secondary Bus Reset on the bridge above: resets every function below it.
    Bus,
}

impl fmt::Display for ResetMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ResetMethod::Flr => "flr",
            ResetMethod::Pm => "pm",
            ResetMethod::Bus => "bus",
        })
    }
}

/// A configuration register the reset arms, checks or restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// Vendor and device ID (offset 0): all ones from a function that did not answer before
    /// a bus reset, its ID after it.
    Identity,
    /// Command (offset 0x04).
    Command,
    /// Cache Line Size (offset 0x0c).
    CacheLineSize,
    /// Interrupt Line (offset 0x3c).
    InterruptLine,
    /// BAR slot n, address bits (the upper half of a 64-bit BAR is its own slot).
    Bar(u8),
    /// MSI Message Data.
    MsiData,
    /// MSI Enable.
    MsiEnable,
    /// MSI-X Enable and Function Mask.
    MsixControl,
    /// PMCSR PowerState.
    PowerState,
    /// A bridge's primary, secondary and subordinate bus numbers.
    BusNumbers,
    /// A bridge's ACS Control register.
    AcsControl,
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Register::Identity => f.write_str("vendor/device ID"),
            Register::Command => f.write_str("Command"),
            Register::CacheLineSize => f.write_str("Cache Line Size"),
            Register::InterruptLine => f.write_str("Interrupt Line"),
            Register::Bar(slot) => write!(f, "BAR{slot}"),
            Register::MsiData => f.write_str("MSI data"),
            Register::MsiEnable => f.write_str("MSI enable"),
            Register::MsixControl => f.write_str("MSI-X enable/mask"),
            Register::PowerState => f.write_str("PM state"),
            Register::BusNumbers => f.write_str("bus numbers"),
            Register::AcsControl => f.write_str("ACS control"),
        }
    }
}

/// One register seen by the check: the value armed (or found) before the reset and the
/// value read after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The function read.
    pub device: Bdf,
    /// The register.
    pub register: Register,
    /// Its checked bits before the reset.
    pub before: u32,
    /// The same bits after the reset.
    pub after: u32,
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {:#x}->{:#x}",
            self.device, self.register, self.before, self.after
        )
    }
}

/// A register that did not take the value written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// The function written.
    pub device: Bdf,
    /// The register.
    pub register: Register,
    /// What was written (the bits compared).
    pub wrote: u32,
    /// What was read back.
    pub read: u32,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: wrote {:#x}, read {:#x}",
            self.device, self.register, self.wrote, self.read
        )
    }
}

/// A reset that was done and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// The method whose effect the check saw.
    pub method: ResetMethod,
    /// Methods tried before it that failed, in order (a PM reset on QEMU 7.2 changes
    /// nothing and ends here as [`ResetError::CheckFailed`]).
    pub fallbacks: Vec<ResetError>,
    /// What the check saw change on every function the reset reached: each canary armed
    /// before the reset, read back at its reset value.
    pub evidence: Vec<Observation>,
}

/// Why a function was not reset. Every variant means: keep the device blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetError {
    /// The function is not in the enumeration.
    UnknownDevice(Bdf),
    /// The function is a bridge: resetting it resets everything below it, which this
    /// module does not do (Linux does not bus-reset bridges either).
    Bridge(Bdf),
    /// No method applies: no FLR, no PM capability or No_Soft_Reset set, and no bridge
    /// above the function (it sits on a root bus).
    NoMethod,
    /// A bus reset would reach `devices` (the function itself included) and the caller's
    /// predicate refused it.
    NotApproved {
        /// Every function below the bridge that would be reset.
        devices: Vec<Bdf>,
    },
    /// The method ran but `what` did not change: the reset did not happen (or the
    /// issuing bridge itself changed).
    CheckFailed {
        /// The method checked.
        method: ResetMethod,
        /// The first register that kept its value.
        what: Observation,
    },
    /// No canary stuck on the function before the reset, so a reset could not be proven.
    Unverifiable {
        /// The function.
        device: Bdf,
    },
    /// A function did not answer configuration reads within the budget after the reset.
    Timeout {
        /// The method that ran.
        method: ResetMethod,
        /// The function that stayed silent.
        device: Bdf,
        /// The budget, in microseconds.
        budget_us: u64,
    },
    /// The reset worked but restoring the configuration after it did not stick.
    RestoreFailed {
        /// The method that ran.
        method: ResetMethod,
        /// The register that did not take the value.
        mismatch: Mismatch,
    },
}

impl fmt::Display for ResetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetError::UnknownDevice(bdf) => write!(f, "{bdf} is not an enumerated function"),
            ResetError::Bridge(bdf) => {
                write!(
                    f,
                    "{bdf} is a bridge; its reset would reach every device below"
                )
            }
            ResetError::NoMethod => {
                f.write_str("no reset method: no FLR, no usable PM reset, no bridge above")
            }
            ResetError::NotApproved { devices } => {
                f.write_str("bus reset not approved; it would reset")?;
                for device in devices {
                    write!(f, " {device}")?;
                }
                Ok(())
            }
            ResetError::CheckFailed { method, what } => {
                write!(f, "{method} reset had no effect: {what}")
            }
            ResetError::Unverifiable { device } => {
                write!(
                    f,
                    "{device}: no canary register stuck; a reset cannot be checked"
                )
            }
            ResetError::Timeout {
                method,
                device,
                budget_us,
            } => write!(
                f,
                "{method} reset: {device} did not answer within {budget_us} us"
            ),
            ResetError::RestoreFailed { method, mismatch } => {
                write!(f, "{method} reset done but restore failed: {mismatch}")
            }
        }
    }
}

//! Kernel command-line parser: whitespace-separated `key=value` or bare `key` options.
//!
//! Nothing is silently ignored: unknown, malformed and repeated options are collected as
//! [`Problem`]s for the boot report. Adding an option is one field in [`CommandLine`], one arm in
//! [`CommandLine::apply`] and one line in [`OPTIONS`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::log::Level;
use moat_iommu::Bdf;

mod net;
pub use net::Ipv4WithPrefix;

/// Every option the kernel understands, as `(syntax, one-line help)`, for the README and the
/// boot report.
pub const OPTIONS: &[(&str, &str)] = &[
    (
        "poweroff",
        "power the machine off (QEMU exit) instead of idling when the kernel is done",
    ),
    (
        "test=NAME",
        "run the in-kernel test NAME (characters a-z 0-9 - _ .) and report its result",
    ),
    (
        "log=LEVEL",
        "most verbose log level shown: error, warn, info (default), debug or trace",
    ),
    (
        "iommu=on|off",
        "off: leave DMA remapping off on purpose (no DMA isolation, for comparisons)",
    ),
    (
        "iommu.invalidation=register|queued",
        "VT-d invalidation interface; default queued where the unit has ECAP.QI",
    ),
    (
        "iommu.fault_limit=N/MSms",
        "quarantine a bound device after N DMA faults within MS milliseconds (default 8/1000ms)",
    ),
    (
        "drivers=all|none|NAME[,NAME...]",
        "which drivers of the table start at boot (default all); others' devices stay blocked",
    ),
    (
        "net.ip=A.B.C.D/N",
        "the network driver's IPv4 address and prefix length, e.g. net.ip=10.0.2.15/24",
    ),
    (
        "net.gw=A.B.C.D",
        "the network driver's default gateway, inside net.ip's subnet, e.g. net.gw=10.0.2.2",
    ),
    (
        "iommu.allow_unsafe_interrupts",
        "without interrupt remapping, still let owners bind devices that use MSI/MSI-X",
    ),
    (
        "iommu.passthrough=BDF[,BDF...]",
        "benchmark yardstick only: these devices' groups pass DMA through untranslated (no isolation)",
    ),
];

/// The fault policy: quarantine after `count` faults within `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultLimit {
    /// Faults tolerated inside the window (the next one quarantines).
    pub count: u32,
    /// The window in milliseconds.
    pub window_ms: u32,
}

impl Default for FaultLimit {
    fn default() -> Self {
        Self {
            count: 8,
            window_ms: 1000,
        }
    }
}

/// `iommu.invalidation=`: which VT-d invalidation interface to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationChoice {
    /// The register interface (CCMD / IOTLB_REG).
    Register,
    /// The queued interface.
    Queued,
}

/// `drivers=`: which drivers of the table start at boot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// Every driver (the default).
    #[default]
    All,
    /// None: every device stays blocked until someone binds it.
    None,
    /// Only the drivers named.
    Only(Vec<String>),
}

impl DriverChoice {
    /// Whether the driver called `name` starts.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// The parsed command line. Options that were absent keep their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// `poweroff`: power off when done instead of idling.
    pub poweroff: bool,
    /// `test=NAME`: the in-kernel test to run, if any.
    pub test: Option<String>,
    /// `log=LEVEL`: the most verbose level that is logged (default [`Level::Info`]).
    pub log_level: Level,
    /// `iommu=off`: DMA remapping deliberately left off.
    pub iommu_off: bool,
    /// `iommu.invalidation=`: the requested invalidation interface (None: the default).
    pub invalidation: Option<InvalidationChoice>,
    /// `iommu.fault_limit`: when a bound device is quarantined for faulting.
    pub fault_limit: FaultLimit,
    /// `iommu.allow_unsafe_interrupts`: MSI devices may be bound without interrupt remapping.
    pub allow_unsafe_interrupts: bool,
    /// `iommu.passthrough=`: devices whose groups get pass-through context entries (TT = 2)
    /// when attached, as the benchmark's yardstick. Their DMA is not isolated.
    pub passthrough: Vec<Bdf>,
    /// `drivers=`: which drivers start at boot.
    pub drivers: DriverChoice,
    /// `net.ip=`: the network stack's address and prefix (None: no network services).
    pub net_address: Option<Ipv4WithPrefix>,
    /// `net.gw=`: the network stack's default gateway.
    pub net_gateway: Option<core::net::Ipv4Addr>,
    /// Everything that was wrong with the line, in the order it was found.
    pub problems: Vec<Problem>,
}

/// Something wrong with one option on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The option name is not one the kernel knows; `option` is the whole token.
    Unknown {
        /// The token as written, e.g. `foo=bar`.
        option: String,
    },
    /// The option is known but its value (or lack of one) is invalid; it was not applied.
    Malformed {
        /// The token as written, e.g. `test=`.
        option: String,
        /// Why it was rejected, e.g. "test name must not be empty".
        reason: &'static str,
    },
    /// The option was validly given more than once; the last valid value was used.
    Repeated {
        /// The option name, e.g. `log`.
        key: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unknown { option } => write!(f, "unknown option `{option}`"),
            Problem::Malformed { option, reason } => {
                write!(f, "malformed option `{option}`: {reason}")
            }
            Problem::Repeated { key } => {
                write!(f, "option `{key}` given twice or more; the last one wins")
            }
        }
    }
}

/// Parses a kernel command line. Never fails: problems are recorded in
/// [`CommandLine::problems`] and the affected options keep their previous values.
pub fn parse(line: &str) -> CommandLine {
    let mut command_line = CommandLine::default();
    // Names of options that were applied at least once; a second application is `Repeated`.
    let mut applied: Vec<&str> = Vec::new();
    let mut reported_repeats: Vec<&str> = Vec::new();

    for token in line.split_whitespace() {
        let (key, value) = match token.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (token, None),
        };
        match command_line.apply(key, value) {
            Ok(()) => {
                if applied.contains(&key) {
                    if !reported_repeats.contains(&key) {
                        reported_repeats.push(key);
                        command_line.problems.push(Problem::Repeated {
                            key: key.to_string(),
                        });
                    }
                } else {
                    applied.push(key);
                }
            }
            Err(Rejection::Unknown) => command_line.problems.push(Problem::Unknown {
                option: token.to_string(),
            }),
            Err(Rejection::Malformed(reason)) => command_line.problems.push(Problem::Malformed {
                option: token.to_string(),
                reason,
            }),
        }
    }
    command_line
}

/// Why [`CommandLine::apply`] did not apply an option.
enum Rejection {
    Unknown,
    Malformed(&'static str),
}

impl CommandLine {
    /// Applies one option; on error nothing is changed. This match is the option table.
    fn apply(&mut self, key: &str, value: Option<&str>) -> Result<(), Rejection> {
        match key {
            "poweroff" => {
                no_value(value, "poweroff takes no value")?;
                self.poweroff = true;
            }
            "test" => self.test = Some(test_name(value)?.to_string()),
            "log" => self.log_level = log_level(value)?,
            "iommu" => {
                self.iommu_off = match value {
                    Some("on") => false,
                    Some("off") => true,
                    _ => return Err(Rejection::Malformed("iommu takes on or off")),
                }
            }
            "iommu.invalidation" => {
                self.invalidation = Some(match value {
                    Some("register") => InvalidationChoice::Register,
                    Some("queued") => InvalidationChoice::Queued,
                    _ => {
                        return Err(Rejection::Malformed(
                            "iommu.invalidation takes register or queued",
                        ));
                    }
                })
            }
            "iommu.fault_limit" => self.fault_limit = fault_limit(value)?,
            "iommu.allow_unsafe_interrupts" => {
                no_value(value, "iommu.allow_unsafe_interrupts takes no value")?;
                self.allow_unsafe_interrupts = true;
            }
            "iommu.passthrough" => self.passthrough = device_list(value)?,
            "drivers" => self.drivers = drivers(value)?,
            "net.ip" => self.net_address = Some(net::address(value)?),
            "net.gw" => self.net_gateway = Some(net::gateway(value)?),
            "" => return Err(Rejection::Malformed("option name must not be empty")),
            _ => return Err(Rejection::Unknown),
        }
        Ok(())
    }
}

fn no_value(value: Option<&str>, reason: &'static str) -> Result<(), Rejection> {
    match value {
        None => Ok(()),
        Some(_) => Err(Rejection::Malformed(reason)),
    }
}

fn test_name(value: Option<&str>) -> Result<&str, Rejection> {
    let name = value.ok_or(Rejection::Malformed("test needs a name: test=NAME"))?;
    if name.is_empty() {
        return Err(Rejection::Malformed("test name must not be empty"));
    }
    let allowed = |byte: u8| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'-' | b'_' | b'.')
    };
    if !name.bytes().all(allowed) {
        return Err(Rejection::Malformed(
            "test name may only contain a-z, 0-9, '-', '_' and '.'",
        ));
    }
    Ok(name)
}

fn drivers(value: Option<&str>) -> Result<DriverChoice, Rejection> {
    match value {
        Some("all") => Ok(DriverChoice::All),
        Some("none") => Ok(DriverChoice::None),
        Some(list) if !list.is_empty() => {
            let names: Vec<String> = list.split(',').map(String::from).collect();
            let valid = |name: &String| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            };
            if names.iter().all(valid) {
                Ok(DriverChoice::Only(names))
            } else {
                Err(Rejection::Malformed(
                    "drivers takes all, none or driver names (a-z 0-9 -) separated by commas",
                ))
            }
        }
        _ => Err(Rejection::Malformed(
            "drivers needs a value: drivers=all|none|NAME[,NAME...]",
        )),
    }
}

fn log_level(value: Option<&str>) -> Result<Level, Rejection> {
    let name = value.ok_or(Rejection::Malformed(
        "log needs a level: log=error|warn|info|debug|trace",
    ))?;
    Level::parse(name).ok_or(Rejection::Malformed(
        "log level must be one of error, warn, info, debug, trace",
    ))
}

#[cfg(test)]
mod tests;

/// Parses `BDF[,BDF...]` (each `BB:DD.F` or `SSSS:BB:DD.F`, hexadecimal), no device twice.
fn device_list(value: Option<&str>) -> Result<Vec<Bdf>, Rejection> {
    const WHY: &str =
        "iommu.passthrough takes PCI addresses separated by commas, e.g. 00:03.0,00:04.0";
    let list = value
        .filter(|v| !v.is_empty())
        .ok_or(Rejection::Malformed(WHY))?;
    let mut devices = Vec::new();
    for text in list.split(',') {
        let bdf: Bdf = text.parse().map_err(|_| Rejection::Malformed(WHY))?;
        if devices.contains(&bdf) {
            return Err(Rejection::Malformed(
                "iommu.passthrough names a device twice",
            ));
        }
        devices.push(bdf);
    }
    Ok(devices)
}

/// Parses `N/MSms`, both positive.
fn fault_limit(value: Option<&str>) -> Result<FaultLimit, Rejection> {
    const WHY: &str = "iommu.fault_limit takes N/MSms with N and MS positive, e.g. 8/1000ms";
    let (count, window) = value
        .and_then(|v| v.split_once('/'))
        .ok_or(Rejection::Malformed(WHY))?;
    let window = window.strip_suffix("ms").ok_or(Rejection::Malformed(WHY))?;
    let count: u32 = count.parse().map_err(|_| Rejection::Malformed(WHY))?;
    let window_ms: u32 = window.parse().map_err(|_| Rejection::Malformed(WHY))?;
    if count == 0 || window_ms == 0 {
        return Err(Rejection::Malformed(WHY));
    }
    Ok(FaultLimit { count, window_ms })
}

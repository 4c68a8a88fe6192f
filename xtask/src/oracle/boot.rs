//! Booting the Linux guest under QEMU: the command line, and turning its serial log into a
//! [`LinuxReport`] or an error that shows everything QEMU and Linux printed.

use std::process::Command;
use std::time::Duration;

use super::{LinuxGuest, LinuxReport, parse_linux_report};

/// The kernel command line: serial console, the IOMMU on in strict (unbatched) invalidation
/// mode, and QEMU ends instead of hanging if the kernel panics (`panic=-1` + `-no-reboot`).
const KERNEL_CMDLINE: &str = "console=ttyS0 intel_iommu=on iommu.strict=1 panic=-1 quiet";

/// A reasonable timeout for one [`boot_linux`] call.
// TIMEOUT: the guest boots, reports and powers off in about 5-11 s under TCG on an idle host;
// two minutes leaves room for a loaded CI machine and still ends a hung guest.
pub(crate) const LINUX_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The QEMU command that boots `guest` with `machine_args` (extra devices) added.
pub(super) fn linux_command(guest: &LinuxGuest, machine_args: &[String]) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-machine", "q35", "-accel", "tcg", "-m", "512M"])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .args(["-serial", "stdio", "-device", "intel-iommu"])
        .args(machine_args)
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initrd)
        .args(["-append", KERNEL_CMDLINE]);
    command
}

/// Boots `guest` on a q35 machine with an Intel IOMMU plus `machine_args` (QEMU arguments such
/// as `-device edu`), and parses its report.
///
/// The guest powers off (`poweroff -f`), so QEMU exits with status 0, which `moat_tests`
/// classifies as a reset; success is judged by the presence of both marker lines. A failure
/// carries the outcome, the command line, QEMU's stderr and the whole serial log.
pub(crate) fn boot_linux(
    guest: &LinuxGuest,
    machine_args: &[String],
    timeout: Duration,
) -> Result<LinuxReport, String> {
    let command = linux_command(guest, machine_args);
    let run = moat_tests::run(command, timeout).map_err(|e| format!("cannot run QEMU: {e}"))?;
    let mut report = parse_linux_report(&run.serial).map_err(|problem| {
        format!(
            "the Linux oracle guest failed: {problem}\n\
             outcome: {:?} after {:.1} s\n\
             command: {}\n\
             --- QEMU stderr ---\n{}\n\
             --- serial log ---\n{}",
            run.outcome,
            run.elapsed.as_secs_f64(),
            run.command_line,
            or_empty(run.stderr.trim_end()),
            or_empty(run.serial.trim_end())
        )
    })?;
    report.serial = run.serial;
    Ok(report)
}

fn or_empty(text: &str) -> &str {
    if text.is_empty() { "(empty)" } else { text }
}

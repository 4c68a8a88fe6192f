//! "Linux agrees": for every topology in [`oracle::topologies`], boots Moat and the Linux
//! oracle guest on the same QEMU machine and makes two checks: the PCI functions Moat's boot
//! report lists are the ones Linux finds (`linux-agrees-pci-<topology>`), and Moat's IOMMU
//! groups divide the devices exactly as Linux's do (`linux-agrees-groups-<topology>`; group
//! numbers are ignored).
//!
//! Each topology runs its two QEMUs side by side (never more than two at once); topologies run
//! one after another. Output follows the scenario runner: `PASS <check> (N s)` or `FAIL
//! <check>: <why>`, one line per check; if either check of a topology failed, both serial logs
//! follow. Linux's IOMMU groups are printed for every topology (one line per group).

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use moat_tests::{Expect, RunResult};

use crate::oracle::{self, LinuxGuest, LinuxReport};
use crate::qemu::{self, Boot, Firmware, Machine};

/// Prefix of the PCI check's name; the topology's name follows.
const PCI_CHECK_PREFIX: &str = "linux-agrees-pci-";
/// Prefix of the IOMMU group check's name; the topology's name follows.
const GROUPS_CHECK_PREFIX: &str = "linux-agrees-groups-";
/// The kernel command line of the Moat boot: print the boot report, then power off.
const MOAT_CMDLINE: &str = "poweroff";

/// Runs the check for every topology and prints one `PASS`/`FAIL` line each, then a summary.
/// An error names the checks that failed (or says why none could run).
pub(crate) fn run_oracle_checks(kernel: &Path) -> Result<(), String> {
    crate::provision::ensure_packages(crate::provision::QEMU)?;
    let cache = crate::root().join(".cache/linux");
    let guest = oracle::ensure_linux(&cache).map_err(|e| {
        format!(
            "cannot provision the Linux oracle guest in {}: {e}",
            cache.display()
        )
    })?;
    eprintln!(
        "xtask: Linux oracle guest {} ({})",
        guest.version,
        guest.kernel.display()
    );
    let started = Instant::now();
    let (mut passed, mut failed) = (0, Vec::new());
    for (topology, args) in oracle::topologies() {
        let check = check_topology(kernel, &guest, &args);
        print!("{}", describe(topology, &check));
        for (name, verdict) in check.verdicts(topology) {
            if verdict.is_ok() {
                passed += 1;
            } else {
                failed.push(name);
            }
        }
    }
    eprintln!(
        "xtask: oracle: {passed} passed, {} failed in {:.1} s",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    match (passed, failed.is_empty()) {
        (0, true) => Err("no oracle topology to check".into()),
        (_, true) => Ok(()),
        (_, false) => Err(format!(
            "{} oracle check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        )),
    }
}

/// Both boots of one topology and what they add up to.
struct Checked {
    /// Moat's run (or why QEMU could not be run).
    moat: io::Result<RunResult>,
    /// Linux's report (or why the guest failed, with its serial log).
    linux: Result<LinuxReport, String>,
    /// `Ok` when Moat booted, reported PCI functions and Linux agrees on them.
    pci: Result<(), String>,
    /// `Ok` when Moat booted, reported IOMMU groups and they partition the devices as
    /// Linux's do.
    groups: Result<(), String>,
    /// Wall-clock time for both boots.
    elapsed: Duration,
}

/// Boots Moat and Linux with the topology's `args` at the same time and judges the result.
fn check_topology(kernel: &Path, guest: &LinuxGuest, args: &[String]) -> Checked {
    let mut machine = Machine::minimal();
    machine.devices.extend(args.iter().cloned());
    let boot = Boot::Kernel {
        image: kernel.to_path_buf(),
        cmdline: MOAT_CMDLINE.into(),
    };
    let moat_command = qemu::command(&machine, &boot, Firmware::Bios);
    let started = Instant::now();
    let (moat, linux) = thread::scope(|scope| {
        let linux = scope.spawn(|| oracle::boot_linux(guest, args, oracle::LINUX_BOOT_TIMEOUT));
        let moat = moat_tests::run(moat_command, qemu::KERNEL_TIMEOUT);
        let linux = linux
            .join()
            .unwrap_or_else(|_| Err("the Linux boot thread panicked".into()));
        (moat, linux)
    });
    let pci = judge(&moat, &linux);
    let groups = judge_groups(&moat, &linux);
    Checked {
        moat,
        linux,
        pci,
        groups,
        elapsed: started.elapsed(),
    }
}

impl Checked {
    /// Each check's name (for `topology`) and verdict.
    fn verdicts(&self, topology: &str) -> [(String, &Result<(), String>); 2] {
        [
            (format!("{PCI_CHECK_PREFIX}{topology}"), &self.pci),
            (format!("{GROUPS_CHECK_PREFIX}{topology}"), &self.groups),
        ]
    }
}

/// Moat's run if it was a good boot (status 33 with `moat: ready`).
fn good_boot(moat: &io::Result<RunResult>) -> Result<&RunResult, String> {
    let moat = match moat {
        Ok(run) => run,
        Err(error) => return Err(format!("could not run Moat's QEMU: {error}")),
    };
    let no_text: [&str; 0] = [];
    moat_tests::check(&Expect::success(no_text), moat)
        .map_err(|mismatch| format!("Moat's boot failed: {mismatch}"))?;
    Ok(moat)
}

/// Whether Moat's run is a good boot whose `pci:` lines list exactly the functions Linux found.
fn judge(moat: &io::Result<RunResult>, linux: &Result<LinuxReport, String>) -> Result<(), String> {
    let moat = good_boot(moat)?;
    let moat_devices = oracle::parse_moat_pci(&moat.serial);
    if moat_devices.is_empty() {
        return Err("Moat's boot report has no `pci: BDF vvvv:dddd cccccc ...` line".into());
    }
    if let Some(count) = reported_function_count(&moat.serial)
        && count != moat_devices.len()
    {
        return Err(format!(
            "Moat's boot report says `pci: {count} functions` but lists {} in the expected \
             format",
            moat_devices.len()
        ));
    }
    let linux = linux
        .as_ref()
        .map_err(|_| "the Linux oracle guest failed (see its log below)".to_string())?;
    oracle::compare(&moat_devices, &linux.devices)
}

/// Whether Moat's run is a good boot whose `iommu group N:` lines divide the devices into the
/// same groups as Linux's `/sys/kernel/iommu_groups`.
fn judge_groups(
    moat: &io::Result<RunResult>,
    linux: &Result<LinuxReport, String>,
) -> Result<(), String> {
    let moat = good_boot(moat)?;
    let moat_groups = oracle::parse_moat_groups(&moat.serial)?;
    if moat_groups.is_empty() {
        return Err(
            "Moat's boot report has no `iommu group N: BDF ...` line (is DMA remapping off?)"
                .into(),
        );
    }
    let linux = linux
        .as_ref()
        .map_err(|_| "the Linux oracle guest failed (see its log below)".to_string())?;
    if linux.groups.is_empty() {
        return Err("Linux reported no IOMMU groups (its IOMMU log lines follow)".into());
    }
    oracle::compare_groups(&moat_groups, &linux.groups)
}

/// `N` from the boot report's `pci: N functions` line, if there is one.
fn reported_function_count(serial: &str) -> Option<usize> {
    serial.lines().find_map(|line| {
        line.trim()
            .strip_prefix("pci:")?
            .trim()
            .strip_suffix("functions")?
            .trim()
            .parse()
            .ok()
    })
}

/// Linux's IOMMU groups, one line each: `linux iommu group N: BDF BDF ...`. With no groups at
/// all (the IOMMU was not enabled), one line saying so followed by Linux's IOMMU log lines.
fn group_lines(groups: &oracle::Groups, dmesg: &[String]) -> Vec<String> {
    if groups.is_empty() {
        let mut lines = vec!["linux iommu groups: none; Linux's IOMMU log lines:".to_string()];
        lines.extend(dmesg.iter().map(|line| format!("  {line}")));
        return lines;
    }
    groups
        .iter()
        .map(|(group, members)| format!("linux iommu group {group}: {}", members.join(" ")))
        .collect()
}

/// The text printed for one topology: per check `PASS name (N s)` or `FAIL name: why`; if any
/// failed, both serial logs once; then Linux's IOMMU groups (when Linux reported).
fn describe(topology: &str, check: &Checked) -> String {
    let seconds = check.elapsed.as_secs_f64();
    let mut text = String::new();
    let mut failed = false;
    for (name, verdict) in check.verdicts(topology) {
        match verdict {
            Ok(()) => {
                let _ = writeln!(text, "PASS {name} ({seconds:.1} s)");
            }
            Err(reason) => {
                failed = true;
                let _ = writeln!(text, "FAIL {name}: {reason}");
            }
        }
    }
    if failed {
        text.push_str(&logs_text(topology, seconds, check));
    }
    if let Ok(linux) = &check.linux {
        for line in group_lines(&linux.groups, &linux.dmesg) {
            let _ = writeln!(text, "  {line}");
        }
    }
    text
}

/// Moat's command, outcome, QEMU stderr and serial log, then Linux's serial log (or the error
/// that carries it), each in a section headed with the topology's name.
fn logs_text(name: &str, seconds: f64, check: &Checked) -> String {
    let mut text = String::new();
    let mut section = |title: &str, body: &str| {
        let _ = writeln!(text, "==== {name}: {title} ====");
        text.push_str(body);
        if !body.ends_with('\n') {
            text.push('\n');
        }
    };
    match &check.moat {
        Ok(run) => {
            section("Moat command", &run.command_line);
            section(
                &format!("Moat outcome after {:.1} s", run.elapsed.as_secs_f64()),
                &run.outcome.to_string(),
            );
            section(
                &format!("Moat QEMU stderr ({} bytes)", run.stderr.len()),
                &run.stderr,
            );
            section(
                &format!("Moat serial log ({} bytes)", run.serial.len()),
                &run.serial,
            );
        }
        Err(error) => section("Moat", &format!("could not run QEMU: {error}")),
    }
    match &check.linux {
        Ok(linux) => section(
            &format!("Linux serial log ({} bytes)", linux.serial.len()),
            &linux.serial,
        ),
        Err(error) => section("Linux boot failed", error),
    }
    let _ = writeln!(text, "==== {name}: end ({seconds:.1} s) ====");
    text
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::boot::linux_command;
use super::guest::{cached_kernel_packages, kernel_dependency};
use super::report::{PciEntry, parse_bdf};
use super::*;

/// A real serial log of the guest (Linux 6.1.0-56-amd64, root-bus topology, trimmed dmesg),
/// with the `\r\n` line ends of the serial console and a stray console line in the report.
const LINUX_SERIAL: &str = "\r\n\
oracle-begin\r\n\
pci 0000:00:00.0 0x8086 0x29c0 0x060000\r\n\
pci 0000:00:04.0 0x1234 0x11e8 0x00ff00\r\n\
pci 0000:00:05.0 0x8086 0x10d3 0x020000\r\n\
pci 0000:00:06.0 0x1234 0x11e8 0x00ff00\r\n\
pci 0000:00:06.1 0x1234 0x11e8 0x00ff00\r\n\
pci 0000:00:1f.0 0x8086 0x2918 0x060100\r\n\
pci 0000:00:1f.2 0x8086 0x2922 0x010601\r\n\
pci 0000:00:1f.3 0x8086 0x2930 0x0c0500\r\n\
group 0 0000:00:00.0\r\n\
group 1 0000:00:04.0\r\n\
group 2 0000:00:05.0\r\n\
group 3 0000:00:06.1\r\n\
group 3 0000:00:06.0\r\n\
group 4 0000:00:1f.0\r\n\
group 4 0000:00:1f.2\r\n\
group 4 0000:00:1f.3\r\n\
[    2.500000] random: crng init done\r\n\
dmesg [    0.000000] DMAR: IOMMU enabled\r\n\
dmesg [    1.710368] iommu: DMA domain TLB invalidation policy: strict mode (set via kernel command line)\r\n\
dmesg [    2.097685] DMAR: dmar0: Using Queued invalidation\r\n\
oracle-end\r\n\
pci 0000:00:09.0 0x1234 0x11e8 0x00ff00\r\n";

fn entry(bdf: &str, vendor: u16, device: u16, class: u32) -> PciEntry {
    PciEntry {
        bdf: bdf.to_string(),
        vendor,
        device,
        class,
    }
}

fn root_bus_devices() -> Vec<PciEntry> {
    vec![
        entry("0000:00:00.0", 0x8086, 0x29c0, 0x060000),
        entry("0000:00:04.0", 0x1234, 0x11e8, 0x00ff00),
        entry("0000:00:05.0", 0x8086, 0x10d3, 0x020000),
        entry("0000:00:06.0", 0x1234, 0x11e8, 0x00ff00),
        entry("0000:00:06.1", 0x1234, 0x11e8, 0x00ff00),
        entry("0000:00:1f.0", 0x8086, 0x2918, 0x060100),
        entry("0000:00:1f.2", 0x8086, 0x2922, 0x010601),
        entry("0000:00:1f.3", 0x8086, 0x2930, 0x0c0500),
    ]
}

fn bdfs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn linux_report_is_parsed_between_the_markers() {
    let report = parse_linux_report(LINUX_SERIAL).unwrap();
    assert_eq!(report.devices, root_bus_devices());
    let expected: BTreeMap<u32, Vec<String>> = [
        (0, bdfs(&["0000:00:00.0"])),
        (1, bdfs(&["0000:00:04.0"])),
        (2, bdfs(&["0000:00:05.0"])),
        (3, bdfs(&["0000:00:06.0", "0000:00:06.1"])),
        (4, bdfs(&["0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(report.groups, expected);
    assert_eq!(
        report.dmesg,
        [
            "[    0.000000] DMAR: IOMMU enabled",
            "[    1.710368] iommu: DMA domain TLB invalidation policy: strict mode (set via kernel command line)",
            "[    2.097685] DMAR: dmar0: Using Queued invalidation",
        ]
    );
}

#[test]
fn linux_devices_are_sorted_and_groups_use_numeric_order() {
    let serial = "oracle-begin\n\
                  pci 0000:01:00.0 0x1234 0x11e8 0x00ff00\n\
                  pci 0000:00:00.0 0x8086 0x29c0 0x060000\n\
                  group 10 0000:01:00.0\n\
                  group 2 0000:00:00.0\n\
                  oracle-end\n";
    let report = parse_linux_report(serial).unwrap();
    assert_eq!(report.devices[0].bdf, "0000:00:00.0");
    assert_eq!(report.devices[1].bdf, "0000:01:00.0");
    assert_eq!(report.groups.keys().copied().collect::<Vec<_>>(), [2, 10]);
    assert!(report.dmesg.is_empty());
}

#[test]
fn an_empty_report_is_still_a_report() {
    let report = parse_linux_report("oracle-begin\r\noracle-end\r\n").unwrap();
    assert_eq!(report, LinuxReport::default());
}

#[test]
fn missing_markers_are_errors() {
    let error = parse_linux_report("Linux version 6.1.0\nKernel panic\n").unwrap_err();
    assert!(error.contains("no `oracle-begin`"), "{error}");
    let error = parse_linux_report("").unwrap_err();
    assert!(error.contains("no `oracle-begin`"), "{error}");
    let error =
        parse_linux_report("oracle-begin\npci 0000:00:00.0 0x8086 0x29c0 0x060000\n").unwrap_err();
    assert!(error.contains("no `oracle-end`"), "{error}");
    // The end marker before the begin marker does not count.
    let error = parse_linux_report("oracle-end\noracle-begin\n").unwrap_err();
    assert!(error.contains("no `oracle-end`"), "{error}");
    // A marker must be the whole line.
    let error = parse_linux_report("echo oracle-begin\noracle-end\n").unwrap_err();
    assert!(error.contains("no `oracle-begin`"), "{error}");
}

#[test]
fn malformed_report_lines_are_errors() {
    for bad in [
        "pci 0000:00:00.0 0x8086 0x29c0",
        "pci 0000:00:00.0 8086 0x29c0 0x060000",
        "pci 0000:00:00.0 0x8086 0x29c0 0x0600",
        "pci 0000:00:00.0 0x8086 0x29c0 0x060000 extra",
        "pci 00:00.0 0x8086 0x29c0 0x060000",
        "pci 0000:00:20.0 0x8086 0x29c0 0x060000",
        "group x 0000:00:00.0",
        "group 1",
        "group 1 0000:00:00.8",
    ] {
        let serial = format!("oracle-begin\n{bad}\noracle-end\n");
        let error = parse_linux_report(&serial).unwrap_err();
        assert!(error.contains("malformed line"), "{bad}: {error}");
    }
}

#[test]
fn bdfs_are_validated_and_lowercased() {
    assert_eq!(parse_bdf("0000:00:1F.3").as_deref(), Some("0000:00:1f.3"));
    assert_eq!(parse_bdf("0001:ff:1f.7").as_deref(), Some("0001:ff:1f.7"));
    for bad in [
        "",
        "0000:00:00",
        "00:00.0",
        "0000:00:00.8",
        "0000:00:20.0",
        "0000:0:00.0",
        "000g:00:00.0",
        "0000:00:00.0.0",
        "0000:00:+1.0",
    ] {
        assert_eq!(parse_bdf(bad), None, "{bad}");
    }
}

/// Lines in the format of Moat's boot report, mixed with other output.
const MOAT_SERIAL: &str = "moat: booting\r\n\
pci: 3 functions\r\n\
  pci: 0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]\r\n\
pci: 0000:00:00.0 8086:29c0 060000 host-bridge []\r\n\
\tpci: 0000:00:1F.2 8086:2922 010601 pci-endpoint [msi]\r\n\
pci: 0000:00:05.0 8086:10d3 0200 pci-endpoint\r\n\
pci: 0000:00:05.0 8086 10d3 020000 pci-endpoint\r\n\
xpci: 0000:00:05.0 8086:10d3 020000 pci-endpoint\r\n\
pci:0000:00:02.0 1b36:000c 060400 root-port [msi-x]\n\
moat: ready\r\n";

#[test]
fn moat_pci_lines_are_parsed_and_sorted() {
    assert_eq!(
        parse_moat_pci(MOAT_SERIAL),
        vec![
            entry("0000:00:00.0", 0x8086, 0x29c0, 0x060000),
            entry("0000:00:02.0", 0x1b36, 0x000c, 0x060400),
            entry("0000:00:04.0", 0x1234, 0x11e8, 0x00ff00),
            entry("0000:00:1f.2", 0x8086, 0x2922, 0x010601),
        ]
    );
    assert!(parse_moat_pci("").is_empty());
}

#[test]
fn a_moat_line_needs_only_the_three_fields() {
    assert_eq!(
        parse_moat_pci("pci: 0000:00:04.0 1234:11e8 00ff00"),
        vec![entry("0000:00:04.0", 0x1234, 0x11e8, 0x00ff00)]
    );
}

#[test]
fn identical_lists_compare_equal_in_any_order() {
    let linux = root_bus_devices();
    let mut moat = linux.clone();
    moat.reverse();
    assert_eq!(compare(&moat, &linux), Ok(()));
    assert_eq!(compare(&[], &[]), Ok(()));
}

#[test]
fn moat_output_round_trips_through_display() {
    let linux = root_bus_devices();
    let serial: String = linux
        .iter()
        .map(|d| format!("  pci: {d} pci-endpoint [msi]\r\n"))
        .collect();
    let moat = parse_moat_pci(&serial);
    assert_eq!(moat, linux);
    assert_eq!(
        compare(&moat, &parse_linux_report(LINUX_SERIAL).unwrap().devices),
        Ok(())
    );
}

#[test]
fn differences_are_listed_by_bdf() {
    let linux = root_bus_devices();
    let mut moat: Vec<PciEntry> = linux
        .iter()
        .filter(|d| d.bdf != "0000:00:06.1")
        .cloned()
        .collect();
    moat.push(entry("0000:00:09.0", 0x1234, 0x11e8, 0x00ff00));
    moat.push(entry("0000:00:03.0", 0x1b36, 0x000c, 0x060400));
    moat[1].device = 0x11e9; // 00:04.0
    moat[2].class = 0x020001; // 00:05.0
    moat[2].vendor = 0x8087;
    let error = compare(&moat, &linux).unwrap_err();
    assert_eq!(
        error,
        "Moat's PCI devices differ from Linux's (9 in Moat, 8 in Linux):\n  \
         extra in Moat: 0000:00:03.0 1b36:000c 060400\n  \
         0000:00:04.0: device Moat 11e9 Linux 11e8\n  \
         0000:00:05.0: vendor Moat 8087 Linux 8086, class Moat 020001 Linux 020000\n  \
         missing in Moat: 0000:00:06.1 1234:11e8 00ff00\n  \
         extra in Moat: 0000:00:09.0 1234:11e8 00ff00"
    );
}

#[test]
fn an_empty_moat_list_misses_everything() {
    let error = compare(&[], &root_bus_devices()).unwrap_err();
    assert_eq!(error.matches("missing in Moat:").count(), 8, "{error}");
    assert!(error.contains("(0 in Moat, 8 in Linux)"), "{error}");
}

#[test]
fn duplicate_bdfs_are_reported() {
    let linux = vec![entry("0000:00:04.0", 0x1234, 0x11e8, 0x00ff00)];
    let moat = vec![linux[0].clone(), linux[0].clone()];
    let error = compare(&moat, &linux).unwrap_err();
    assert!(
        error.contains("0000:00:04.0 listed more than once by Moat"),
        "{error}"
    );
}

#[test]
fn the_kernel_package_is_found_in_apt_cache_output() {
    let output = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
    assert_eq!(
        kernel_dependency(output).as_deref(),
        Some("linux-image-6.1.0-56-amd64")
    );
    let alternatives = "linux-image-amd64\n |Depends: linux-image-6.1.0-57-amd64\n  \
                        Depends: linux-image-6.1.0-56-amd64\n";
    assert_eq!(
        kernel_dependency(alternatives).as_deref(),
        Some("linux-image-6.1.0-57-amd64")
    );
    assert_eq!(kernel_dependency(""), None);
    assert_eq!(
        kernel_dependency("linux-image-amd64\n  Depends: <linux-image-6.1.0-56-amd64>\n"),
        None
    );
    assert_eq!(
        kernel_dependency("linux-image-amd64\n  Recommends: firmware-linux-free\n"),
        None
    );
    assert_eq!(
        kernel_dependency("x\n  Depends: linux-image-6.1.0-56-amd64; rm -rf /\n"),
        None
    );
}

#[test]
fn cached_kernels_are_found_only_when_complete() {
    let dir = std::env::temp_dir().join(format!("moat-oracle-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("linux-image-6.1.0-56-amd64")).unwrap();
    fs::create_dir_all(dir.join("linux-image-6.1.0-55-amd64")).unwrap();
    fs::create_dir_all(dir.join("busybox-static")).unwrap();
    assert!(cached_kernel_packages(&dir).is_empty());
    fs::write(
        dir.join("linux-image-6.1.0-56-amd64/vmlinuz-6.1.0-56-amd64"),
        b"",
    )
    .unwrap();
    let found = cached_kernel_packages(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found, ["linux-image-6.1.0-56-amd64"]);
    assert!(cached_kernel_packages(&dir).is_empty());
}

#[test]
fn the_init_script_prints_the_report_and_powers_off() {
    assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
    assert!(INIT_SCRIPT.contains("--install -s"));
    for line in [
        format!("echo {BEGIN_MARKER}"),
        format!("echo {END_MARKER}"),
        "mount -t proc proc /proc".to_string(),
        "mount -t sysfs sysfs /sys".to_string(),
        "poweroff -f".to_string(),
    ] {
        assert!(
            INIT_SCRIPT.lines().any(|l| l.trim() == line),
            "missing `{line}`"
        );
    }
    let begin = INIT_SCRIPT.find(&format!("echo {BEGIN_MARKER}")).unwrap();
    let end = INIT_SCRIPT.find(&format!("echo {END_MARKER}")).unwrap();
    let poweroff = INIT_SCRIPT.find("poweroff -f").unwrap();
    assert!(begin < end && end < poweroff);
}

#[test]
fn the_qemu_command_puts_the_devices_before_the_kernel() {
    let guest = LinuxGuest {
        kernel: PathBuf::from("/c/vmlinuz-6.1.0-56-amd64"),
        initrd: PathBuf::from("/c/initrd.gz"),
        version: "6.1.0-56-amd64".to_string(),
    };
    let command = linux_command(&guest, &bdfs(&["-device", "edu"]));
    assert_eq!(command.get_program(), "qemu-system-x86_64");
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args.join(" "),
        "-machine q35 -accel tcg -m 512M -nodefaults -display none -no-reboot -serial stdio \
         -device intel-iommu -device edu -kernel /c/vmlinuz-6.1.0-56-amd64 -initrd /c/initrd.gz \
         -append console=ttyS0 intel_iommu=on iommu.strict=1 panic=-1 quiet"
    );
}

use super::*;
use moat_tests::Outcome;

const MOAT_SERIAL: &str = "moat: booting\r\n\
pci: 2 functions\r\n\
pci: 0000:00:00.0 8086:29c0 060000 pci-endpoint []\r\n\
pci: 0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]\r\n\
moat: ready\r\n";

fn moat_run(outcome: Outcome, serial: &str) -> io::Result<RunResult> {
    Ok(RunResult {
        outcome,
        serial: serial.to_string(),
        stderr: String::new(),
        elapsed: Duration::from_millis(1500),
        command_line: "qemu-system-x86_64 -kernel moat".to_string(),
    })
}

fn linux_report() -> Result<LinuxReport, String> {
    let serial = "oracle-begin\r\n\
                  pci 0000:00:00.0 0x8086 0x29c0 0x060000\r\n\
                  pci 0000:00:04.0 0x1234 0x11e8 0x00ff00\r\n\
                  group 0 0000:00:00.0\r\n\
                  group 1 0000:00:04.0\r\n\
                  oracle-end\r\n";
    let mut report = oracle::parse_linux_report(serial).unwrap();
    report.serial = serial.to_string();
    Ok(report)
}

#[test]
fn agreement_passes() {
    assert_eq!(
        judge(&moat_run(Outcome::Success, MOAT_SERIAL), &linux_report()),
        Ok(())
    );
}

#[test]
fn a_failed_moat_boot_fails_even_with_matching_lines() {
    for outcome in [Outcome::KernelFailure, Outcome::Reset, Outcome::Timeout] {
        let error = judge(&moat_run(outcome, MOAT_SERIAL), &linux_report()).unwrap_err();
        assert!(error.contains("Moat's boot failed"), "{error}");
    }
    let no_ready = MOAT_SERIAL.replace("moat: ready", "moat: almost");
    let error = judge(&moat_run(Outcome::Success, &no_ready), &linux_report()).unwrap_err();
    assert!(error.contains("moat: ready"), "{error}");
    let error = judge(
        &Err(io::Error::other("no qemu-system-x86_64")),
        &linux_report(),
    )
    .unwrap_err();
    assert!(error.contains("could not run Moat's QEMU"), "{error}");
}

#[test]
fn a_moat_report_without_pci_lines_fails() {
    let error = judge(
        &moat_run(Outcome::Success, "moat: booting\r\nmoat: ready\r\n"),
        &Ok(LinuxReport::default()),
    )
    .unwrap_err();
    assert!(error.contains("no `pci:"), "{error}");
}

#[test]
fn a_function_count_that_disagrees_with_the_lines_fails() {
    let serial = MOAT_SERIAL.replace("pci: 2 functions", "pci: 3 functions");
    let error = judge(&moat_run(Outcome::Success, &serial), &linux_report()).unwrap_err();
    assert!(
        error.contains("says `pci: 3 functions` but lists 2"),
        "{error}"
    );
    assert_eq!(reported_function_count(MOAT_SERIAL), Some(2));
    assert_eq!(reported_function_count("pci: problem: 3 functions"), None);
    assert_eq!(reported_function_count(""), None);
}

#[test]
fn differences_and_linux_failures_fail() {
    let serial = MOAT_SERIAL
        .replace("pci: 2 functions", "pci: 1 functions")
        .replace(
            "pci: 0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]\r\n",
            "",
        );
    let error = judge(&moat_run(Outcome::Success, &serial), &linux_report()).unwrap_err();
    assert!(
        error.contains("missing in Moat: 0000:00:04.0 1234:11e8 00ff00"),
        "{error}"
    );
    let error = judge(
        &moat_run(Outcome::Success, MOAT_SERIAL),
        &Err("the Linux oracle guest failed: no `oracle-begin`".into()),
    )
    .unwrap_err();
    assert!(error.contains("Linux oracle guest failed"), "{error}");
}

#[test]
fn a_pass_is_one_line_plus_the_groups() {
    let check = Checked {
        moat: moat_run(Outcome::Success, MOAT_SERIAL),
        linux: linux_report(),
        verdict: Ok(()),
        elapsed: Duration::from_millis(7250),
    };
    assert_eq!(
        describe("linux-agrees-pci-x", &check),
        "PASS linux-agrees-pci-x (7.2 s)\n  \
         linux iommu group 0: 0000:00:00.0\n  \
         linux iommu group 1: 0000:00:04.0\n"
    );
}

#[test]
fn a_failure_shows_both_serial_logs() {
    let check = Checked {
        moat: moat_run(Outcome::Success, MOAT_SERIAL),
        linux: linux_report(),
        verdict: Err("Moat's PCI devices differ".into()),
        elapsed: Duration::from_secs(9),
    };
    let text = describe("linux-agrees-pci-x", &check);
    assert!(
        text.starts_with("FAIL linux-agrees-pci-x: Moat's PCI devices differ\n"),
        "{text}"
    );
    for needle in [
        "==== linux-agrees-pci-x: Moat command ====\nqemu-system-x86_64 -kernel moat\n",
        "==== linux-agrees-pci-x: Moat serial log (",
        "pci: 0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]",
        "==== linux-agrees-pci-x: Linux serial log (",
        "pci 0000:00:04.0 0x1234 0x11e8 0x00ff00",
        "  linux iommu group 1: 0000:00:04.0\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let check = Checked {
        linux: Err("the Linux oracle guest failed: timeout\n--- serial log ---\nBUG".into()),
        ..check
    };
    let text = describe("linux-agrees-pci-x", &check);
    assert!(text.contains("==== linux-agrees-pci-x: Linux boot failed ====\n"));
    assert!(text.contains("--- serial log ---\nBUG"), "{text}");
}

#[test]
fn no_groups_shows_the_iommu_log() {
    let lines = group_lines(
        &BTreeMap::new(),
        &["[    0.0] DMAR: IOMMU disabled".to_string()],
    );
    assert_eq!(
        lines,
        [
            "linux iommu groups: none; Linux's IOMMU log lines:",
            "  [    0.0] DMAR: IOMMU disabled"
        ]
    );
}

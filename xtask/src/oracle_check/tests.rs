use super::*;
use moat_tests::Outcome;

const MOAT_SERIAL: &str = "moat: booting\r\n\
pci: 2 functions\r\n\
pci: 0000:00:00.0 8086:29c0 060000 pci-endpoint []\r\n\
pci: 0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]\r\n\
iommu group 0: 0000:00:00.0\r\n\
iommu group 1: 0000:00:04.0\r\n\
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
fn groups_agreement_passes_and_differences_fail() {
    let moat = moat_run(Outcome::Success, MOAT_SERIAL);
    assert_eq!(judge_groups(&moat, &linux_report()), Ok(()));

    // Moat groups the host bridge with the edu; Linux does not.
    let merged = MOAT_SERIAL.replace(
        "iommu group 0: 0000:00:00.0\r\niommu group 1: 0000:00:04.0",
        "iommu group 0: 0000:00:00.0 0000:00:04.0",
    );
    let error = judge_groups(&moat_run(Outcome::Success, &merged), &linux_report()).unwrap_err();
    assert!(
        error.contains(
            "Moat's group {0000:00:00.0 0000:00:04.0} is {0000:00:00.0} {0000:00:04.0} in Linux"
        ),
        "{error}"
    );
    // The PCI check is not affected by the groups.
    assert_eq!(
        judge(&moat_run(Outcome::Success, &merged), &linux_report()),
        Ok(())
    );
}

#[test]
fn missing_or_malformed_groups_fail() {
    let no_groups = MOAT_SERIAL
        .replace("iommu group 0: 0000:00:00.0\r\n", "")
        .replace("iommu group 1: 0000:00:04.0\r\n", "");
    let error = judge_groups(&moat_run(Outcome::Success, &no_groups), &linux_report()).unwrap_err();
    assert!(error.contains("no `iommu group N:"), "{error}");

    let malformed =
        MOAT_SERIAL.replace("iommu group 1: 0000:00:04.0", "iommu group 1 0000:00:04.0");
    let error = judge_groups(&moat_run(Outcome::Success, &malformed), &linux_report()).unwrap_err();
    assert!(
        error.contains("malformed line `iommu group 1 0000"),
        "{error}"
    );

    let mut linux = linux_report().unwrap();
    linux.groups.clear();
    let error = judge_groups(&moat_run(Outcome::Success, MOAT_SERIAL), &Ok(linux)).unwrap_err();
    assert!(error.contains("Linux reported no IOMMU groups"), "{error}");

    let error = judge_groups(
        &moat_run(Outcome::KernelFailure, MOAT_SERIAL),
        &linux_report(),
    )
    .unwrap_err();
    assert!(error.contains("Moat's boot failed"), "{error}");
    let error = judge_groups(
        &moat_run(Outcome::Success, MOAT_SERIAL),
        &Err("the Linux oracle guest failed: timeout".into()),
    )
    .unwrap_err();
    assert!(error.contains("Linux oracle guest failed"), "{error}");
}

#[test]
fn a_pass_is_one_line_per_check_plus_the_groups() {
    let check = Checked {
        moat: moat_run(Outcome::Success, MOAT_SERIAL),
        linux: linux_report(),
        pci: Ok(()),
        groups: Ok(()),
        elapsed: Duration::from_millis(7250),
    };
    assert_eq!(
        describe("x", &check),
        "PASS linux-agrees-pci-x (7.2 s)\n\
         PASS linux-agrees-groups-x (7.2 s)\n  \
         linux iommu group 0: 0000:00:00.0\n  \
         linux iommu group 1: 0000:00:04.0\n"
    );
}

#[test]
fn a_failure_shows_both_serial_logs_once() {
    let check = Checked {
        moat: moat_run(Outcome::Success, MOAT_SERIAL),
        linux: linux_report(),
        pci: Err("Moat's PCI devices differ".into()),
        groups: Ok(()),
        elapsed: Duration::from_secs(9),
    };
    let text = describe("x", &check);
    assert!(
        text.starts_with(
            "FAIL linux-agrees-pci-x: Moat's PCI devices differ\n\
             PASS linux-agrees-groups-x (9.0 s)\n"
        ),
        "{text}"
    );
    for needle in [
        "==== x: Moat command ====\nqemu-system-x86_64 -kernel moat\n",
        "==== x: Moat serial log (",
        "pci: 0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]",
        "==== x: Linux serial log (",
        "pci 0000:00:04.0 0x1234 0x11e8 0x00ff00",
        "  linux iommu group 1: 0000:00:04.0\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let check = Checked {
        linux: Err("the Linux oracle guest failed: timeout\n--- serial log ---\nBUG".into()),
        pci: Ok(()),
        groups: Err("the Linux oracle guest failed (see its log below)".into()),
        ..check
    };
    let text = describe("x", &check);
    assert!(text.starts_with("PASS linux-agrees-pci-x (9.0 s)\nFAIL linux-agrees-groups-x: "));
    assert_eq!(text.matches("==== x: Moat serial log (").count(), 1);
    assert!(text.contains("==== x: Linux boot failed ====\n"));
    assert!(text.contains("--- serial log ---\nBUG"), "{text}");
}

#[test]
fn no_groups_shows_the_iommu_log() {
    let lines = group_lines(
        &oracle::Groups::new(),
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

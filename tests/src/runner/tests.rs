//! Tests of `run_all` with real `sh` children standing in for QEMU.

use super::*;
use crate::outcome::OutcomeKind;
use crate::scenario::Expect;
use std::path::PathBuf;
use std::process::Command;

const GENEROUS: Duration = Duration::from_secs(30);

fn scenario(name: &str, script: &str, timeout: Duration, expect: Expect) -> Scenario {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    Scenario {
        name: name.to_owned(),
        command,
        timeout,
        expect,
        after: None,
        during: None,
    }
}

fn run_captured(scenarios: Vec<Scenario>, parallel: usize) -> (Report, String) {
    let mut output = Vec::new();
    let report = run_all_with_output(scenarios, parallel, &mut output);
    (report, String::from_utf8(output).expect("output is UTF-8"))
}

/// A fresh, empty directory for one test.
fn scratch_directory(test: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("moat-tests-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("create scratch directory");
    directory
}

#[test]
fn hang_reset_crash_and_missing_text_all_fail() {
    let no_text = Vec::<String>::new;
    let scenarios = vec![
        scenario(
            "boots",
            "echo 'moat: ready'; echo 'vt-d on'; exit 33",
            GENEROUS,
            Expect::success(["vt-d on"]),
        ),
        scenario(
            "resets",
            "echo 'moat: ready'; exit 0",
            GENEROUS,
            Expect::success(no_text()),
        ),
        scenario(
            "hangs",
            "echo 'moat: ready'; sleep 30",
            Duration::from_millis(300),
            Expect::success(no_text()),
        ),
        scenario(
            "crashes",
            "echo 'moat: ready'; kill -9 $$",
            GENEROUS,
            Expect::success(no_text()),
        ),
        scenario(
            "quiet",
            "echo 'moat: ready'; echo 'qemu: warning' >&2; exit 33",
            GENEROUS,
            Expect::success(["vt-d on"]),
        ),
        scenario(
            "faults-as-expected",
            "echo 'moat: ready'; echo 'DMA fault caught'; exit 35",
            GENEROUS,
            Expect::failure(OutcomeKind::KernelFailure, ["DMA fault caught"]),
        ),
        scenario(
            "resets-as-expected",
            "exit 0",
            GENEROUS,
            Expect::failure(OutcomeKind::Reset, no_text()),
        ),
    ];
    let (report, output) = run_captured(scenarios, 2);

    assert_eq!(
        report.passed,
        ["boots", "faults-as-expected", "resets-as-expected"]
    );
    assert_eq!(report.failed, ["resets", "hangs", "crashes", "quiet"]);
    assert!(!report.is_success());

    assert!(output.contains("PASS boots ("), "{output}");
    assert!(output.contains("FAIL resets: expected success, got reset"));
    assert!(output.contains("FAIL hangs: expected success, got timeout"));
    assert!(output.contains("FAIL crashes: expected success, got crash (killed by signal 9"));
    assert!(output.contains(r#"FAIL quiet: serial log lacks expected text: "vt-d on""#));
    // The failure block shows how to reproduce and what happened.
    assert!(output.contains("==== quiet: command ====\nsh -c 'echo '\\''moat: ready"));
    assert!(output.contains("==== quiet: QEMU stderr (14 bytes) ====\nqemu: warning\n"));
    assert!(output.contains("==== quiet: serial log (12 bytes) ====\nmoat: ready\n"));
    assert!(output.contains("==== quiet: end ===="));
    // A pass prints only its line.
    assert!(!output.contains("==== boots"));
    assert_eq!(
        output
            .lines()
            .filter(|line| line.starts_with("PASS "))
            .count(),
        3
    );
    assert_eq!(
        output
            .lines()
            .filter(|line| line.starts_with("FAIL "))
            .count(),
        4
    );
}

#[test]
fn all_passing_is_success() {
    let scenarios = (0..3)
        .map(|index| {
            scenario(
                &format!("boot-{index}"),
                "echo 'moat: ready'; exit 33",
                GENEROUS,
                Expect::success(Vec::<String>::new()),
            )
        })
        .collect();
    let (report, _) = run_captured(scenarios, 8);
    assert!(report.is_success(), "{report}");
    assert_eq!(report.passed, ["boot-0", "boot-1", "boot-2"]);
    assert!(report.to_string().starts_with("3 passed, 0 failed in "));
}

#[test]
fn nothing_to_run_is_not_success() {
    let (report, output) = run_captured(Vec::new(), 2);
    assert!(!report.is_success());
    assert!(report.to_string().contains("no scenarios ran"));
    assert_eq!(output, "");
}

#[test]
fn a_missing_program_fails_its_scenario_only() {
    let missing = Scenario {
        name: "no-qemu".to_owned(),
        command: Command::new("/nonexistent/qemu-system-x86_64"),
        timeout: GENEROUS,
        expect: Expect::success(Vec::<String>::new()),
        after: None,
        during: None,
    };
    let fine = scenario(
        "fine",
        "echo 'moat: ready'; exit 33",
        GENEROUS,
        Expect::success(Vec::<String>::new()),
    );
    let (report, output) = run_captured(vec![missing, fine], 0);
    assert_eq!(report.failed, ["no-qemu"]);
    assert_eq!(report.passed, ["fine"]);
    assert!(output.contains("FAIL no-qemu: could not run the command: cannot start"));
    assert!(output.contains("==== no-qemu: command ====\n/nonexistent/qemu-system-x86_64\n"));
    assert!(report.to_string().ends_with("; failed: no-qemu"));
}

#[test]
fn at_most_parallel_commands_run_at_once() {
    let directory = scratch_directory("parallel");
    let shown = directory.display();
    // Each command registers itself, waits, counts the registered commands, and records the count.
    let script = format!(
        "touch '{shown}/running.'$$; sleep 0.5; n=$(ls '{shown}' | grep -c '^running'); \
         echo $n > '{shown}/seen.'$$; rm '{shown}/running.'$$; echo 'moat: ready'; exit 33"
    );
    let scenarios = (0..6)
        .map(|index| {
            scenario(
                &format!("concurrent-{index}"),
                &script,
                GENEROUS,
                Expect::success(Vec::<String>::new()),
            )
        })
        .collect();
    let (report, output) = run_captured(scenarios, 2);
    assert!(report.is_success(), "{output}");

    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&directory).expect("read scratch directory") {
        let path = entry.expect("directory entry").path();
        let count = std::fs::read_to_string(&path).expect("read count");
        seen.push(count.trim().parse::<usize>().expect("a number"));
    }
    let _ = std::fs::remove_dir_all(&directory);
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|&count| count <= 2), "{seen:?}");
    assert!(seen.contains(&2), "never ran two at once: {seen:?}");
}

#[test]
fn a_failing_host_check_fails_a_run_that_met_its_expectation() {
    let ok = || {
        scenario(
            "ok",
            "echo 'moat: ready'; exit 33",
            GENEROUS,
            Expect::success(["moat"]),
        )
    };
    let mut checked = ok();
    checked.name = "checked".to_owned();
    checked.after = Some(After::new(|| Err("byte 7 of disk.img is 0x00".to_owned())));
    let mut passes = ok();
    passes.after = Some(After::new(|| Ok(())));
    let mut never = scenario("never", "exit 0", GENEROUS, Expect::success(["moat"]));
    never.after = Some(After::new(|| {
        panic!("the host check runs only after a passing run")
    }));
    let (report, output) = run_captured(vec![checked, passes, never], 1);
    assert_eq!(report.passed, ["ok"]);
    assert_eq!(report.failed, ["checked", "never"]);
    assert!(output.contains("host check after the run failed: byte 7 of disk.img is 0x00"));
}

#[test]
fn a_host_step_runs_during_the_command_and_its_failure_fails_the_scenario() {
    let directory = scratch_directory("during");
    let marker = directory.join("guest-up");
    // The "guest" waits for the host step to create a file, as a guest waits for a client.
    let script = format!(
        "while [ ! -e {0}.ack ]; do sleep 0.05; done; echo 'moat: ready'; exit 33",
        marker.display()
    );
    let mut talks = scenario(
        "talks",
        &script,
        GENEROUS,
        Expect::success(Vec::<String>::new()),
    );
    let ack = marker.with_extension("ack");
    talks.during = Some(During::new(move |_deadline| {
        std::fs::write(&ack, b"hi").map_err(|e| e.to_string())
    }));
    let mut wrong = scenario(
        "wrong-bytes",
        "echo 'moat: ready'; exit 33",
        GENEROUS,
        Expect::success(Vec::<String>::new()),
    );
    wrong.during = Some(During::new(|_| {
        Err("reply byte 3 is 0x41, expected 0x42".into())
    }));
    let (report, output) = run_captured(vec![talks, wrong], 2);
    assert_eq!(report.passed, ["talks"]);
    assert_eq!(report.failed, ["wrong-bytes"]);
    assert!(output.contains("host side during the run failed: reply byte 3 is 0x41"));
}

//! Checks of `check`: only the expected outcome with all expected text passes.

use super::*;

const READY_LOG: &str = "moat: booting\nmoat: ready\nvt-d: translation enabled\n";

fn result(outcome: Outcome, serial: &str) -> RunResult {
    RunResult {
        outcome,
        serial: serial.to_owned(),
        stderr: String::new(),
        elapsed: Duration::from_millis(1200),
        command_line: "qemu-system-x86_64 -no-reboot".to_owned(),
    }
}

fn every_outcome() -> [Outcome; 8] {
    [
        Outcome::Success,
        Outcome::KernelFailure,
        Outcome::QemuError,
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::Crash { signal: 9 },
        Outcome::UnexpectedStatus(7),
        Outcome::NoStatus,
    ]
}

#[test]
fn success_with_ready_and_text_passes() {
    let expect = Expect::success(["translation enabled"]);
    assert_eq!(check(&expect, &result(Outcome::Success, READY_LOG)), Ok(()));
}

#[test]
fn success_without_expected_text_fails() {
    let expect = Expect::success(["translation enabled", "dma fault caught", "iotlb flushed"]);
    assert_eq!(
        check(&expect, &result(Outcome::Success, READY_LOG)),
        Err(Mismatch::MissingText(vec![
            "dma fault caught".to_owned(),
            "iotlb flushed".to_owned()
        ]))
    );
}

#[test]
fn success_without_ready_line_fails() {
    let expect = Expect::success(Vec::<String>::new());
    assert_eq!(
        check(&expect, &result(Outcome::Success, "moat: booting\n")),
        Err(Mismatch::MissingReady)
    );
    // Part of a line is not the line.
    assert_eq!(
        check(&expect, &result(Outcome::Success, "moat: ready? no\n")),
        Err(Mismatch::MissingReady)
    );
}

#[test]
fn ready_line_may_end_with_carriage_return() {
    let expect = Expect::success(Vec::<String>::new());
    let log = "moat: booting\r\nmoat: ready\r\n";
    assert_eq!(check(&expect, &result(Outcome::Success, log)), Ok(()));
}

#[test]
fn ready_line_can_be_waived() {
    let expect = Expect::Success {
        serial_contains: vec!["early boot ok".to_owned()],
        require_ready: false,
    };
    assert_eq!(
        check(&expect, &result(Outcome::Success, "early boot ok\n")),
        Ok(())
    );
}

#[test]
fn success_expectation_rejects_every_other_outcome_even_with_perfect_log() {
    let expect = Expect::success(["translation enabled"]);
    for outcome in every_outcome().into_iter().filter(|o| !o.is_success()) {
        assert_eq!(
            check(&expect, &result(outcome, READY_LOG)),
            Err(Mismatch::WrongOutcome {
                expected: OutcomeKind::Success,
                actual: outcome
            }),
            "{outcome:?}"
        );
    }
}

#[test]
fn reset_after_ready_fails() {
    let expect = Expect::success(Vec::<String>::new());
    assert!(check(&expect, &result(Outcome::Reset, READY_LOG)).is_err());
}

#[test]
fn timeout_fails() {
    let expect = Expect::success(Vec::<String>::new());
    let mismatch = check(&expect, &result(Outcome::Timeout, READY_LOG)).unwrap_err();
    assert!(
        mismatch
            .to_string()
            .starts_with("expected success, got timeout")
    );
}

#[test]
fn expected_kernel_failure_with_message_passes() {
    let expect = Expect::failure(OutcomeKind::KernelFailure, ["DMA fault: bdf 00:03.0"]);
    let log = "moat: ready\nDMA fault: bdf 00:03.0 iova 0x1000\npanic\n";
    assert_eq!(check(&expect, &result(Outcome::KernelFailure, log)), Ok(()));
}

#[test]
fn expected_kernel_failure_without_message_fails() {
    let expect = Expect::failure(OutcomeKind::KernelFailure, ["DMA fault"]);
    assert_eq!(
        check(
            &expect,
            &result(Outcome::KernelFailure, "panic: something else\n")
        ),
        Err(Mismatch::MissingText(vec!["DMA fault".to_owned()]))
    );
}

#[test]
fn expected_reset_with_status_0_passes() {
    let expect = Expect::failure(OutcomeKind::Reset, Vec::<String>::new());
    assert_eq!(check(&expect, &result(Outcome::Reset, "")), Ok(()));
}

#[test]
fn expected_failure_rejects_other_outcomes_including_success() {
    let expect = Expect::failure(OutcomeKind::KernelFailure, Vec::<String>::new());
    for outcome in every_outcome() {
        let verdict = check(&expect, &result(outcome, READY_LOG));
        assert_eq!(
            verdict.is_ok(),
            outcome == Outcome::KernelFailure,
            "{outcome:?}"
        );
    }
}

#[test]
fn expected_crash_matches_any_signal() {
    let expect = Expect::failure(OutcomeKind::Crash, Vec::<String>::new());
    for signal in [6, 9, 11] {
        assert_eq!(
            check(&expect, &result(Outcome::Crash { signal }, "")),
            Ok(())
        );
    }
}

#[test]
fn expecting_a_successful_failure_never_passes() {
    let expect = Expect::failure(OutcomeKind::Success, Vec::<String>::new());
    assert_eq!(
        check(&expect, &result(Outcome::Success, READY_LOG)),
        Err(Mismatch::ContradictoryExpectation)
    );
}

#[test]
fn mismatch_messages_are_readable() {
    assert_eq!(
        Mismatch::MissingText(vec!["a".to_owned(), "b".to_owned()]).to_string(),
        r#"serial log lacks expected text: "a", "b""#
    );
    assert_eq!(
        Mismatch::WrongOutcome {
            expected: OutcomeKind::Success,
            actual: Outcome::Reset
        }
        .to_string(),
        "expected success, got reset (exit 0 under -no-reboot: triple fault or reboot)"
    );
    assert!(Mismatch::MissingReady.to_string().contains("`moat: ready`"));
}

//! Exhaustive checks of the exit-status classification.

use super::*;

/// Codes worth trying: every status a Unix process can exit with, plus values only a buggy
/// caller could pass.
fn all_codes() -> impl Iterator<Item = i32> {
    (-1..=256).chain([i32::MIN, i32::MAX])
}

/// Every signal number Linux can report, plus out-of-range values.
fn all_signals() -> impl Iterator<Item = i32> {
    (0..=64).chain([-1, i32::MAX])
}

#[test]
fn exit_values_follow_the_isa_debug_exit_formula() {
    assert_eq!(SUCCESS_STATUS, (i32::from(SUCCESS_EXIT_VALUE) << 1) | 1);
    assert_eq!(
        KERNEL_FAILURE_STATUS,
        (i32::from(FAILURE_EXIT_VALUE) << 1) | 1
    );
    assert_eq!(SUCCESS_STATUS, 33);
    assert_eq!(KERNEL_FAILURE_STATUS, 35);
}

#[test]
fn exit_statuses_cannot_be_confused_with_qemu_or_reset() {
    for status in [SUCCESS_STATUS, KERNEL_FAILURE_STATUS] {
        assert_ne!(status, RESET_STATUS);
        assert_ne!(status, QEMU_ERROR_STATUS);
        assert_ne!(status, 0);
        assert_ne!(status, 1);
    }
    assert_ne!(SUCCESS_STATUS, KERNEL_FAILURE_STATUS);
}

#[test]
fn only_status_33_without_signal_or_timeout_is_success() {
    for timed_out in [false, true] {
        for signal in all_signals().map(Some).chain([None]) {
            for code in all_codes().map(Some).chain([None]) {
                let outcome = classify_code(code, signal, timed_out);
                let expected = !timed_out && signal.is_none() && code == Some(33);
                assert_eq!(
                    outcome.is_success(),
                    expected,
                    "code {code:?} signal {signal:?} timed_out {timed_out} -> {outcome:?}"
                );
            }
        }
    }
}

#[test]
fn timeout_wins_over_everything() {
    for signal in all_signals().map(Some).chain([None]) {
        for code in all_codes().map(Some).chain([None]) {
            assert_eq!(classify_code(code, signal, true), Outcome::Timeout);
        }
    }
}

#[test]
fn signal_wins_over_code() {
    for signal in all_signals() {
        for code in all_codes().map(Some).chain([None]) {
            assert_eq!(
                classify_code(code, Some(signal), false),
                Outcome::Crash { signal }
            );
        }
    }
}

#[test]
fn each_code_maps_to_its_outcome() {
    for code in all_codes() {
        let expected = match code {
            33 => Outcome::Success,
            35 => Outcome::KernelFailure,
            1 => Outcome::QemuError,
            0 => Outcome::Reset,
            other => Outcome::UnexpectedStatus(other),
        };
        assert_eq!(classify_code(Some(code), None, false), expected);
    }
    assert_eq!(classify_code(None, None, false), Outcome::NoStatus);
}

#[test]
fn seven_is_just_an_unexpected_status() {
    assert_eq!(
        classify_code(Some(7), None, false),
        Outcome::UnexpectedStatus(7)
    );
}

#[test]
fn classify_reads_real_wait_statuses() {
    // A wait status holds an exit code in bits 8..16 and a terminating signal in bits 0..7.
    let exited = |code: i32| Some(ExitStatus::from_raw(code << 8));
    let killed = |signal: i32| Some(ExitStatus::from_raw(signal));
    assert_eq!(classify(exited(33), false), Outcome::Success);
    assert_eq!(classify(exited(35), false), Outcome::KernelFailure);
    assert_eq!(classify(exited(1), false), Outcome::QemuError);
    assert_eq!(classify(exited(0), false), Outcome::Reset);
    assert_eq!(classify(exited(7), false), Outcome::UnexpectedStatus(7));
    assert_eq!(classify(killed(9), false), Outcome::Crash { signal: 9 });
    assert_eq!(classify(killed(11), false), Outcome::Crash { signal: 11 });
    assert_eq!(classify(exited(33), true), Outcome::Timeout);
    assert_eq!(classify(killed(9), true), Outcome::Timeout);
    assert_eq!(classify(None, true), Outcome::Timeout);
    assert_eq!(classify(None, false), Outcome::NoStatus);
}

#[test]
fn kind_drops_the_payload() {
    assert_eq!(Outcome::Crash { signal: 6 }.kind(), OutcomeKind::Crash);
    assert_eq!(
        Outcome::UnexpectedStatus(7).kind(),
        OutcomeKind::UnexpectedStatus
    );
    assert_eq!(Outcome::Reset.kind(), OutcomeKind::Reset);
    assert_eq!(Outcome::Success.kind(), OutcomeKind::Success);
}

#[test]
fn display_explains_each_outcome() {
    assert_eq!(
        Outcome::Reset.to_string(),
        "reset (exit 0 under -no-reboot: triple fault or reboot)"
    );
    assert!(Outcome::Success.to_string().contains("0x10"));
    assert!(Outcome::KernelFailure.to_string().contains("0x11"));
    assert!(Outcome::QemuError.to_string().contains("exit 1"));
    assert!(Outcome::Timeout.to_string().contains("timeout"));
    assert_eq!(
        Outcome::Crash { signal: 9 }.to_string(),
        "crash (killed by signal 9, SIGKILL)"
    );
    assert_eq!(
        Outcome::Crash { signal: 42 }.to_string(),
        "crash (killed by signal 42)"
    );
    assert_eq!(
        Outcome::UnexpectedStatus(7).to_string(),
        "unexpected exit status 7 (as if the guest wrote 0x03 to isa-debug-exit, \
         which is not a Moat exit value)"
    );
    assert_eq!(
        Outcome::UnexpectedStatus(2).to_string(),
        "unexpected exit status 2"
    );
}

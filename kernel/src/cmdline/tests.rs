//! Tests for the command-line parser: every option, every problem kind, and a property test
//! that each token is accounted for.

use super::*;
use alloc::string::ToString;
use alloc::vec;

fn unknown(option: &str) -> Problem {
    Problem::Unknown {
        option: option.to_string(),
    }
}

fn malformed(option: &str, reason: &'static str) -> Problem {
    Problem::Malformed {
        option: option.to_string(),
        reason,
    }
}

fn repeated(key: &str) -> Problem {
    Problem::Repeated {
        key: key.to_string(),
    }
}

#[test]
fn empty_and_blank_lines_give_defaults() {
    for line in ["", " ", "\t\n  \r\n"] {
        let parsed = parse(line);
        assert_eq!(parsed, CommandLine::default());
        assert_eq!(parsed.log_level, Level::Info);
        assert!(!parsed.poweroff);
    }
}

#[test]
fn all_options_with_mixed_whitespace() {
    let parsed = parse("  poweroff\ttest=dmar.walk-1_a \n log=trace ");
    assert!(parsed.poweroff);
    assert_eq!(parsed.test.as_deref(), Some("dmar.walk-1_a"));
    assert_eq!(parsed.log_level, Level::Trace);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
}

#[test]
fn poweroff_with_any_value_is_malformed() {
    for line in ["poweroff=1", "poweroff=", "poweroff=yes"] {
        let parsed = parse(line);
        assert!(!parsed.poweroff, "{line}");
        assert_eq!(
            parsed.problems,
            vec![malformed(line, "poweroff takes no value")]
        );
    }
}

#[test]
fn test_name_validation() {
    let parsed = parse("test=");
    assert_eq!(parsed.test, None);
    assert_eq!(
        parsed.problems,
        vec![malformed("test=", "test name must not be empty")]
    );
    assert_eq!(
        parse("test").problems,
        vec![malformed("test", "test needs a name: test=NAME")]
    );
    for bad in ["test=Upper", "test=a/b", "test=a=b", "test=ü", "test=a,b"] {
        let parsed = parse(bad);
        assert_eq!(parsed.test, None, "{bad}");
        assert!(
            matches!(&parsed.problems[..], [Problem::Malformed { option, .. }] if option == bad)
        );
    }
    for good in ["test=0", "test=-", "test=a.b_c-d9", "test=..."] {
        assert!(parse(good).problems.is_empty(), "{good}");
    }
}

#[test]
fn log_level_values() {
    assert_eq!(parse("log=error").log_level, Level::Error);
    assert_eq!(parse("log=WARN").log_level, Level::Warn);
    let parsed = parse("log=verbose");
    assert_eq!(parsed.log_level, Level::Info);
    assert_eq!(
        parsed.problems,
        vec![malformed(
            "log=verbose",
            "log level must be one of error, warn, info, debug, trace"
        )]
    );
    assert!(matches!(
        &parse("log").problems[..],
        [Problem::Malformed { .. }]
    ));
    assert!(matches!(
        &parse("log=").problems[..],
        [Problem::Malformed { .. }]
    ));
}

#[test]
fn unknown_options_are_recorded_whole() {
    let parsed = parse("foo=bar quiet LOG=debug iommu.strict=1 =x");
    assert_eq!(
        parsed.problems,
        vec![
            unknown("foo=bar"),
            unknown("quiet"),
            unknown("LOG=debug"),
            unknown("iommu.strict=1"),
            malformed("=x", "option name must not be empty"),
        ]
    );
    assert_eq!(parsed.log_level, Level::Info);
}

#[test]
fn lone_equals_sign_is_malformed() {
    assert_eq!(
        parse("=").problems,
        vec![malformed("=", "option name must not be empty")]
    );
}

#[test]
fn repeated_option_last_wins_and_is_reported_once() {
    let parsed = parse("log=debug test=a log=warn test=b log=error");
    assert_eq!(parsed.log_level, Level::Error);
    assert_eq!(parsed.test.as_deref(), Some("b"));
    assert_eq!(parsed.problems, vec![repeated("log"), repeated("test")]);

    let parsed = parse("poweroff poweroff");
    assert!(parsed.poweroff);
    assert_eq!(parsed.problems, vec![repeated("poweroff")]);
}

#[test]
fn malformed_repeat_keeps_the_earlier_valid_value() {
    let parsed = parse("log=debug log=bogus");
    assert_eq!(parsed.log_level, Level::Debug);
    assert_eq!(parsed.problems.len(), 1);
    assert!(
        matches!(&parsed.problems[0], Problem::Malformed { option, .. } if option == "log=bogus")
    );

    let parsed = parse("log=bogus log=debug");
    assert_eq!(parsed.log_level, Level::Debug);
    assert_eq!(parsed.problems.len(), 1);
}

#[test]
fn problems_display_clearly() {
    assert_eq!(unknown("foo=bar").to_string(), "unknown option `foo=bar`");
    assert_eq!(
        malformed("test=", "test name must not be empty").to_string(),
        "malformed option `test=`: test name must not be empty"
    );
    assert_eq!(
        repeated("log").to_string(),
        "option `log` given twice or more; the last one wins"
    );
}

#[test]
fn every_option_is_documented_and_parses() {
    for (syntax, help) in OPTIONS {
        assert!(!help.is_empty());
        let key = syntax.split('=').next().unwrap_or(syntax);
        let example = match *syntax {
            "test=NAME" => "test=smoke".to_string(),
            "log=LEVEL" => "log=debug".to_string(),
            "iommu=on|off" => "iommu=off".to_string(),
            "iommu.invalidation=register|queued" => "iommu.invalidation=queued".to_string(),
            "iommu.fault_limit=N/MSms" => "iommu.fault_limit=8/1000ms".to_string(),
            "iommu.passthrough=BDF[,BDF...]" => "iommu.passthrough=00:03.0".to_string(),
            "drivers=all|none|NAME[,NAME...]" => "drivers=nvme,edu".to_string(),
            "net.ip=A.B.C.D/N" => "net.ip=10.0.2.15/24".to_string(),
            "net.gw=A.B.C.D" => "net.gw=10.0.2.2".to_string(),
            other => other.to_string(),
        };
        assert!(example.starts_with(key));
        assert!(parse(&example).problems.is_empty(), "{syntax}");
    }
}

fn token() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just("poweroff".to_string()),
        Just("poweroff=1".to_string()),
        Just("log=debug".to_string()),
        Just("log=trace".to_string()),
        Just("log=loud".to_string()),
        Just("test=a".to_string()),
        Just("test=".to_string()),
        "[a-z=._-]{1,8}",
    ]
}

proptest::proptest! {
    /// Each token is rejected in context exactly when it is rejected on its own, and each
    /// key validly given more than once is reported exactly once.
    #[test]
    fn problems_account_for_every_token(
        tokens in proptest::collection::vec(token(), 0..10),
        separator in "[ \t\n]{1,3}",
    ) {
        let line = tokens.join(&separator);
        let parsed = parse(&line);
        let rejected: Vec<&String> = parsed
            .problems
            .iter()
            .filter_map(|problem| match problem {
                Problem::Unknown { option } | Problem::Malformed { option, .. } => Some(option),
                Problem::Repeated { .. } => None,
            })
            .collect();
        let rejected_alone: Vec<&String> = tokens
            .iter()
            .filter(|token| !parse(token).problems.is_empty())
            .collect();
        proptest::prop_assert_eq!(rejected, rejected_alone);

        let mut valid_keys: Vec<&str> = tokens
            .iter()
            .filter(|token| parse(token).problems.is_empty())
            .map(|token| token.split('=').next().unwrap_or(token))
            .collect();
        valid_keys.sort_unstable();
        let mut expected_repeats: Vec<&str> = valid_keys
            .windows(2)
            .filter(|pair| pair[0] == pair[1])
            .map(|pair| pair[0])
            .collect();
        expected_repeats.dedup();
        let mut repeats: Vec<&str> = parsed
            .problems
            .iter()
            .filter_map(|problem| match problem {
                Problem::Repeated { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        repeats.sort_unstable();
        proptest::prop_assert_eq!(repeats, expected_repeats);

        let last_level = tokens
            .iter()
            .filter_map(|token| token.strip_prefix("log="))
            .filter_map(Level::parse)
            .next_back()
            .unwrap_or(Level::Info);
        proptest::prop_assert_eq!(parsed.log_level, last_level);
    }
}

#[test]
fn iommu_options() {
    let line = parse("iommu=off iommu.invalidation=register");
    assert!(line.iommu_off);
    assert_eq!(line.invalidation, Some(InvalidationChoice::Register));
    assert!(line.problems.is_empty());
    let line = parse("iommu=on iommu.invalidation=queued");
    assert!(!line.iommu_off);
    assert_eq!(line.invalidation, Some(InvalidationChoice::Queued));
    let line = parse("iommu=maybe iommu.invalidation= iommu.invalidate=queued");
    assert_eq!(line.problems.len(), 3, "{:?}", line.problems);
    assert_eq!(
        line.problems[0].to_string(),
        "malformed option `iommu=maybe`: iommu takes on or off"
    );
    assert_eq!(
        line.problems[2].to_string(),
        "unknown option `iommu.invalidate=queued`"
    );
}

#[test]
fn fault_limit_and_unsafe_interrupts() {
    let parsed = parse("iommu.fault_limit=3/250ms iommu.allow_unsafe_interrupts");
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(
        parsed.fault_limit,
        FaultLimit {
            count: 3,
            window_ms: 250
        }
    );
    assert!(parsed.allow_unsafe_interrupts);
    let defaults = parse("");
    assert_eq!(defaults.fault_limit, FaultLimit::default());
    assert!(!defaults.allow_unsafe_interrupts);
    for bad in [
        "iommu.fault_limit",
        "iommu.fault_limit=3",
        "iommu.fault_limit=0/10ms",
        "iommu.fault_limit=3/0ms",
        "iommu.fault_limit=3/10",
        "iommu.fault_limit=x/10ms",
        "iommu.allow_unsafe_interrupts=yes",
    ] {
        let parsed = parse(bad);
        assert!(
            matches!(parsed.problems.as_slice(), [Problem::Malformed { .. }]),
            "{bad}: {:?}",
            parsed.problems
        );
    }
}

#[test]
fn passthrough_devices() {
    let parsed = parse("iommu.passthrough=00:03.0,0000:1f:04.7");
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(
        parsed.passthrough,
        vec![
            Bdf::new(0, 0, 3, 0).unwrap(),
            Bdf::new(0, 0x1f, 4, 7).unwrap()
        ]
    );
    assert!(parse("").passthrough.is_empty());
    const WHY: &str =
        "iommu.passthrough takes PCI addresses separated by commas, e.g. 00:03.0,00:04.0";
    for bad in [
        "iommu.passthrough",
        "iommu.passthrough=",
        "iommu.passthrough=00:03.0,",
        "iommu.passthrough=00:03",
        "iommu.passthrough=00:20.0",
        "iommu.passthrough=00:03.8",
        "iommu.passthrough=all",
    ] {
        let parsed = parse(bad);
        assert_eq!(parsed.problems, vec![malformed(bad, WHY)], "{bad}");
        assert!(parsed.passthrough.is_empty(), "{bad}");
    }
    let twice = "iommu.passthrough=00:03.0,0000:00:03.0";
    assert_eq!(
        parse(twice).problems,
        vec![malformed(twice, "iommu.passthrough names a device twice")]
    );
}

#[test]
fn driver_choice() {
    assert_eq!(parse("").drivers, DriverChoice::All);
    assert_eq!(parse("drivers=none").drivers, DriverChoice::None);
    let only = parse("drivers=nvme,virtio-blk").drivers;
    assert!(only.includes("nvme") && only.includes("virtio-blk") && !only.includes("edu"));
    assert!(!DriverChoice::None.includes("edu"));
    for bad in ["drivers", "drivers=", "drivers=nvme,,edu", "drivers=NVMe"] {
        let line = parse(bad);
        assert_eq!(line.drivers, DriverChoice::All, "{bad}");
        assert!(
            matches!(line.problems[..], [Problem::Malformed { .. }]),
            "{bad}"
        );
    }
}

#[test]
fn network_address_and_gateway() {
    use core::net::Ipv4Addr;
    let parsed = parse("net.ip=10.0.2.15/24 net.gw=10.0.2.2");
    assert_eq!(
        parsed.net_address,
        Some(Ipv4WithPrefix {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix_len: 24
        })
    );
    assert_eq!(parsed.net_gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert!(parsed.problems.is_empty());
    assert_eq!(
        parse("net.ip=192.168.7.1/32")
            .net_address
            .map(|a| a.prefix_len),
        Some(32)
    );
}

#[test]
fn malformed_network_options_are_reported_and_not_applied() {
    for token in [
        "net.ip",
        "net.ip=",
        "net.ip=10.0.2.15",
        "net.ip=10.0.2.15/",
        "net.ip=10.0.2.15/33",
        "net.ip=10.0.2.15/0",
        "net.ip=10.0.2.15/+24",
        "net.ip=10.0.2/24",
        "net.ip=10.0.2.256/24",
        "net.ip=0.0.0.0/8",
        "net.ip=224.0.0.1/4",
        "net.ip=255.255.255.255/32",
    ] {
        let parsed = parse(token);
        assert_eq!(parsed.net_address, None, "{token}");
        assert!(
            matches!(&parsed.problems[..], [Problem::Malformed { reason, .. }] if reason.starts_with("net.ip takes")),
            "{token}: {:?}",
            parsed.problems
        );
    }
    for token in [
        "net.gw",
        "net.gw=",
        "net.gw=10.0.2",
        "net.gw=0.0.0.0",
        "net.gw=10.0.2.2/24",
    ] {
        let parsed = parse(token);
        assert_eq!(parsed.net_gateway, None, "{token}");
        assert_eq!(parsed.problems.len(), 1, "{token}");
    }
}

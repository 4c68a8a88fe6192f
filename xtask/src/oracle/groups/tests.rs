use super::*;
use crate::oracle::parse_linux_report;

/// Groups from `(number, members)` pairs.
fn groups(list: &[(u32, &[&str])]) -> Groups {
    list.iter()
        .map(|(number, members)| (*number, members.iter().map(|m| m.to_string()).collect()))
        .collect()
}

/// Linux 6.1 on the multifunction-ports topology (section D of the facts file): ACS root
/// ports alone, the disable-acs port with its edu.
fn linux_ports() -> Groups {
    groups(&[
        (0, &["0000:00:00.0"]),
        (1, &["0000:00:02.0"]),
        (2, &["0000:00:02.1"]),
        (3, &["0000:00:02.2", "0000:03:00.0"]),
        (4, &["0000:01:00.0"]),
        (5, &["0000:02:00.0"]),
    ])
}

#[test]
fn moat_group_lines_parse() {
    let serial = "pci: 3 functions\r\n\
                  iommu group 0: 0000:00:00.0\r\n\
                  \x20 iommu group 7: 0000:03:00.0 0000:00:02.2\r\n\
                  [    0.5] INFO  iommu: 2 groups\r\n\
                  moat: ready\r\n";
    assert_eq!(
        parse_moat_groups(serial),
        Ok(groups(&[
            (0, &["0000:00:00.0"]),
            (7, &["0000:00:02.2", "0000:03:00.0"]),
        ]))
    );
    assert_eq!(parse_moat_groups("moat: ready\r\n"), Ok(Groups::new()));
    // Uppercase hex is accepted and lowercased, as for `pci:` lines.
    assert_eq!(
        parse_moat_groups("iommu group 1: 0000:00:1F.0"),
        Ok(groups(&[(1, &["0000:00:1f.0"])]))
    );
}

#[test]
fn malformed_moat_group_lines_fail() {
    for line in [
        "iommu group 1 0000:00:04.0",
        "iommu group : 0000:00:04.0",
        "iommu group x: 0000:00:04.0",
        "iommu group -1: 0000:00:04.0",
        "iommu group 1:",
        "iommu group 1: 00:04.0",
        "iommu group 1: 0000:00:20.0",
        "iommu group 1: 0000:00:04.0,0000:00:05.0",
        "iommu group 99999999999: 0000:00:04.0",
    ] {
        let error = parse_moat_groups(line).unwrap_err();
        assert!(error.contains("malformed line"), "{line}: {error}");
    }
    let error =
        parse_moat_groups("iommu group 1: 0000:00:04.0\niommu group 1: 0000:00:05.0").unwrap_err();
    assert!(error.contains("group 1 twice"), "{error}");
}

#[test]
fn same_partition_with_other_numbers_and_order_agrees() {
    let moat = parse_moat_groups(
        "iommu group 5: 0000:00:00.0\n\
         iommu group 4: 0000:00:02.0\n\
         iommu group 3: 0000:00:02.1\n\
         iommu group 2: 0000:03:00.0 0000:00:02.2\n\
         iommu group 1: 0000:01:00.0\n\
         iommu group 0: 0000:02:00.0\n",
    )
    .unwrap();
    assert_eq!(compare_groups(&moat, &linux_ports()), Ok(()));
    assert_eq!(compare_groups(&linux_ports(), &linux_ports()), Ok(()));
    assert_eq!(compare_groups(&Groups::new(), &Groups::new()), Ok(()));
}

#[test]
fn a_split_group_fails_naming_both_sides() {
    // Moat isolates the edu behind the port without ACS: it must not.
    let moat = groups(&[
        (0, &["0000:00:00.0"]),
        (1, &["0000:00:02.0"]),
        (2, &["0000:00:02.1"]),
        (3, &["0000:00:02.2"]),
        (4, &["0000:01:00.0"]),
        (5, &["0000:02:00.0"]),
        (6, &["0000:03:00.0"]),
    ]);
    let error = compare_groups(&moat, &linux_ports()).unwrap_err();
    assert_eq!(
        error,
        "Moat's IOMMU groups differ from Linux's (7 groups in Moat, 6 in Linux; group numbers \
         ignored):\n  \
         Linux's group {0000:00:02.2 0000:03:00.0} is {0000:00:02.2} {0000:03:00.0} in Moat\n  \
         Moat's group {0000:00:02.2} is {0000:00:02.2 0000:03:00.0} in Linux\n  \
         Moat's group {0000:03:00.0} is {0000:00:02.2 0000:03:00.0} in Linux"
    );
}

#[test]
fn a_merged_group_fails() {
    // Moat puts two ACS-isolated ports together.
    let moat = groups(&[
        (0, &["0000:00:00.0"]),
        (1, &["0000:00:02.0", "0000:00:02.1"]),
        (3, &["0000:00:02.2", "0000:03:00.0"]),
        (4, &["0000:01:00.0"]),
        (5, &["0000:02:00.0"]),
    ]);
    let error = compare_groups(&moat, &linux_ports()).unwrap_err();
    assert!(
        error.contains(
            "Linux's group {0000:00:02.0} is {0000:00:02.0 0000:00:02.1} in Moat\n  \
             Linux's group {0000:00:02.1} is {0000:00:02.0 0000:00:02.1} in Moat\n  \
             Moat's group {0000:00:02.0 0000:00:02.1} is {0000:00:02.0} {0000:00:02.1} in Linux"
        ),
        "{error}"
    );
}

#[test]
fn devices_in_no_group_or_in_two_fail() {
    let mut moat = linux_ports();
    moat.remove(&5);
    let error = compare_groups(&moat, &linux_ports()).unwrap_err();
    assert!(
        error.ends_with("\n  Linux's group {0000:02:00.0} is 0000:02:00.0 (in no group) in Moat"),
        "{error}"
    );
    let error = compare_groups(&linux_ports(), &moat).unwrap_err();
    assert!(
        error.ends_with("\n  Moat's group {0000:02:00.0} is 0000:02:00.0 (in no group) in Linux"),
        "{error}"
    );

    let mut moat = linux_ports();
    moat.insert(9, vec!["0000:02:00.0".into()]);
    let error = compare_groups(&moat, &linux_ports()).unwrap_err();
    assert!(
        error.contains("Moat lists 0000:02:00.0 in group 5 and in group 9"),
        "{error}"
    );
}

#[test]
fn linux_groups_from_its_report_compare_with_moat_lines() {
    // The guest prints one `group N BDF` line per member, in any order.
    let linux = parse_linux_report(
        "oracle-begin\r\n\
         group 3 0000:00:06.1\r\n\
         group 0 0000:00:00.0\r\n\
         group 3 0000:00:06.0\r\n\
         oracle-end\r\n",
    )
    .unwrap();
    let moat = parse_moat_groups(
        "iommu group 0: 0000:00:00.0\r\niommu group 1: 0000:00:06.0 0000:00:06.1\r\n",
    )
    .unwrap();
    assert_eq!(compare_groups(&moat, &linux.groups), Ok(()));
    let moat = parse_moat_groups(
        "iommu group 0: 0000:00:00.0\r\niommu group 1: 0000:00:06.0\r\n\
         iommu group 2: 0000:00:06.1\r\n",
    )
    .unwrap();
    assert!(compare_groups(&moat, &linux.groups).is_err());
}

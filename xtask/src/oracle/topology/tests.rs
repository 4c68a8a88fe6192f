use std::collections::BTreeMap;

use super::topologies;

/// The `key=value` properties of one `-device` argument.
fn properties(device: &str) -> BTreeMap<&str, &str> {
    device
        .split(',')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .collect()
}

#[test]
fn topologies_are_well_formed() {
    let sets = topologies();
    let names: Vec<&str> = sets.iter().map(|(name, _)| *name).collect();
    for required in [
        "root-bus",
        "ports-and-switch",
        "pcie-pci-bridge",
        "multifunction-ports",
        "ports-without-acs",
        "pxb-expander",
    ] {
        assert!(names.contains(&required), "{required} missing: {names:?}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate names: {names:?}");

    for (name, args) in &sets {
        assert_eq!(args.len() % 2, 0, "{name}: every option takes a value");
        let pairs: Vec<(&str, &str)> = args
            .chunks(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()))
            .collect();
        let mut ports = BTreeMap::new(); // id -> kind
        let mut chassis_slots = Vec::new();
        let mut chassis_numbers = Vec::new();
        let mut netdevs = Vec::new();
        for (option, value) in &pairs {
            assert!(["-device", "-netdev"].contains(option), "{name}: {option}");
            let props = properties(value);
            let model = value.split(',').next().unwrap();
            if *option == "-netdev" {
                netdevs.push(props["id"]);
                continue;
            }
            if let Some(netdev) = props.get("netdev") {
                assert!(
                    netdevs.contains(netdev),
                    "{name}: {value} before its netdev"
                );
            }
            if let Some(bus) = props.get("bus")
                && ports.get(bus).is_some_and(|kind| *kind == "port")
            {
                // Linux scans only device 0 below a root or downstream port.
                assert!(
                    props.get("addr").is_some_and(|a| ["0", "0x0"].contains(a)),
                    "{name}: {value} is not at slot 0 of port {bus}"
                );
            }
            match model {
                "pcie-root-port" | "xio3130-downstream" | "ioh3420" => {
                    ports.insert(props["id"], "port");
                    chassis_slots.push((props["chassis"], props["slot"]));
                    chassis_numbers.push(props["chassis"]);
                }
                "x3130-upstream" | "pcie-pci-bridge" | "i82801b11-bridge" => {
                    ports.insert(props["id"], "bridge");
                }
                "pxb-pcie" => {
                    ports.insert(props["id"], "root-bus");
                }
                "pci-bridge" => {
                    ports.insert(props["id"], "bridge");
                    chassis_numbers.push(props["chassis_nr"]);
                }
                _ => {}
            }
            if let Some(bus) = props.get("bus") {
                assert!(
                    *bus == "pcie.0" || ports.contains_key(bus),
                    "{name}: {value} on unknown bus {bus}"
                );
            }
        }
        let mut sorted = chassis_slots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            chassis_slots.len(),
            "{name}: {chassis_slots:?}"
        );
        let mut sorted = chassis_numbers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            chassis_numbers.len(),
            "{name}: {chassis_numbers:?}"
        );
    }
}

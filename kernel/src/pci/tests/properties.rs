//! Arbitrary configuration space: discovery always ends, never panics, never reads outside
//! the reachable space (the fake panics if it does), scans no function twice and leaves the
//! bytes as it found them.

use alloc::vec::Vec;

use moat_iommu::Bdf;
use proptest::prelude::*;

use super::fake::{FakeConfig, Function};
use crate::pci::{ConfigSpaceSize, enumerate};

/// A function of random bytes, biased towards bridges with small bus numbers so that the
/// walk goes somewhere.
fn arbitrary_function() -> impl Strategy<Value = (u8, u8, Function)> {
    (
        0u8..6,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 4096),
        prop_oneof![
            Just(0x00u8),
            Just(0x01),
            Just(0x81),
            Just(0x02),
            any::<u8>()
        ],
        (0u8..8, 0u8..8),
        any::<[u32; 6]>(),
    )
        .prop_map(
            |(bus, devfn, bytes, header, (secondary, subordinate), masks)| {
                let mut function = Function::new(if header & 0x7f == 1 { 2 } else { 6 });
                function.bytes.copy_from_slice(&bytes);
                function.put8(0x0e, header);
                function.put8(0x19, secondary);
                function.put8(0x1a, subordinate);
                for (slot, mask) in function.bar_writable.iter_mut().zip(masks) {
                    if slot.is_some() {
                        *slot = Some(mask);
                    }
                }
                (bus, devfn, function)
            },
        )
}

fn check(functions: Vec<(u8, u8, Function)>, size: ConfigSpaceSize) -> Result<(), TestCaseError> {
    let mut machine = FakeConfig::new(size);
    for (bus, devfn, function) in functions {
        machine.insert(Bdf::from_devfn(0, bus, devfn), function);
    }
    let before = machine.snapshot();
    let found = enumerate(&machine, 0, 0..=7, size);
    let addresses: Vec<Bdf> = found.devices.iter().map(|device| device.bdf).collect();
    prop_assert!(addresses.windows(2).all(|pair| pair[0] < pair[1]));
    prop_assert!(
        found
            .problems
            .windows(2)
            .all(|pair| pair[0].bdf <= pair[1].bdf)
    );
    prop_assert_eq!(machine.snapshot(), before);
    prop_assert!(machine.violations().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pci_arbitrary_config_space_through_ecam(
        functions in proptest::collection::vec(arbitrary_function(), 1..12)
    ) {
        check(functions, ConfigSpaceSize::Extended)?;
    }

    #[test]
    fn pci_arbitrary_config_space_through_port_io(
        functions in proptest::collection::vec(arbitrary_function(), 1..12)
    ) {
        check(functions, ConfigSpaceSize::Conventional)?;
    }
}

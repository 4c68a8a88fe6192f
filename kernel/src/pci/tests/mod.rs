//! Host tests for PCI discovery against an in-memory configuration space shaped like
//! QEMU 7.2's q35 machine, and against malformed variants of it.

mod builder;
mod fake;
mod groups;
mod malformed;
mod properties;
mod q35;
mod reset;
mod reset_bus;
mod reset_machine;
mod roots;
mod topology;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use moat_iommu::Bdf;

use super::{ConfigSpaceSize, Enumeration, device_line, enumerate};
use fake::FakeConfig;

/// Enumerates segment 0, buses 00-ff, through ECAM.
fn run(machine: &FakeConfig) -> Enumeration {
    enumerate(machine, 0, 0..=0xff, ConfigSpaceSize::Extended)
}

/// One report line per device.
fn lines(found: &Enumeration) -> Vec<String> {
    found.devices.iter().map(device_line).collect()
}

/// One line per problem.
fn problem_lines(found: &Enumeration) -> Vec<String> {
    found.problems.iter().map(ToString::to_string).collect()
}

/// The addresses found.
fn addresses(found: &Enumeration) -> Vec<Bdf> {
    found.devices.iter().map(|device| device.bdf).collect()
}

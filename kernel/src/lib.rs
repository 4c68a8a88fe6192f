//! Moat's trusted kernel services: console and logging, CPU tables and interrupts, memory,
//! ACPI, timers and the command line. Hardware-independent parts build and test on the host.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod arch;
pub mod bench;
pub mod boot_info;
pub mod cmdline;
pub mod console;
pub mod devices;
pub mod discover;
pub mod dma;
pub mod ecam;
pub mod log;
pub mod memory;
pub mod passthrough;
pub mod pci;
pub mod physmem;
pub mod privilege;
pub mod scenarios;
pub mod time;
pub mod vtd;

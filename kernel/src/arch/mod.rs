//! x86_64 specifics: raw I/O, GDT/TSS, IDT and exception reports, the local APIC and its timer,
//! the PIT, the kernel's page tables, and leaving the machine.

pub mod apic;
pub mod device_vectors;
pub mod exit;
pub mod gdt;
pub mod interrupts;
pub mod io;
pub mod paging;
pub mod pit;

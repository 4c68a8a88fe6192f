//! Intel VT-d for Moat: DMAR parsing, second-level page tables, DMA ownership and the device
//! lifecycle, and (in the kernel) the remapping engine. Everything here that does not touch
//! hardware builds and tests on the host.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bdf;
pub mod dmar;
pub mod engine;
pub mod entries;
pub mod group;
pub mod ownership;
pub mod paging;

pub use bdf::Bdf;

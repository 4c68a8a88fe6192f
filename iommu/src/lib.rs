//! Intel VT-d for Moat: DMAR parsing, second-level page tables and the remapping engine.
//! Everything here that does not touch hardware builds and tests on the host.
#![cfg_attr(not(test), no_std)]

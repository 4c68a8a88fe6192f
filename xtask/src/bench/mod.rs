//! `cargo xtask bench`: the VT-d map/unmap benchmark (`vtd.rs`) and the block benchmark
//! (`block.rs`: Moat's drivers against Debian's Linux on the same QEMU machine, each with
//! strict translation and with the devices in pass-through). Results go to `target/bench/`.
//! Ratios are taken within one run; nothing here asserts a speed.

mod block;
mod linux;
mod plot;
mod report;
mod results;
mod vtd;

pub(crate) use block::{create_disks, run as run_block};
pub(crate) use vtd::run as run_vtd;

/// Random 4 KiB reads per random cell (at queue depth 1, and split over [`JOBS`] at depth
/// [`JOBS`]), on both systems.
pub(crate) const RANDOM_IOS: u32 = 1024;
/// 128 KiB sequential reads per sequential cell: the whole 64 MiB disk once.
pub(crate) const SEQUENTIAL_IOS: u32 = 512;
/// The deep queue: requests in flight at once (Linux: that many `dd` processes).
pub(crate) const JOBS: u32 = 32;

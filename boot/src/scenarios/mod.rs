//! Every in-kernel scenario (`test=NAME`) in one place: the kernel's own (timer, panic, ...)
//! and the device scenarios that need the composition root's view of the machine. Each
//! family's file has its `SCENARIOS` list (name, what it shows) and a `run` that answers
//! `None` for names that are not its own.

mod bench_block;
mod block_load;
mod dma;
mod drivers;
mod irq;
mod net;
mod nvme;
mod ownership;
mod pass_through;
pub(crate) mod pattern;
mod reset;
mod rig;
pub(crate) mod virtio_blk;

use alloc::string::String;
use alloc::vec::Vec;

type Runner = fn(&str) -> Option<Result<(), String>>;

/// The families, in the order `run` asks them.
const FAMILIES: &[(&[(&str, &str)], Runner)] = &[
    (block_load::SCENARIOS, block_load::run),
    (dma::SCENARIOS, dma::run),
    (bench_block::SCENARIOS, bench_block::run),
    (pass_through::SCENARIOS, pass_through::run),
    (drivers::SCENARIOS, drivers::run),
    (virtio_blk::SCENARIOS, virtio_blk::run),
    (ownership::SCENARIOS, ownership::run),
    (irq::SCENARIOS, irq::run),
    (nvme::SCENARIOS, nvme::run),
    (net::SCENARIOS, net::run),
    (reset::SCENARIOS, reset::run),
    (moat_kernel::scenarios::SCENARIOS, |name| {
        moat_kernel::scenarios::run(&crate::ROOT, name)
    }),
];

/// Runs scenario `name`: `Ok` it passed, `Err` why not (an unknown name lists the known).
pub(crate) fn run(name: &str) -> Result<(), String> {
    for (_, runner) in FAMILIES {
        if let Some(result) = runner(name) {
            return result;
        }
    }
    let known: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|(list, _)| list.iter().map(|(n, _)| *n))
        .collect();
    Err(alloc::format!(
        "unknown test scenario `{name}`; known: {}",
        known.join(", ")
    ))
}

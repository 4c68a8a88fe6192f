//! Host tests of the driver against the simulated controller in [`crate::sim`].

mod bringup;
mod faults;
mod io;

use crate::sim::{Config, Sim};
use crate::{Nvme, NvmeError, Options};

/// Starts the driver on a simulated controller built from `config`.
fn start_with(config: Config, options: Options) -> (Sim, Nvme<Sim>) {
    let sim = Sim::new(config);
    let nvme = Nvme::start(sim.clone(), options).unwrap_or_else(|(e, _)| panic!("start: {e}"));
    (sim, nvme)
}

fn start(config: Config) -> (Sim, Nvme<Sim>) {
    start_with(config, Options::default())
}

/// Starts the driver expecting it to fail; checks it handed the platform back with nothing
/// left mapped and the controller disabled, and returns the error.
fn start_fails(config: Config) -> (Sim, NvmeError) {
    let sim = Sim::new(config);
    let Err((error, _platform)) = Nvme::start(sim.clone(), Options::default()) else {
        panic!("start succeeded");
    };
    {
        let state = sim.state();
        assert_eq!(
            state.memory.live(),
            0,
            "regions left mapped after a failed start"
        );
        assert_eq!(
            state.cc & 1,
            0,
            "controller left enabled after a failed start"
        );
    }
    (sim, error)
}

/// A deterministic byte pattern (xorshift) of `len` bytes from `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

//! The network stack over a passthrough NIC driver: a smoltcp `phy::Device` over any [`Nic`]
//! (the e1000e driver is one), and the services the guest runs on the address from the kernel
//! command line: ARP and ICMP echo (answered by smoltcp's interface), a TCP echo service that
//! greets first, and a UDP echo service.
//!
//! No unsafe, no_std with `alloc` (socket buffers); host-tested with two stacks on an
//! in-memory wire (`src/tests.rs`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod e1000e;
mod phy;
mod services;

pub use phy::{FrameCounters, Phy};
pub use services::{Report, Stack, StackConfig, StackError};
pub use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// TCP port of the echo service.
pub const TCP_PORT: u16 = 7777;
/// UDP port of the echo service.
pub const UDP_PORT: u16 = 7778;
/// What the TCP service sends first on every connection.
pub const GREETING: &[u8] = b"moat e1000e tcp echo ready\n";
/// Length of the payload a test client sends after the greeting; the service checks it
/// against [`pattern`] and echoes it back.
pub const PAYLOAD_LEN: usize = 16 * 1024;

/// Byte `index` of the known payload: not periodic within [`PAYLOAD_LEN`], so a dropped,
/// repeated or reordered segment changes what the receiver sees.
pub const fn pattern(index: usize) -> u8 {
    let mixed = (index as u32).wrapping_mul(2_654_435_761);
    (mixed >> 24) as u8 ^ (index >> 8) as u8
}

/// A network interface card as the stack sees it: whole Ethernet frames in and out.
pub trait Nic {
    /// The driver's error type.
    type Error: core::fmt::Debug;
    /// The station MAC address.
    fn mac_address(&self) -> [u8; 6];
    /// Copies the next received frame into `out`; `Ok(None)` when nothing is waiting. A bad
    /// frame is an error and has been dropped; the next call goes on with the next one.
    fn receive(&mut self, out: &mut [u8]) -> Result<Option<usize>, Self::Error>;
    /// Whether `transmit` has room for one more frame.
    fn can_transmit(&mut self) -> bool;
    /// Queues one Ethernet frame (no CRC).
    fn transmit(&mut self, frame: &[u8]) -> Result<(), Self::Error>;
}

#[cfg(test)]
mod tests;

//! The 8254 PIT, used once at boot as the fixed-rate reference (1.193182 MHz) that the TSC is
//! calibrated against. Channel 2 is gated through port 0x61 and counts down in mode 0, so no
//! interrupt is needed.

use super::io;

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Why a PIT measurement failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PitError {
    /// OUT2 never went high within the poll budget: no working PIT.
    NoTerminalCount,
    /// The clock was calibrated already (it is calibrated once).
    AlreadyCalibrated,
}

/// Busy-waits `ticks` PIT input clocks (at most 0xffff) on channel 2 and returns the TSC
/// values read at the start and end of the wait.
pub(crate) fn measure_tsc(ticks: u16) -> Result<(u64, u64), PitError> {
    // Gate off, speaker off; program channel 2: lobyte/hibyte, mode 0 (interrupt on terminal
    // count), binary.
    let control = io::inb(0x61);
    io::outb(0x61, control & !0x03);
    io::outb(0x43, 0b1011_0000);
    io::outb(0x42, ticks as u8);
    io::outb(0x42, (ticks >> 8) as u8);
    // Gate on: counting starts.
    io::outb(0x61, (control & !0x02) | 0x01);
    let start = io::rdtsc();
    // TIMEOUT: 50 million port reads is seconds even under TCG, far beyond the ~55 ms the
    // longest count takes; if OUT2 never rises there is no PIT to calibrate against.
    for _ in 0..50_000_000u32 {
        if io::inb(0x61) & 0x20 != 0 {
            let end = io::rdtsc();
            io::outb(0x61, control & !0x03);
            return Ok((start, end));
        }
    }
    io::outb(0x61, control & !0x03);
    Err(PitError::NoTerminalCount)
}

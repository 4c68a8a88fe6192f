//! Ending a run: QEMU's `isa-debug-exit` device (port 0xf4) turns a written value v into the
//! exit status (v << 1) | 1. Success is 0x10 (status 33), a kernel-detected failure 0x11
//! (status 35); neither can be confused with QEMU's own failure (1) or a reset (0).

use super::io;

/// The port of QEMU's `isa-debug-exit` device (`iobase=0xf4`).
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// How a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything asked for was done: QEMU exits with status 33.
    Success = 0x10,
    /// The kernel detected a failure (panic, exception, failed scenario): status 35.
    Failure = 0x11,
}

/// Leaves the machine: exits QEMU through `isa-debug-exit`; on a machine without that device
/// (real hardware) the write is ignored and the CPU halts with interrupts off.
pub fn exit(code: ExitCode) -> ! {
    io::outl(DEBUG_EXIT_PORT, code as u32);
    io::halt_forever()
}

//! The serial console on COM1 and the kernel's logger: one line per event, with a monotonic
//! timestamp, a level and the subsystem (format in `log::write_line`).

use crate::log::{self, Level};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550Tty};

/// COM1's I/O base.
const COM1: u16 = 0x3f8;

static SERIAL: Mutex<Option<Uart16550Tty<PioBackend>>> = Mutex::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Brings up COM1 (115200 8N1). Before this, nothing is printed.
pub fn init() {
    // SAFETY: COM1 (0x3f8..0x3ff) belongs to the console alone; it is initialised once here.
    let uart = unsafe { Uart16550Tty::new_port(COM1, Config::default()) };
    if let Ok(uart) = uart {
        *SERIAL.lock() = Some(uart);
    }
}

/// Sets the most verbose level that is printed.
pub fn set_max_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether `level` is printed.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes raw text to the console (used for the boot report and the `moat: ready` line).
pub fn write_str(text: &str) {
    with_serial(|serial| {
        let _ = serial.write_str(text);
    });
}

/// Writes formatted raw text to the console.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    with_serial(|serial| {
        let _ = serial.write_fmt(args);
    });
}

/// Logs one event. Use the `error!`/`warn!`/`info!`/`debug!`/`trace!` macros.
pub fn log(level: Level, subsystem: &str, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = crate::time::now_ns();
    with_serial(|serial| {
        let _ = log::write_line(serial, now, level, subsystem, args);
    });
}

fn with_serial(f: impl FnOnce(&mut Uart16550Tty<PioBackend>)) {
    // Interrupt handlers log too; never spin on the lock with interrupts on.
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(serial) = SERIAL.lock().as_mut() {
            f(serial);
        }
    });
}

/// Writes on the console from a context that may have interrupted a holder of the console lock
/// (exceptions, panics). The interrupted writer never resumes, so taking the port is sound.
pub fn emergency_write(args: fmt::Arguments<'_>) {
    if SERIAL.is_locked() {
        // SAFETY: we are on the failure path; the interrupted holder will never run again
        // (the kernel exits right after this report), so no two writers interleave.
        unsafe { SERIAL.force_unlock() };
    }
    with_serial(|serial| {
        let _ = serial.write_fmt(args);
    });
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($subsystem:expr, $($arg:tt)*) => {
        $crate::console::log($crate::log::Level::Error, $subsystem, format_args!($($arg)*))
    };
}

/// Logs at warning level.
#[macro_export]
macro_rules! warn {
    ($subsystem:expr, $($arg:tt)*) => {
        $crate::console::log($crate::log::Level::Warn, $subsystem, format_args!($($arg)*))
    };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($subsystem:expr, $($arg:tt)*) => {
        $crate::console::log($crate::log::Level::Info, $subsystem, format_args!($($arg)*))
    };
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($subsystem:expr, $($arg:tt)*) => {
        $crate::console::log($crate::log::Level::Debug, $subsystem, format_args!($($arg)*))
    };
}

/// Prints raw text on the console (no log prefix), like `print!`.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a raw line on the console, like `println!`.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::write_str("\n") };
    ($($arg:tt)*) => {{
        $crate::console::write_fmt(format_args!($($arg)*));
        $crate::console::write_str("\n");
    }};
}

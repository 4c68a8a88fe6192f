//! Log levels and the one-line event format; the global logger (serial sink, macros) builds on this.

mod format;

pub use format::write_line;

use core::fmt;

/// Severity of a log event, ordered from most to least severe.
///
/// `Error < Warn < Info < Debug < Trace`, so an event is shown when
/// `event_level <= max_level` (see [`Level::enabled_at`]). The discriminants are 0..=4 in that
/// order, so `level as u8` can be kept in an atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Level {
    /// Something failed; the kernel may stop or run degraded.
    Error,
    /// Something unexpected that the kernel worked around.
    Warn,
    /// Normal progress worth one line in a boot log (the default maximum).
    #[default]
    Info,
    /// Details for developers.
    Debug,
    /// Very verbose details, e.g. every register access.
    Trace,
}

impl Level {
    /// Every level, from most to least severe.
    pub const ALL: [Level; 5] = [
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    /// Parses a level name as written on the command line (`error`, `warn`, `info`, `debug`,
    /// `trace`), ignoring ASCII case. Returns `None` for anything else.
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(name))
    }

    /// The upper-case name used in log lines: `"ERROR"`, `"WARN"`, `"INFO"`, `"DEBUG"`, `"TRACE"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// Whether an event of this level is shown when the maximum level is `max`.
    pub fn enabled_at(self, max: Level) -> bool {
        self <= max
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn parse_accepts_every_name_in_any_case() {
        for level in Level::ALL {
            let upper = level.as_str();
            let lower = upper.to_ascii_lowercase();
            assert_eq!(Level::parse(upper), Some(level));
            assert_eq!(Level::parse(&lower), Some(level));
        }
        assert_eq!(Level::parse("wArN"), Some(Level::Warn));
    }

    #[test]
    fn parse_rejects_near_misses() {
        for bad in [
            "", "warning", "err", "inf", " info", "info ", "5", "trace\n", "INFO\0",
        ] {
            assert_eq!(Level::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn order_runs_from_most_to_least_severe() {
        assert!(Level::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(Level::Error.enabled_at(Level::Error));
        assert!(Level::Warn.enabled_at(Level::Info));
        assert!(Level::Info.enabled_at(Level::Info));
        assert!(!Level::Debug.enabled_at(Level::Info));
        assert!(!Level::Trace.enabled_at(Level::Debug));
        assert_eq!(Level::default(), Level::Info);
    }

    #[test]
    fn discriminants_follow_severity() {
        let values: [u8; 5] = Level::ALL.map(|level| level as u8);
        assert_eq!(values, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn display_honours_padding() {
        assert_eq!(format!("[{:<5}]", Level::Info), "[INFO ]");
        assert_eq!(format!("[{}]", Level::Error), "[ERROR]");
    }
}

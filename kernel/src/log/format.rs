//! Formats one log event as exactly one line: `[   12.345678] INFO  acpi: message\n`.
//!
//! Control characters in the subsystem or message are escaped so that a message can never
//! forge a second log line or move the cursor of the terminal that shows the serial output.

use core::fmt::{self, Write};

use super::Level;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MICRO: u64 = 1_000;

/// Writes one log event as exactly one `\n`-terminated line.
///
/// The line is `[SSSSS.uuuuuu] LEVEL subsystem: message\n`: seconds since boot right-aligned in
/// five columns (wider when needed, never truncated), six digits of microseconds (truncated, so
/// timestamps never run ahead), the level padded to five columns, the subsystem, `": "` and the
/// message. Line breaks and other control characters (except tab) in `subsystem` and the message
/// are written as escapes (`\n`, `\r`, `\x1b`, `\u{85}`); nothing is allocated.
pub fn write_line(
    out: &mut impl Write,
    timestamp_ns: u64,
    level: Level,
    subsystem: &str,
    args: fmt::Arguments<'_>,
) -> fmt::Result {
    let seconds = timestamp_ns / NANOS_PER_SECOND;
    let micros = (timestamp_ns % NANOS_PER_SECOND) / NANOS_PER_MICRO;
    write!(out, "[{seconds:>5}.{micros:06}] {:<5} ", level.as_str())?;
    let mut escaped = OneLine { out: &mut *out };
    escaped.write_str(subsystem)?;
    out.write_str(": ")?;
    let mut escaped = OneLine { out: &mut *out };
    fmt::write(&mut escaped, args)?;
    out.write_char('\n')
}

/// A `fmt::Write` adapter that passes text through but escapes characters that would break the
/// one-event-per-line rule.
struct OneLine<'a, W: Write> {
    out: &'a mut W,
}

impl<W: Write> Write for OneLine<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Copy runs of harmless text in one call; only the escaped characters are split out.
        let mut run_start = 0;
        for (index, character) in text.char_indices() {
            if needs_escape(character) {
                self.out
                    .write_str(text.get(run_start..index).unwrap_or(""))?;
                write_escape(self.out, character)?;
                run_start = index + character.len_utf8();
            }
        }
        self.out.write_str(text.get(run_start..).unwrap_or(""))
    }
}

/// Control characters (C0, DEL, C1) except tab, plus the Unicode line and paragraph separators
/// that some consumers treat as line breaks.
fn needs_escape(character: char) -> bool {
    (character.is_control() && character != '\t') || matches!(character, '\u{2028}' | '\u{2029}')
}

fn write_escape<W: Write>(out: &mut W, character: char) -> fmt::Result {
    match character {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        ascii if ascii.is_ascii() => write!(out, "\\x{:02x}", u32::from(ascii)),
        other => write!(out, "\\u{{{:x}}}", u32::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn line(timestamp_ns: u64, level: Level, subsystem: &str, args: fmt::Arguments<'_>) -> String {
        let mut out = String::new();
        write_line(&mut out, timestamp_ns, level, subsystem, args).expect("String never fails");
        out
    }

    #[test]
    fn zero_timestamp() {
        assert_eq!(
            line(0, Level::Info, "boot", format_args!("hello")),
            "[    0.000000] INFO  boot: hello\n"
        );
    }

    #[test]
    fn sub_second_timestamps_truncate_to_microseconds() {
        assert_eq!(
            line(999, Level::Warn, "acpi", format_args!("x")),
            "[    0.000000] WARN  acpi: x\n"
        );
        assert_eq!(
            line(1_000, Level::Warn, "acpi", format_args!("x")),
            "[    0.000001] WARN  acpi: x\n"
        );
        // 0.999999999 s must not round up to 1.000000.
        assert_eq!(
            line(999_999_999, Level::Error, "acpi", format_args!("x")),
            "[    0.999999] ERROR acpi: x\n"
        );
    }

    #[test]
    fn example_from_the_spec() {
        assert_eq!(
            line(12_345_678_901, Level::Info, "acpi", format_args!("message")),
            "[   12.345678] INFO  acpi: message\n"
        );
    }

    #[test]
    fn width_boundary_and_beyond() {
        assert_eq!(
            line(99_999_000_000_000, Level::Debug, "t", format_args!("")),
            "[99999.000000] DEBUG t: \n"
        );
        assert_eq!(
            line(100_000_500_000_000, Level::Trace, "t", format_args!("")),
            "[100000.500000] TRACE t: \n"
        );
        assert_eq!(
            line(u64::MAX, Level::Info, "t", format_args!("end")),
            "[18446744073.709551] INFO  t: end\n"
        );
    }

    #[test]
    fn every_level_is_padded_to_five_columns() {
        for level in Level::ALL {
            let text = line(0, level, "s", format_args!("m"));
            assert_eq!(&text[15..21], alloc::format!("{:<5} ", level.as_str()));
            assert!(text.ends_with(" s: m\n"));
        }
    }

    #[test]
    fn formatting_arguments_are_expanded() {
        assert_eq!(
            line(
                1,
                Level::Info,
                "mem",
                format_args!("{} frames at {:#x}", 3, 0x1000)
            ),
            "[    0.000000] INFO  mem: 3 frames at 0x1000\n"
        );
    }

    #[test]
    fn line_breaks_and_escape_sequences_are_escaped() {
        let text = line(
            0,
            Level::Warn,
            "acpi",
            format_args!("a\nb\r\nc\x1b[2Jd\x00e\x7ff\tg"),
        );
        assert_eq!(
            text,
            "[    0.000000] WARN  acpi: a\\nb\\r\\nc\\x1b[2Jd\\x00e\\x7ff\tg\n"
        );
    }

    #[test]
    fn unicode_line_breaks_are_escaped_and_other_unicode_kept() {
        let text = line(
            0,
            Level::Info,
            "cmd",
            format_args!("é\u{85}ß\u{2028}✓\u{2029}"),
        );
        assert_eq!(
            text,
            "[    0.000000] INFO  cmd: é\\u{85}ß\\u{2028}✓\\u{2029}\n"
        );
    }

    #[test]
    fn escaping_applies_inside_formatted_arguments() {
        let hostile = "evil\n[    0.000000] ERROR fake: forged";
        let text = line(0, Level::Info, "cmd", format_args!("option `{hostile}`"));
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with("forged`\n"));
    }

    #[test]
    fn long_subsystem_is_kept_whole_and_escaped() {
        let subsystem = "iommu.dmar.drhd.invalidation-queue.descriptor-ring";
        let text = line(5_000_000_000, Level::Debug, subsystem, format_args!("ok"));
        assert_eq!(
            text,
            alloc::format!("[    5.000000] DEBUG {subsystem}: ok\n")
        );
        let text = line(0, Level::Info, "a\nb", format_args!("m"));
        assert_eq!(text, "[    0.000000] INFO  a\\nb: m\n");
    }

    #[test]
    fn writer_errors_propagate() {
        struct Full;
        impl Write for Full {
            fn write_str(&mut self, _: &str) -> fmt::Result {
                Err(fmt::Error)
            }
        }
        assert!(write_line(&mut Full, 0, Level::Info, "s", format_args!("m")).is_err());
    }

    #[test]
    fn exactly_one_line_for_any_message() {
        // Every char that could end a line, in every position.
        for code in (0u32..0x100).chain([0x2028, 0x2029]) {
            let Some(character) = char::from_u32(code) else {
                continue;
            };
            let text = line(0, Level::Info, "s", format_args!("{character}x{character}"));
            assert_eq!(text.matches(['\n', '\r']).count(), 1, "{code:#x}");
            assert!(text.ends_with('\n'));
            assert!(!text.contains('\u{2028}') && !text.contains('\u{85}'));
        }
    }
}

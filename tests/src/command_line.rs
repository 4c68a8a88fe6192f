//! Rendering a [`Command`] as a shell line a developer can paste to reproduce a failure.

use std::ffi::OsStr;
use std::process::Command;

/// The command as a POSIX shell line: `cd DIR && KEY=VALUE program 'arg with spaces'`.
/// Environment variables the command removes are not shown.
pub fn render(command: &Command) -> String {
    let mut words = Vec::new();
    if let Some(directory) = command.get_current_dir() {
        words.push("cd".to_owned());
        words.push(quote(directory.as_os_str()));
        words.push("&&".to_owned());
    }
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    words.push(quote(command.get_program()));
    words.extend(command.get_args().map(quote));
    words.join(" ")
}

/// One word, single-quoted when the shell would otherwise split or expand it.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain =
        |character: char| character.is_ascii_alphanumeric() || "-_./=:,+@%".contains(character);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use std::process::Command;

    #[test]
    fn plain_words_stay_unquoted() {
        let mut command = Command::new("qemu-system-x86_64");
        command.args([
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-no-reboot",
        ]);
        assert_eq!(
            render(&command),
            "qemu-system-x86_64 -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot"
        );
    }

    #[test]
    fn special_words_are_quoted() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo it's $HOME", ""]);
        assert_eq!(render(&command), r#"sh -c 'echo it'\''s $HOME' ''"#);
    }

    #[test]
    fn directory_and_environment_are_shown() {
        let mut command = Command::new("qemu");
        command
            .current_dir("/tmp/a b")
            .env("QEMU_AUDIO_DRV", "none")
            .env_remove("DISPLAY");
        assert_eq!(
            render(&command),
            "cd '/tmp/a b' && QEMU_AUDIO_DRV=none qemu"
        );
    }
}

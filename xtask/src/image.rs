//! The appliance image: a hybrid BIOS+UEFI ISO made by `grub-mkrescue`, with GRUB loading the
//! kernel through multiboot2 and talking on the serial console.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The command line the image boots with unless overridden.
pub(crate) const DEFAULT_CMDLINE: &str = "";

/// Writes `grub.cfg` for `cmdline`.
pub(crate) fn grub_config(cmdline: &str) -> String {
    format!(
        "# Moat appliance image: serial console, boot at once.\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout=0\n\
         set default=0\n\
         menuentry \"Moat\" {{\n\
         \x20   multiboot2 /boot/moat.elf {cmdline}\n\
         \x20   boot\n\
         }}\n"
    )
}

/// Builds the ISO at `out` from `kernel` with `cmdline` in its `grub.cfg`.
pub(crate) fn build(kernel: &Path, cmdline: &str, out: &Path) -> Result<PathBuf, String> {
    if cmdline.contains(['\n', '"', '\'', ';']) {
        return Err("the image command line may not contain newlines, quotes or `;`".into());
    }
    let staging = out.with_extension("root");
    let _ = std::fs::remove_dir_all(&staging);
    let grub_dir = staging.join("boot/grub");
    std::fs::create_dir_all(&grub_dir)
        .map_err(|e| format!("cannot create {}: {e}", grub_dir.display()))?;
    std::fs::copy(kernel, staging.join("boot/moat.elf"))
        .map_err(|e| format!("cannot copy the kernel: {e}"))?;
    std::fs::write(grub_dir.join("grub.cfg"), grub_config(cmdline))
        .map_err(|e| format!("cannot write grub.cfg: {e}"))?;
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .args(["--locales=", "--fonts=", "--themes=", "--compress=xz"])
        .arg(&staging)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_config_carries_the_command_line_and_serial() {
        let config = grub_config("poweroff log=debug");
        assert!(config.contains("multiboot2 /boot/moat.elf poweroff log=debug\n"));
        assert!(config.contains("serial --unit=0 --speed=115200"));
        assert!(config.contains("set timeout=0"));
    }

    #[test]
    fn hostile_command_lines_are_refused() {
        let out = std::env::temp_dir().join("moat-xtask-test.iso");
        let error = build(Path::new("/nonexistent"), "a\nb", &out).unwrap_err();
        assert!(error.contains("may not contain"));
    }
}

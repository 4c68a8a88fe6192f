//! Makes a fresh machine able to build and boot Moat: the Rust target through rustup, Debian
//! packages through apt-get when running as root; otherwise stops with the exact command.

use std::path::Path;
use std::process::Command;

/// A Debian package and the file whose presence shows it is installed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Package {
    /// Debian package name.
    pub(crate) name: &'static str,
    /// A file the package installs.
    pub(crate) provides: &'static str,
}

/// What booting under QEMU needs.
pub(crate) const QEMU: &[Package] = &[Package {
    name: "qemu-system-x86",
    provides: "/usr/bin/qemu-system-x86_64",
}];

/// What building and booting the appliance ISO needs.
pub(crate) const IMAGE: &[Package] = &[
    Package {
        name: "grub-common",
        provides: "/usr/bin/grub-mkrescue",
    },
    Package {
        name: "grub-pc-bin",
        provides: "/usr/lib/grub/i386-pc/multiboot2.mod",
    },
    Package {
        name: "grub-efi-amd64-bin",
        provides: "/usr/lib/grub/x86_64-efi/multiboot2.mod",
    },
    Package {
        name: "xorriso",
        provides: "/usr/bin/xorriso",
    },
    Package {
        name: "mtools",
        provides: "/usr/bin/mformat",
    },
    Package {
        name: "ovmf",
        provides: "/usr/share/ovmf/OVMF.fd",
    },
];

/// What the network scenarios' host side needs: a network namespace with a tap link, and the
/// host kernel's own ARP and ICMP clients.
pub(crate) const NET: &[Package] = &[
    Package {
        name: "iproute2",
        provides: "/usr/sbin/ip",
    },
    Package {
        name: "util-linux",
        provides: "/usr/bin/unshare",
    },
    Package {
        name: "iputils-ping",
        provides: "/usr/bin/ping",
    },
    Package {
        name: "iputils-arping",
        provides: "/usr/bin/arping",
    },
];

/// Ensures the `x86_64-unknown-none` target is installed.
pub(crate) fn ensure_target() -> Result<(), String> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup ({e}); install the target with: rustup target add x86_64-unknown-none"))?;
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.trim() == "x86_64-unknown-none")
    {
        return Ok(());
    }
    eprintln!("xtask: installing the x86_64-unknown-none target");
    let status = Command::new("rustup")
        .args(["target", "add", "x86_64-unknown-none"])
        .status()
        .map_err(|e| format!("rustup target add failed to start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("`rustup target add x86_64-unknown-none` failed".into())
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Ensures every package in `packages` is installed (apt-get as root, else the command to run).
pub(crate) fn ensure_packages(packages: &[Package]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| !Path::new(p.provides).exists())
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        return Err(format!(
            "missing Debian packages; run: sudo apt-get update && sudo {command}"
        ));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    if !matches!(update, Ok(s) if s.success()) {
        return Err("`apt-get update` failed".into());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get failed to start: {e}"))?;
    if !status.success() {
        return Err(format!("`{command}` failed"));
    }
    match packages.iter().find(|p| !Path::new(p.provides).exists()) {
        Some(p) => Err(format!(
            "package {} installed but {} is still missing",
            p.name, p.provides
        )),
        None => Ok(()),
    }
}

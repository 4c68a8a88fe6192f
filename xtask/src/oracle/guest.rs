//! The Linux guest on disk: finds the kernel package `linux-image-amd64` depends on, downloads it
//! and `busybox-static` with `apt-get download`, unpacks what is needed with `dpkg -x` into the
//! cache and has [`initramfs`](super::initramfs) build the initramfs when it is missing or stale.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::INIT_SCRIPT;
use super::initramfs::{build_initrd, initrd_stamp};

/// Debian's meta package that depends on the current kernel image package.
const KERNEL_META_PACKAGE: &str = "linux-image-amd64";
/// Debian's package with a statically linked busybox (`/bin/busybox`, including `cpio`).
const BUSYBOX_PACKAGE: &str = "busybox-static";

/// A Linux kernel and initramfs ready to boot under QEMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinuxGuest {
    /// The kernel image (`vmlinuz-<release>`).
    pub(crate) kernel: PathBuf,
    /// The gzip-compressed cpio initramfs whose `/init` prints the oracle report.
    pub(crate) initrd: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub(crate) version: String,
}

/// What an initramfs holds besides busybox, and where it is cached.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InitramfsSpec<'a> {
    /// File name in the cache, e.g. `initrd.gz`; its stamp is the same name ending `.stamp`.
    pub(crate) file: &'a str,
    /// The `/init` script.
    pub(crate) init_script: &'a str,
    /// Drivers whose modules (with their dependencies, from the kernel package) go into
    /// `/lib/modules`, listed in load order in `/lib/modules/order`.
    pub(crate) modules: &'a [&'a str],
}

/// The group oracle's initramfs: no modules (everything it reads is built in).
const ORACLE_INITRAMFS: InitramfsSpec<'static> = InitramfsSpec {
    file: "initrd.gz",
    init_script: INIT_SCRIPT,
    modules: &[],
};

/// Makes sure `cache` holds a bootable Linux kernel and the oracle initramfs, downloading and
/// building only what is missing or stale, and returns their paths.
pub(crate) fn ensure_linux(cache: &Path) -> Result<LinuxGuest, String> {
    ensure_linux_with(cache, &ORACLE_INITRAMFS)
}

/// [`ensure_linux`] with the initramfs `spec` describes.
///
/// Layout of `cache`: `linux-image-<release>/vmlinuz-<release>` (and its `config-<release>`),
/// `busybox-static/busybox` (and its package `version`), `initrd.gz` and `initrd.stamp` (the
/// busybox version and init script the initramfs was built from). A second call neither
/// downloads nor rebuilds unless the init script, the busybox version or the kernel package
/// that `linux-image-amd64` depends on changed.
pub(crate) fn ensure_linux_with(
    cache: &Path,
    spec: &InitramfsSpec<'_>,
) -> Result<LinuxGuest, String> {
    fs::create_dir_all(cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let kernel_package = kernel_package(cache)?;
    let release = kernel_package
        .strip_prefix("linux-image-")
        .ok_or(format!("unexpected kernel package name {kernel_package}"))?
        .to_string();
    let kernel = cache
        .join(&kernel_package)
        .join(format!("vmlinuz-{release}"));
    let busybox_dir = cache.join(BUSYBOX_PACKAGE);
    let busybox = busybox_dir.join("busybox");
    let busybox_version_file = busybox_dir.join("version");

    let mut missing = Vec::new();
    if !kernel.is_file() {
        missing.push(kernel_package.as_str());
    }
    if !busybox.is_file() || !busybox_version_file.is_file() {
        missing.push(BUSYBOX_PACKAGE);
    }
    if !missing.is_empty() {
        let download = scratch_dir(cache, "download")?;
        let result = download_and_unpack(cache, &download, &missing, &kernel_package, &release);
        // The .deb files are not needed once unpacked; keep the cache small.
        let _ = fs::remove_dir_all(&download);
        result?;
    }

    let modules = if spec.modules.is_empty() {
        Vec::new()
    } else {
        super::modules::ensure(cache, &kernel_package, &release, spec.modules)?
    };
    let busybox_version = read_file(&busybox_version_file)?;
    let initrd = cache.join(spec.file);
    let stamp_file = cache.join(format!("{}.stamp", spec.file.trim_end_matches(".gz")));
    let stamp = initrd_stamp(busybox_version.trim(), spec.init_script, &modules);
    let up_to_date =
        initrd.is_file() && fs::read_to_string(&stamp_file).is_ok_and(|existing| existing == stamp);
    if !up_to_date {
        eprintln!("xtask: building the Linux initramfs {}", spec.file);
        build_initrd(cache, &busybox, &initrd, spec.init_script, &modules)?;
        write_file(&stamp_file, stamp.as_bytes())?;
    }
    Ok(LinuxGuest {
        kernel,
        initrd,
        version: release,
    })
}

/// Downloads `packages` into `download` and unpacks what the cache needs from each.
fn download_and_unpack(
    cache: &Path,
    download: &Path,
    packages: &[&str],
    kernel_package: &str,
    release: &str,
) -> Result<(), String> {
    eprintln!("xtask: downloading {}", packages.join(" "));
    run_tool(
        Command::new("apt-get")
            .args(["download", "-q"])
            .args(packages)
            .current_dir(download),
        "apt-get download",
    )?;
    if packages.contains(&kernel_package) {
        let deb = find_deb(download, kernel_package)?;
        install_from_deb(
            cache,
            &deb,
            &cache.join(kernel_package),
            |unpacked, staging| {
                for name in [format!("vmlinuz-{release}"), format!("config-{release}")] {
                    move_file(&unpacked.join("boot").join(&name), &staging.join(&name))?;
                }
                Ok(())
            },
        )?;
    }
    if packages.contains(&BUSYBOX_PACKAGE) {
        let deb = find_deb(download, BUSYBOX_PACKAGE)?;
        let version = deb_version(&deb)?;
        install_from_deb(
            cache,
            &deb,
            &cache.join(BUSYBOX_PACKAGE),
            |unpacked, staging| {
                move_file(&unpacked.join("bin/busybox"), &staging.join("busybox"))?;
                write_file(&staging.join("version"), version.as_bytes())
            },
        )?;
    }
    Ok(())
}

/// The kernel image package `linux-image-amd64` depends on, e.g. `linux-image-6.1.0-56-amd64`.
///
/// With empty apt lists (a fresh machine) this runs `apt-get update` as root; otherwise it
/// falls back to the one kernel already in `cache`, or fails with the command to run.
fn kernel_package(cache: &Path) -> Result<String, String> {
    if let Some(package) = resolve_kernel_package()? {
        return Ok(package);
    }
    let cached = cached_kernel_packages(cache);
    if let [only] = cached.as_slice() {
        eprintln!(
            "xtask: apt knows no {KERNEL_META_PACKAGE} (empty package lists); using the cached {only}"
        );
        return Ok(only.clone());
    }
    if !is_root() {
        return Err(format!(
            "apt-get cannot resolve {KERNEL_META_PACKAGE} (its package lists are empty); \
             run: sudo apt-get update"
        ));
    }
    eprintln!("xtask: apt package lists are empty; running apt-get update");
    run_tool(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    resolve_kernel_package()?.ok_or(format!(
        "`apt-cache depends {KERNEL_META_PACKAGE}` names no linux-image package even after \
         apt-get update"
    ))
}

/// Asks apt-cache which kernel package the meta package depends on; `None` when apt does not
/// know the meta package (empty lists).
fn resolve_kernel_package() -> Result<Option<String>, String> {
    let output = Command::new("apt-cache")
        .args(["depends", KERNEL_META_PACKAGE])
        .output()
        .map_err(|e| format!("cannot run apt-cache ({e}); is this a Debian system?"))?;
    Ok(kernel_dependency(&String::from_utf8_lossy(&output.stdout)))
}

/// Finds `Depends: linux-image-...` in `apt-cache depends linux-image-amd64` output.
pub(super) fn kernel_dependency(apt_cache_output: &str) -> Option<String> {
    apt_cache_output.lines().find_map(|line| {
        let package = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?
            .trim();
        let valid = package.starts_with("linux-image-")
            && package != KERNEL_META_PACKAGE
            && !package.starts_with('<')
            && package
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+.".contains(c));
        valid.then(|| package.to_string())
    })
}

/// Kernel packages already unpacked in `cache`.
pub(super) fn cached_kernel_packages(cache: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(cache) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.strip_prefix("linux-image-").is_some_and(|release| {
                cache
                    .join(name)
                    .join(format!("vmlinuz-{release}"))
                    .is_file()
            })
        })
        .collect();
    found.sort();
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a tool to completion; an error carries its stderr.
pub(super) fn run_tool(command: &mut Command, what: &str) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ))
    }
}

/// A fresh, empty directory `cache/<name>.tmp-<pid>` for work that must not be seen half done.
pub(super) fn scratch_dir(cache: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = cache.join(format!("{name}.tmp-{}", std::process::id()));
    remove_dir_if_present(&dir)?;
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// The one `<package>_*.deb` that `apt-get download` wrote into `dir`.
pub(super) fn find_deb(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let prefix = format!("{package}_");
    fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .ok_or(format!(
            "apt-get download left no {prefix}*.deb in {}",
            dir.display()
        ))
}

/// The `Version` field of a .deb.
fn deb_version(deb: &Path) -> Result<String, String> {
    let output = run_tool(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"),
        "dpkg-deb -f",
    )?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Unpacks `deb` with `dpkg -x`, lets `pick` move what is needed into a staging directory and
/// renames that to `target`, so `target` only ever exists complete.
pub(super) fn install_from_deb(
    cache: &Path,
    deb: &Path,
    target: &Path,
    pick: impl FnOnce(&Path, &Path) -> Result<(), String>,
) -> Result<(), String> {
    let unpacked = scratch_dir(cache, "unpack")?;
    let staging = scratch_dir(cache, "staging")?;
    let result = run_tool(
        Command::new("dpkg").arg("-x").arg(deb).arg(&unpacked),
        "dpkg -x",
    )
    .and_then(|_| pick(&unpacked, &staging))
    .and_then(|()| {
        remove_dir_if_present(target)?;
        fs::rename(&staging, target).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                staging.display(),
                target.display()
            )
        })
    });
    let _ = fs::remove_dir_all(&unpacked);
    let _ = fs::remove_dir_all(&staging);
    result
}

fn move_file(from: &Path, to: &Path) -> Result<(), String> {
    fs::rename(from, to)
        .or_else(|_| fs::copy(from, to).map(drop))
        .map_err(|e| {
            format!(
                "cannot move {} to {}: {e} (is the package layout different?)",
                from.display(),
                to.display()
            )
        })
}

pub(super) fn read_file(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub(super) fn write_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

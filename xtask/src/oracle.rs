//! Linux as oracle: boots Debian's stock Linux kernel on the same QEMU machine Moat boots on and
//! records what Linux sees (PCI functions, IOMMU groups, DMAR/IOMMU log lines), so that Moat's
//! own view can be compared against it.
//!
//! - [`ensure_linux`] downloads `linux-image-amd64`'s real kernel package and `busybox-static`
//!   with `apt-get download`, unpacks them with `dpkg -x` and builds a gzip-compressed cpio
//!   (newc) initramfs whose `/init` is `oracle/init.sh`. Everything is cached in the directory
//!   the caller passes (normally `<workspace>/.cache/linux`, which git ignores).
//! - [`boot_linux`] boots that guest with extra QEMU device arguments and parses its report
//!   into a [`LinuxReport`].
//! - [`parse_moat_pci`] reads the `pci:` lines of Moat's boot report; [`compare`] diffs the two
//!   device lists.
//! - [`topologies`] names the QEMU device sets worth comparing.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The guest's `/init`: a busybox shell script that prints the report and powers off.
const INIT_SCRIPT: &str = include_str!("oracle/init.sh");

/// The line the guest prints before its report.
const BEGIN_MARKER: &str = "oracle-begin";
/// The line the guest prints after its report.
const END_MARKER: &str = "oracle-end";

/// Debian's meta package that depends on the current kernel image package.
const KERNEL_META_PACKAGE: &str = "linux-image-amd64";
/// Debian's package with a statically linked busybox (`/bin/busybox`, including `cpio`).
const BUSYBOX_PACKAGE: &str = "busybox-static";

/// The kernel command line: serial console, the IOMMU on in strict (unbatched) invalidation
/// mode, and QEMU ends instead of hanging if the kernel panics (`panic=-1` + `-no-reboot`).
const KERNEL_CMDLINE: &str = "console=ttyS0 intel_iommu=on iommu.strict=1 panic=-1 quiet";

/// A reasonable timeout for one [`boot_linux`] call.
// TIMEOUT: the guest boots, reports and powers off in about 5-11 s under TCG on an idle host;
// two minutes leaves room for a loaded CI machine and still ends a hung guest.
pub(crate) const LINUX_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

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

/// One PCI function: its address and identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PciEntry {
    /// Segment, bus, device and function as `ssss:bb:dd.f`, lowercase hex.
    pub(crate) bdf: String,
    /// Vendor ID.
    pub(crate) vendor: u16,
    /// Device ID.
    pub(crate) device: u16,
    /// Class code: base class, subclass and programming interface (`0x00ff00` for edu).
    pub(crate) class: u32,
}

impl fmt::Display for PciEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} {:06x}",
            self.bdf, self.vendor, self.device, self.class
        )
    }
}

/// What the Linux guest reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinuxReport {
    /// Every PCI function in `/sys/bus/pci/devices`, sorted by BDF.
    pub(crate) devices: Vec<PciEntry>,
    /// IOMMU group number to its members (sorted BDFs), from `/sys/kernel/iommu_groups`.
    pub(crate) groups: BTreeMap<u32, Vec<String>>,
    /// Kernel log lines matching `DMAR|IOMMU|iommu`, in log order.
    pub(crate) dmesg: Vec<String>,
    /// The guest's whole serial log, set by [`boot_linux`] (empty from [`parse_linux_report`]),
    /// so that a failed comparison can show what Linux printed.
    pub(crate) serial: String,
}

/// Makes sure `cache` holds a bootable Linux kernel and the oracle initramfs, downloading and
/// building only what is missing or stale, and returns their paths.
///
/// Layout of `cache`: `linux-image-<release>/vmlinuz-<release>` (and its `config-<release>`),
/// `busybox-static/busybox` (and its package `version`), `initrd.gz` and `initrd.stamp` (the
/// busybox version and init script the initramfs was built from). A second call neither
/// downloads nor rebuilds unless the init script, the busybox version or the kernel package
/// that `linux-image-amd64` depends on changed.
pub(crate) fn ensure_linux(cache: &Path) -> Result<LinuxGuest, String> {
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

    let busybox_version = read_file(&busybox_version_file)?;
    let initrd = cache.join("initrd.gz");
    let stamp_file = cache.join("initrd.stamp");
    let stamp = initrd_stamp(busybox_version.trim(), INIT_SCRIPT);
    let up_to_date =
        initrd.is_file() && fs::read_to_string(&stamp_file).is_ok_and(|existing| existing == stamp);
    if !up_to_date {
        eprintln!("xtask: building the Linux oracle initramfs");
        build_initrd(cache, &busybox, &initrd)?;
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

/// What an initramfs was built from (busybox version, file list, init script); a different
/// stamp means it must be rebuilt.
fn initrd_stamp(busybox_version: &str, init_script: &str) -> String {
    format!(
        "busybox-static {busybox_version}\nentries {}\n{init_script}",
        INITRAMFS_ENTRIES.join(" ")
    )
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
fn kernel_dependency(apt_cache_output: &str) -> Option<String> {
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
fn cached_kernel_packages(cache: &Path) -> Vec<String> {
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
fn run_tool(command: &mut Command, what: &str) -> Result<Output, String> {
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
fn scratch_dir(cache: &Path, name: &str) -> Result<PathBuf, String> {
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
fn find_deb(dir: &Path, package: &str) -> Result<PathBuf, String> {
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
fn install_from_deb(
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

fn read_file(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The initramfs tree, in `find .` order: directories before their contents.
const INITRAMFS_ENTRIES: &[&str] = &[
    ".",
    "./bin",
    "./bin/busybox",
    "./dev",
    "./init",
    "./proc",
    "./sbin",
    "./sys",
    "./tmp",
    "./usr",
    "./usr/bin",
    "./usr/sbin",
];

/// Builds `initrd` (gzip-compressed cpio newc) from busybox and [`INIT_SCRIPT`] using
/// busybox's own `cpio` and `gzip` applets.
fn build_initrd(cache: &Path, busybox: &Path, initrd: &Path) -> Result<(), String> {
    let root = scratch_dir(cache, "initramfs")?;
    let partial = cache.join(format!("initrd.gz.tmp-{}", std::process::id()));
    let result = populate_initramfs(&root, busybox)
        .and_then(|()| pack_initramfs(&root, busybox, &partial))
        .and_then(|()| {
            fs::rename(&partial, initrd).map_err(|e| {
                format!(
                    "cannot rename {} to {}: {e}",
                    partial.display(),
                    initrd.display()
                )
            })
        });
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_file(&partial);
    result
}

fn populate_initramfs(root: &Path, busybox: &Path) -> Result<(), String> {
    for dir in [
        "bin", "dev", "proc", "sbin", "sys", "tmp", "usr/bin", "usr/sbin",
    ] {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    }
    let executable = fs::Permissions::from_mode(0o755);
    let copy = root.join("bin/busybox");
    fs::copy(busybox, &copy).map_err(|e| format!("cannot copy {}: {e}", busybox.display()))?;
    fs::set_permissions(&copy, executable.clone())
        .map_err(|e| format!("cannot chmod {}: {e}", copy.display()))?;
    let init = root.join("init");
    write_file(&init, INIT_SCRIPT.as_bytes())?;
    fs::set_permissions(&init, executable)
        .map_err(|e| format!("cannot chmod {}: {e}", init.display()))
}

/// `busybox cpio -o -H newc < list | busybox gzip -9 > out`, run from `root`.
fn pack_initramfs(root: &Path, busybox: &Path, out: &Path) -> Result<(), String> {
    let file =
        fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut cpio = Command::new(busybox)
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} cpio: {e}", busybox.display()))?;
    let archive = cpio.stdout.take().ok_or("cpio stdout is not piped")?;
    let gzip = Command::new(busybox)
        .args(["gzip", "-9", "-c"])
        .stdin(archive)
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn();
    let mut list = String::new();
    for entry in INITRAMFS_ENTRIES {
        list.push_str(entry);
        list.push('\n');
    }
    let written = cpio
        .stdin
        .take()
        .ok_or("cpio stdin is not piped")?
        .write_all(list.as_bytes());
    let cpio_output = cpio
        .wait_with_output()
        .map_err(|e| format!("cpio failed: {e}"))?;
    let gzip_output = gzip
        .and_then(|child| child.wait_with_output())
        .map_err(|e| format!("gzip failed: {e}"))?;
    written.map_err(|e| format!("cannot feed cpio its file list: {e}"))?;
    if !cpio_output.status.success() {
        return Err(format!(
            "busybox cpio failed ({}): {}",
            cpio_output.status,
            String::from_utf8_lossy(&cpio_output.stderr).trim_end()
        ));
    }
    if !gzip_output.status.success() {
        return Err(format!(
            "busybox gzip failed ({}): {}",
            gzip_output.status,
            String::from_utf8_lossy(&gzip_output.stderr).trim_end()
        ));
    }
    Ok(())
}

/// The QEMU command that boots `guest` with `machine_args` (extra devices) added.
fn linux_command(guest: &LinuxGuest, machine_args: &[String]) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-machine", "q35", "-accel", "tcg", "-m", "512M"])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .args(["-serial", "stdio", "-device", "intel-iommu"])
        .args(machine_args)
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initrd)
        .args(["-append", KERNEL_CMDLINE]);
    command
}

/// Boots `guest` on a q35 machine with an Intel IOMMU plus `machine_args` (QEMU arguments such
/// as `-device edu`), and parses its report.
///
/// The guest powers off (`poweroff -f`), so QEMU exits with status 0, which `moat_tests`
/// classifies as a reset; success is judged by the presence of both marker lines. A failure
/// carries the outcome, the command line, QEMU's stderr and the whole serial log.
pub(crate) fn boot_linux(
    guest: &LinuxGuest,
    machine_args: &[String],
    timeout: Duration,
) -> Result<LinuxReport, String> {
    let command = linux_command(guest, machine_args);
    let run = moat_tests::run(command, timeout).map_err(|e| format!("cannot run QEMU: {e}"))?;
    let mut report = parse_linux_report(&run.serial).map_err(|problem| {
        format!(
            "the Linux oracle guest failed: {problem}\n\
             outcome: {:?} after {:.1} s\n\
             command: {}\n\
             --- QEMU stderr ---\n{}\n\
             --- serial log ---\n{}",
            run.outcome,
            run.elapsed.as_secs_f64(),
            run.command_line,
            or_empty(run.stderr.trim_end()),
            or_empty(run.serial.trim_end())
        )
    })?;
    report.serial = run.serial;
    Ok(report)
}

fn or_empty(text: &str) -> &str {
    if text.is_empty() { "(empty)" } else { text }
}

/// Parses the guest's serial log: the lines between `oracle-begin` and `oracle-end`.
///
/// Lines between the markers that are not `pci`, `group` or `dmesg` lines (stray kernel console
/// messages) are ignored; a malformed `pci` or `group` line is an error.
pub(crate) fn parse_linux_report(serial: &str) -> Result<LinuxReport, String> {
    let mut lines = serial.lines().map(str::trim);
    if !lines.any(|line| line == BEGIN_MARKER) {
        return Err(format!("no `{BEGIN_MARKER}` line in the serial log"));
    }
    let mut report = LinuxReport::default();
    let mut ended = false;
    for line in lines {
        if line == END_MARKER {
            ended = true;
            break;
        }
        if let Some(rest) = line.strip_prefix("pci ") {
            report.devices.push(parse_sysfs_pci(rest).ok_or(format!(
                "malformed line `{line}` (expected `pci BDF 0xVVVV 0xDDDD 0xCCCCCC`)"
            ))?);
        } else if let Some(rest) = line.strip_prefix("group ") {
            let (group, bdf) = parse_group(rest)
                .ok_or(format!("malformed line `{line}` (expected `group N BDF`)"))?;
            report.groups.entry(group).or_default().push(bdf);
        } else if let Some(text) = line.strip_prefix("dmesg ") {
            report.dmesg.push(text.to_string());
        }
    }
    if !ended {
        return Err(format!(
            "no `{END_MARKER}` line after `{BEGIN_MARKER}` (the guest stopped early)"
        ));
    }
    report.devices.sort();
    for members in report.groups.values_mut() {
        members.sort();
    }
    Ok(report)
}

/// `BDF 0xVVVV 0xDDDD 0xCCCCCC`, as the init script prints sysfs's values.
fn parse_sysfs_pci(rest: &str) -> Option<PciEntry> {
    let mut fields = rest.split_whitespace();
    let bdf = parse_bdf(fields.next()?)?;
    let vendor = u16::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    let device = u16::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    let class = parse_class(fields.next()?.strip_prefix("0x")?)?;
    fields.next().is_none().then_some(PciEntry {
        bdf,
        vendor,
        device,
        class,
    })
}

/// `N BDF`.
fn parse_group(rest: &str) -> Option<(u32, String)> {
    let mut fields = rest.split_whitespace();
    let group = fields.next()?.parse().ok()?;
    let bdf = parse_bdf(fields.next()?)?;
    fields.next().is_none().then_some((group, bdf))
}

/// A 24-bit class code of exactly six hex digits.
fn parse_class(text: &str) -> Option<u32> {
    (text.len() == 6)
        .then(|| u32::from_str_radix(text, 16).ok())
        .flatten()
}

/// Validates `ssss:bb:dd.f` (hex; device < 0x20, function < 8) and lowercases it.
fn parse_bdf(text: &str) -> Option<String> {
    let (segment, rest) = text.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit());
    let valid = hex(segment, 4)
        && hex(bus, 2)
        && hex(device, 2)
        && u8::from_str_radix(device, 16).ok()? < 0x20
        && hex(function, 1)
        && u8::from_str_radix(function, 16).ok()? < 8;
    valid.then(|| text.to_ascii_lowercase())
}

/// The devices in Moat's boot report: lines `pci: SSSS:BB:DD.F vvvv:dddd cccccc TYPE [caps]`,
/// possibly indented and ending in `\r`. Other lines, and `pci:` lines not in that format, are
/// skipped. The result is sorted by BDF.
pub(crate) fn parse_moat_pci(serial: &str) -> Vec<PciEntry> {
    let mut devices: Vec<PciEntry> = serial
        .lines()
        .filter_map(|line| parse_moat_pci_line(line.trim()))
        .collect();
    devices.sort();
    devices
}

fn parse_moat_pci_line(line: &str) -> Option<PciEntry> {
    let mut fields = line.strip_prefix("pci:")?.split_whitespace();
    let bdf = parse_bdf(fields.next()?)?;
    let (vendor, device) = fields.next()?.split_once(':')?;
    let hex16 = |s: &str| {
        (s.len() == 4)
            .then(|| u16::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some(PciEntry {
        bdf,
        vendor: hex16(vendor)?,
        device: hex16(device)?,
        class: parse_class(fields.next()?)?,
    })
}

/// Compares Moat's device list with Linux's: `Ok` when they hold the same functions with the
/// same identities, otherwise a readable list of differences sorted by BDF.
pub(crate) fn compare(moat: &[PciEntry], linux: &[PciEntry]) -> Result<(), String> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let moat_map = index_by_bdf(moat, "Moat", &mut problems);
    let linux_map = index_by_bdf(linux, "Linux", &mut problems);
    for (bdf, linux_entry) in &linux_map {
        match moat_map.get(bdf) {
            None => problems.push((bdf.clone(), format!("missing in Moat: {linux_entry}"))),
            Some(moat_entry) => {
                let mut fields = Vec::new();
                if moat_entry.vendor != linux_entry.vendor {
                    fields.push(format!(
                        "vendor Moat {:04x} Linux {:04x}",
                        moat_entry.vendor, linux_entry.vendor
                    ));
                }
                if moat_entry.device != linux_entry.device {
                    fields.push(format!(
                        "device Moat {:04x} Linux {:04x}",
                        moat_entry.device, linux_entry.device
                    ));
                }
                if moat_entry.class != linux_entry.class {
                    fields.push(format!(
                        "class Moat {:06x} Linux {:06x}",
                        moat_entry.class, linux_entry.class
                    ));
                }
                if !fields.is_empty() {
                    problems.push((bdf.clone(), format!("{bdf}: {}", fields.join(", "))));
                }
            }
        }
    }
    for (bdf, moat_entry) in &moat_map {
        if !linux_map.contains_key(bdf) {
            problems.push((bdf.clone(), format!("extra in Moat: {moat_entry}")));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    let mut message = format!(
        "Moat's PCI devices differ from Linux's ({} in Moat, {} in Linux):",
        moat.len(),
        linux.len()
    );
    for (_, problem) in problems {
        message.push_str("\n  ");
        message.push_str(&problem);
    }
    Err(message)
}

/// Maps BDF (lowercase) to entry, noting BDFs listed more than once.
fn index_by_bdf<'a>(
    entries: &'a [PciEntry],
    who: &str,
    problems: &mut Vec<(String, String)>,
) -> BTreeMap<String, &'a PciEntry> {
    let mut map = BTreeMap::new();
    for entry in entries {
        let bdf = entry.bdf.to_ascii_lowercase();
        if map.insert(bdf.clone(), entry).is_some() {
            problems.push((bdf.clone(), format!("{bdf} listed more than once by {who}")));
        }
    }
    map
}

/// QEMU device sets worth comparing, by name, as raw QEMU arguments to add to a q35 machine
/// with an `intel-iommu`. Every address is explicit so that BDFs are stable; devices under a
/// root or downstream port sit at slot 0, and every port has its own chassis/slot.
pub(crate) fn topologies() -> Vec<(&'static str, Vec<String>)> {
    let sets: [(&'static str, &[&str]); 4] = [
        (
            // Everything on pcie.0: a conventional endpoint, a PCIe endpoint with MSI-X and
            // a multifunction slot.
            "root-bus",
            &[
                "-device",
                "edu,addr=0x4.0",
                "-netdev",
                "user,id=n0,restrict=on",
                "-device",
                "e1000e,netdev=n0,addr=0x5.0",
                "-device",
                "edu,addr=0x6.0,multifunction=on",
                "-device",
                "edu,addr=0x6.1",
            ],
        ),
        (
            // A root port with an edu; another root port with a switch (upstream port and two
            // downstream ports), an edu and an NVMe controller (no drive: no namespaces).
            "ports-and-switch",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,chassis=1,slot=1",
                "-device",
                "edu,bus=rp1,addr=0x0",
                "-device",
                "pcie-root-port,id=rp2,bus=pcie.0,addr=0x3.0,chassis=2,slot=2",
                "-device",
                "x3130-upstream,id=up1,bus=rp2,addr=0x0",
                "-device",
                "xio3130-downstream,id=dn1,bus=up1,addr=0x0,chassis=3,slot=3",
                "-device",
                "edu,bus=dn1,addr=0x0",
                "-device",
                "xio3130-downstream,id=dn2,bus=up1,addr=0x1,chassis=4,slot=4",
                "-device",
                "nvme,serial=oracle,bus=dn2,addr=0x0",
            ],
        ),
        (
            // Conventional PCI: two edus behind a PCIe-to-PCI bridge under a root port (they
            // alias to one requester ID), and an edu behind a PCI-PCI bridge on pcie.0.
            "pcie-pci-bridge",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,chassis=1,slot=1",
                "-device",
                "pcie-pci-bridge,id=ppb1,bus=rp1,addr=0x0",
                "-device",
                "edu,bus=ppb1,addr=0x1",
                "-device",
                "edu,bus=ppb1,addr=0x2",
                "-device",
                "pci-bridge,id=pb1,bus=pcie.0,addr=0x7.0,chassis_nr=2",
                "-device",
                "edu,bus=pb1,addr=0x1",
            ],
        ),
        (
            // Root ports stacked as functions of one multifunction slot, one of them without
            // ACS: Linux's grouping then depends on ACS and multifunction isolation.
            "multifunction-ports",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,multifunction=on,chassis=1,slot=1",
                "-device",
                "pcie-root-port,id=rp2,bus=pcie.0,addr=0x2.1,chassis=2,slot=2",
                "-device",
                "pcie-root-port,id=rp3,bus=pcie.0,addr=0x2.2,chassis=3,slot=3,disable-acs=on",
                "-device",
                "edu,bus=rp1,addr=0x0",
                "-device",
                "edu,bus=rp2,addr=0x0",
                "-device",
                "edu,bus=rp3,addr=0x0",
            ],
        ),
    ];
    sets.iter()
        .map(|(name, args)| (*name, args.iter().map(|a| (*a).to_string()).collect()))
        .collect()
}

#[cfg(test)]
mod tests;

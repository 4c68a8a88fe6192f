//! A Linux guest's initramfs: busybox, an init script as `/init` and optionally kernel modules
//! in `/lib/modules` (with their load order in `/lib/modules/order`), packed as a
//! gzip-compressed cpio (newc) archive with busybox's own `cpio` and `gzip` applets, and the
//! stamp that says when it must be rebuilt.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::guest::{scratch_dir, write_file};

/// The initramfs tree without modules, in `find .` order: directories before their contents.
pub(super) const INITRAMFS_ENTRIES: &[&str] = &[
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

/// Where the modules and their load order go.
const MODULE_DIR: &str = "./lib/modules";

/// The initramfs tree with `modules` (file names, e.g. `nvme.ko`), in `find .` order.
pub(super) fn initramfs_entries(modules: &[String]) -> Vec<String> {
    let mut entries: Vec<String> = INITRAMFS_ENTRIES.iter().map(|e| e.to_string()).collect();
    if !modules.is_empty() {
        entries.extend(["./lib".to_string(), MODULE_DIR.to_string()]);
        entries.push(format!("{MODULE_DIR}/order"));
        entries.extend(modules.iter().map(|m| format!("{MODULE_DIR}/{m}")));
    }
    entries.sort_unstable();
    entries
}

/// What an initramfs was built from (busybox version, file list, init script, module files);
/// a different stamp means it must be rebuilt.
pub(super) fn initrd_stamp(
    busybox_version: &str,
    init_script: &str,
    modules: &[PathBuf],
) -> String {
    let modules: Vec<String> = modules.iter().map(|m| m.display().to_string()).collect();
    format!(
        "busybox-static {busybox_version}\nentries {}\nmodules {}\n{init_script}",
        INITRAMFS_ENTRIES.join(" "),
        modules.join(" ")
    )
}

/// Builds `initrd` (gzip-compressed cpio newc) from busybox, `init_script` and `modules` (in
/// load order) using busybox's own `cpio` and `gzip` applets.
pub(super) fn build_initrd(
    cache: &Path,
    busybox: &Path,
    initrd: &Path,
    init_script: &str,
    modules: &[PathBuf],
) -> Result<(), String> {
    let root = scratch_dir(cache, "initramfs")?;
    let partial = cache.join(format!("initrd.gz.tmp-{}", std::process::id()));
    let names = module_names(modules)?;
    let result = populate_initramfs(&root, busybox, init_script)
        .and_then(|()| add_modules(&root, modules, &names))
        .and_then(|()| pack_initramfs(&root, busybox, &initramfs_entries(&names), &partial))
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

fn module_names(modules: &[PathBuf]) -> Result<Vec<String>, String> {
    modules
        .iter()
        .map(|m| {
            m.file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .ok_or(format!("module path {} has no file name", m.display()))
        })
        .collect()
}

/// Copies `modules` into `/lib/modules` and writes their `names` in load order to
/// `/lib/modules/order`.
fn add_modules(root: &Path, modules: &[PathBuf], names: &[String]) -> Result<(), String> {
    if modules.is_empty() {
        return Ok(());
    }
    let dir = root.join(MODULE_DIR);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (module, name) in modules.iter().zip(names) {
        fs::copy(module, dir.join(name))
            .map_err(|e| format!("cannot copy {}: {e}", module.display()))?;
    }
    let mut order = names.join("\n");
    order.push('\n');
    write_file(&dir.join("order"), order.as_bytes())
}

fn populate_initramfs(root: &Path, busybox: &Path, init_script: &str) -> Result<(), String> {
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
    write_file(&init, init_script.as_bytes())?;
    fs::set_permissions(&init, executable)
        .map_err(|e| format!("cannot chmod {}: {e}", init.display()))
}

/// `busybox cpio -o -H newc < entries | busybox gzip -9 > out`, run from `root`.
fn pack_initramfs(
    root: &Path,
    busybox: &Path,
    entries: &[String],
    out: &Path,
) -> Result<(), String> {
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
    for entry in entries {
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

#[cfg(test)]
mod tests {
    use super::super::INIT_SCRIPT;
    use super::*;

    #[test]
    fn the_initrd_stamp_tracks_the_script_busybox_and_modules() {
        let stamp = initrd_stamp("1:1.35.0-4", INIT_SCRIPT, &[]);
        assert_eq!(stamp, initrd_stamp("1:1.35.0-4", INIT_SCRIPT, &[]));
        assert_ne!(stamp, initrd_stamp("1:1.36.0-1", INIT_SCRIPT, &[]));
        assert_ne!(
            stamp,
            initrd_stamp("1:1.35.0-4", &format!("{INIT_SCRIPT}\n"), &[])
        );
        let module = PathBuf::from("/c/linux-modules-6.1.0-57-amd64/nvme.ko");
        assert_ne!(
            stamp,
            initrd_stamp("1:1.35.0-4", INIT_SCRIPT, std::slice::from_ref(&module))
        );
        assert_ne!(
            initrd_stamp("1:1.35.0-4", INIT_SCRIPT, &[module]),
            initrd_stamp(
                "1:1.35.0-4",
                INIT_SCRIPT,
                &[PathBuf::from("/c/linux-modules-6.1.0-58-amd64/nvme.ko")]
            )
        );
    }

    #[test]
    fn the_initramfs_list_covers_every_directory_it_needs() {
        for entry in INITRAMFS_ENTRIES {
            if let Some((parent, _)) = entry.rsplit_once('/') {
                assert!(
                    INITRAMFS_ENTRIES.contains(&parent),
                    "{entry} listed without {parent}"
                );
            }
        }
        for needed in ["./init", "./bin/busybox", "./proc", "./sys", "./dev"] {
            assert!(INITRAMFS_ENTRIES.contains(&needed), "{needed}");
        }
        let mut sorted = INITRAMFS_ENTRIES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, INITRAMFS_ENTRIES);
        assert_eq!(initramfs_entries(&[]), INITRAMFS_ENTRIES);
        let with_modules = initramfs_entries(&["virtio.ko".into(), "nvme-core.ko".into()]);
        for entry in &with_modules {
            if let Some((parent, _)) = entry.rsplit_once('/') {
                let position = |e: &str| with_modules.iter().position(|x| x == e);
                assert!(
                    position(parent).is_some() && position(parent) < position(entry),
                    "{entry} listed without or before {parent}"
                );
            }
        }
        for needed in [
            "./lib/modules/order",
            "./lib/modules/virtio.ko",
            "./lib/modules/nvme-core.ko",
        ] {
            assert!(with_modules.iter().any(|e| e == needed), "{needed}");
        }
    }
}

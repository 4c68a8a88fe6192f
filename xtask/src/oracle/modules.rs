//! Kernel modules for a Linux guest: which `.ko` files of Debian's kernel package a set of
//! drivers needs, in the order `insmod` must load them. The package ships no `modules.dep`
//! (depmod writes it at install time), so the dependencies come from each module's own
//! `.modinfo` section (`name=` and `depends=`). Names are compared with `-` and `_` equal, as
//! the kernel does (`nvme-core` is `nvme_core`).

use super::guest;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a module's `.modinfo` says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ModuleInfo {
    /// `name=`, normalised.
    pub(super) name: String,
    /// `depends=`, normalised, in the order given.
    pub(super) depends: Vec<String>,
}

/// `-` and `_` are the same character in module names.
pub(super) fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// Reads `name=` and `depends=` from the `.modinfo` section of the module `bytes`.
pub(super) fn module_info(bytes: &[u8]) -> Result<ModuleInfo, String> {
    let section = crate::elf::section(bytes, ".modinfo")?.ok_or("no .modinfo section")?;
    let mut name = None;
    let mut depends = Vec::new();
    for field in section.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(value) = field.strip_prefix("name=") {
            name = Some(normalise(value));
        } else if let Some(value) = field.strip_prefix("depends=") {
            depends = value
                .split(',')
                .filter(|d| !d.is_empty())
                .map(normalise)
                .collect();
        }
    }
    Ok(ModuleInfo {
        name: name.ok_or(".modinfo has no name=")?,
        depends,
    })
}

/// Every module under `tree` (recursively), by normalised file name without `.ko`.
pub(super) fn index(tree: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![tree.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                found.insert(normalise(stem), path);
            }
        }
    }
    Ok(found)
}

/// The modules `roots` need, dependencies first, each once: the order to `insmod` them.
/// `depends_of` answers a module's dependencies (or why it cannot); a cycle is an error.
pub(super) fn load_order(
    roots: &[&str],
    mut depends_of: impl FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    // Depth-first, post-order; `visiting` holds the current path to catch cycles.
    fn visit(
        name: &str,
        depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>, String>,
        visiting: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), String> {
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if visiting.iter().any(|open| open == name) {
            return Err(format!(
                "module dependency cycle: {} -> {name}",
                visiting.join(" -> ")
            ));
        }
        visiting.push(name.to_string());
        for dependency in depends_of(name)? {
            visit(&dependency, depends_of, visiting, order)?;
        }
        visiting.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for root in roots {
        visit(
            &normalise(root),
            &mut depends_of,
            &mut Vec::new(),
            &mut order,
        )?;
    }
    Ok(order)
}

/// The `.ko` files under `tree` that `roots` need, in load order.
pub(super) fn resolve(tree: &Path, roots: &[&str]) -> Result<Vec<PathBuf>, String> {
    let modules = index(tree)?;
    let path_of = |name: &str| {
        modules.get(name).cloned().ok_or(format!(
            "module {name} is not in {} (built in, or renamed?)",
            tree.display()
        ))
    };
    let order = load_order(roots, |name| {
        let path = path_of(name)?;
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let info = module_info(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if info.name != name {
            return Err(format!(
                "{} calls itself {}, not {name}",
                path.display(),
                info.name
            ));
        }
        Ok(info.depends)
    })?;
    order.iter().map(|name| path_of(name)).collect()
}

/// Makes sure `cache/linux-modules-<release>/` holds the modules `roots` need from
/// `kernel_package` (downloading and unpacking it again if they are missing or were picked for
/// other roots) and returns their paths in load order.
pub(super) fn ensure(
    cache: &Path,
    kernel_package: &str,
    release: &str,
    roots: &[&str],
) -> Result<Vec<PathBuf>, String> {
    let dir = cache.join(format!("linux-modules-{release}"));
    let wanted = roots.join(",");
    let cached = fs::read_to_string(dir.join("roots")).is_ok_and(|r| r == wanted);
    if !cached {
        eprintln!("xtask: downloading {kernel_package} for the modules of {wanted}");
        let download = guest::scratch_dir(cache, "download")?;
        let result = guest::run_tool(
            std::process::Command::new("apt-get")
                .args(["download", "-q", kernel_package])
                .current_dir(&download),
            "apt-get download",
        )
        .and_then(|_| guest::find_deb(&download, kernel_package))
        .and_then(|deb| {
            guest::install_from_deb(cache, &deb, &dir, |unpacked, staging| {
                let tree = unpacked.join("lib/modules").join(release).join("kernel");
                let mut order = String::new();
                for module in resolve(&tree, roots)? {
                    let name = module
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or(format!("bad module path {}", module.display()))?;
                    fs::copy(&module, staging.join(name))
                        .map_err(|e| format!("cannot copy {}: {e}", module.display()))?;
                    order.push_str(name);
                    order.push('\n');
                }
                guest::write_file(&staging.join("order"), order.as_bytes())?;
                guest::write_file(&staging.join("roots"), wanted.as_bytes())
            })
        });
        let _ = fs::remove_dir_all(&download);
        result?;
    }
    let order = guest::read_file(&dir.join("order"))?;
    Ok(order.lines().map(|name| dir.join(name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 relocatable object with the given sections (after the null section)
    /// and a `.shstrtab`.
    fn object(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut name_offsets = Vec::new();
        for (name, _) in sections.iter().chain([(".shstrtab", &[][..])].iter()) {
            name_offsets.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let mut bytes = vec![0u8; 64];
        bytes[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        let mut placed = Vec::new();
        for (_, data) in sections {
            placed.push((bytes.len(), data.len()));
            bytes.extend_from_slice(data);
        }
        placed.push((bytes.len(), names.len()));
        bytes.extend_from_slice(&names);
        let shoff = bytes.len();
        bytes.extend_from_slice(&[0u8; 64]); // the null section
        for (index, (offset, size)) in placed.iter().enumerate() {
            let mut header = [0u8; 64];
            header[..4].copy_from_slice(&name_offsets[index].to_le_bytes());
            header[24..32].copy_from_slice(&(*offset as u64).to_le_bytes());
            header[32..40].copy_from_slice(&(*size as u64).to_le_bytes());
            bytes.extend_from_slice(&header);
        }
        let count = placed.len() as u16 + 1;
        bytes[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        bytes[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        bytes[0x3c..0x3e].copy_from_slice(&count.to_le_bytes());
        bytes[0x3e..0x40].copy_from_slice(&(count - 1).to_le_bytes());
        bytes
    }

    #[test]
    fn modinfo_names_and_dependencies_are_read() {
        let modinfo = b"license=GPL\0depends=t10-pi,crc64\0name=nvme-core\0vermagic=6.1\0";
        let bytes = object(&[(".text", b"\x90\x90"), (".modinfo", modinfo)]);
        assert_eq!(
            module_info(&bytes).unwrap(),
            ModuleInfo {
                name: "nvme_core".into(),
                depends: vec!["t10_pi".into(), "crc64".into()],
            }
        );
        let leaf = object(&[(".modinfo", b"depends=\0name=virtio_ring\0")]);
        assert!(module_info(&leaf).unwrap().depends.is_empty());
    }

    #[test]
    fn broken_objects_are_errors_not_panics() {
        assert!(module_info(b"not an elf").is_err());
        assert!(module_info(&object(&[(".text", b"x")])).is_err());
        assert!(module_info(&object(&[(".modinfo", b"depends=a\0")])).is_err());
        let mut truncated = object(&[(".modinfo", b"name=a\0")]);
        // Cut into the last section header (the name table's offset and size).
        truncated.truncate(truncated.len() - 40);
        assert!(module_info(&truncated).is_err());
        let mut past_end = object(&[(".modinfo", b"name=a\0")]);
        // The .modinfo header (index 1) claims a huge size.
        let shoff = u64::from_le_bytes(past_end[0x28..0x30].try_into().unwrap()) as usize;
        past_end[shoff + 64 + 32..shoff + 64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(module_info(&past_end).is_err());
    }

    fn graph(edges: &[(&str, &[&str])]) -> impl FnMut(&str) -> Result<Vec<String>, String> {
        let map: BTreeMap<String, Vec<String>> = edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        move |name| map.get(name).cloned().ok_or(format!("no module {name}"))
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let order = load_order(
            &["virtio_pci", "virtio_blk", "nvme"],
            graph(&[
                (
                    "virtio_pci",
                    &["virtio_ring", "virtio_pci_modern_dev", "virtio"],
                ),
                ("virtio_blk", &["virtio", "virtio_ring"]),
                ("virtio", &["virtio_ring"]),
                ("virtio_ring", &[]),
                ("virtio_pci_modern_dev", &[]),
                ("nvme", &["nvme_core"]),
                ("nvme_core", &["t10_pi"]),
                ("t10_pi", &[]),
            ]),
        )
        .unwrap();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio_pci_modern_dev",
                "virtio",
                "virtio_pci",
                "virtio_blk",
                "t10_pi",
                "nvme_core",
                "nvme"
            ]
        );
    }

    #[test]
    fn cycles_and_missing_modules_are_errors() {
        let cycle = load_order(&["a"], graph(&[("a", &["b"]), ("b", &["a"])])).unwrap_err();
        assert!(cycle.contains("cycle: a -> b -> a"), "{cycle}");
        let missing = load_order(&["a"], graph(&[("a", &["b"])])).unwrap_err();
        assert_eq!(missing, "no module b");
    }

    #[test]
    fn a_module_tree_is_resolved_from_files() {
        let dir = std::env::temp_dir().join(format!("moat-modules-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("kernel/drivers/nvme/host")).unwrap();
        fs::create_dir_all(dir.join("kernel/block")).unwrap();
        let write = |path: &str, modinfo: &[u8]| {
            fs::write(dir.join(path), object(&[(".modinfo", modinfo)])).unwrap();
        };
        write(
            "kernel/drivers/nvme/host/nvme.ko",
            b"depends=nvme-core\0name=nvme\0",
        );
        write(
            "kernel/drivers/nvme/host/nvme-core.ko",
            b"depends=t10-pi\0name=nvme_core\0",
        );
        write("kernel/block/t10-pi.ko", b"depends=\0name=t10_pi\0");
        let order = resolve(&dir, &["nvme"]);
        let renamed = {
            write("kernel/block/t10-pi.ko", b"depends=\0name=other\0");
            resolve(&dir, &["nvme"])
        };
        fs::remove_dir_all(&dir).unwrap();
        let names: Vec<String> = order
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["t10-pi.ko", "nvme-core.ko", "nvme.ko"]);
        assert!(renamed.unwrap_err().contains("calls itself other"));
    }
}

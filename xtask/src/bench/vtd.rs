//! The VT-d benchmark: boots the kernel with `test=bench-vtd` once per invalidation interface
//! and prints one table of the `bench:` lines (time per operation and the ratio to a raw
//! page-table store measured in the same boot), and writes it as JSON under `target/bench/`.
//! Ratios are taken within one run; nothing here asserts a speed.

use crate::qemu::{self, Boot, Firmware, Machine};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// Parses `bench: key=value ...` lines into (name, fields).
pub(crate) fn parse(serial: &str) -> Vec<(String, BTreeMap<String, String>)> {
    serial
        .lines()
        .filter_map(|line| line.trim_end().strip_prefix("bench: "))
        .filter_map(|rest| {
            let fields: BTreeMap<String, String> = rest
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some((fields.get("name")?.clone(), fields))
        })
        .collect()
}

/// Runs the benchmark boots and reports; returns the JSON path.
pub(crate) fn run(kernel: &Path, out_dir: &Path) -> Result<std::path::PathBuf, String> {
    let mut results = BTreeMap::new();
    for invalidation in ["register", "queued"] {
        let boot = Boot::Kernel {
            image: kernel.to_path_buf(),
            cmdline: format!("test=bench-vtd iommu.invalidation={invalidation}"),
        };
        let command = qemu::command(&Machine::dma(""), &boot, Firmware::Bios);
        let result = moat_tests::run(command, qemu::KERNEL_TIMEOUT).map_err(|e| e.to_string())?;
        if !result.outcome.is_success() {
            return Err(format!(
                "bench boot ({invalidation}) failed: {}\n{}",
                result.outcome, result.serial
            ));
        }
        let rows = parse(&result.serial);
        if rows.is_empty() {
            return Err(format!(
                "bench boot ({invalidation}) printed no results:\n{}",
                result.serial
            ));
        }
        results.insert(invalidation, rows);
    }
    println!(
        "{:<22} {:>14} {:>10} {:>14} {:>10}",
        "operation", "register ns/op", "x store", "queued ns/op", "x store"
    );
    let names: Vec<String> = results["register"].iter().map(|(n, _)| n.clone()).collect();
    let field = |mode: &str, name: &str, key: &str| -> String {
        results[mode]
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, f)| f.get(key).cloned())
            .unwrap_or_else(|| "-".into())
    };
    for name in names.iter().filter(|n| !n.starts_with("invalidations")) {
        println!(
            "{:<22} {:>14} {:>10} {:>14} {:>10}",
            name,
            field("register", name, "ns_per_op"),
            field("register", name, "ratio_to_store"),
            field("queued", name, "ns_per_op"),
            field("queued", name, "ratio_to_store")
        );
    }
    println!(
        "\nIOTLB invalidations per 1000 unmapped pages (one unmap call per page / one batched unmap):"
    );
    for name in names.iter().filter(|n| n.starts_with("invalidations")) {
        println!(
            "  {:<18} register {} / {}   queued {} / {}",
            name.trim_start_matches("invalidations-"),
            field("register", name, "one_by_one_per_1000_pages"),
            field("register", name, "batched_per_1000_pages"),
            field("queued", name, "one_by_one_per_1000_pages"),
            field("queued", name, "batched_per_1000_pages")
        );
    }
    let json: Value = json!(
        results
            .iter()
            .map(|(mode, rows)| (
                mode.to_string(),
                rows.iter()
                    .map(|(n, f)| (n.clone(), json!(f)))
                    .collect::<BTreeMap<_, _>>()
            ))
            .collect::<BTreeMap<_, _>>()
    );
    std::fs::create_dir_all(out_dir).map_err(|e| e.to_string())?;
    let path = out_dir.join("vtd.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_parse() {
        let rows = parse(
            "noise\nbench: name=map-4k ops=1024 ns_per_op=12.5 ratio_to_store=3.10\r\nbench: ops=1\n",
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "map-4k");
        assert_eq!(rows[0].1["ns_per_op"], "12.5");
    }
}

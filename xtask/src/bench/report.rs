//! The block benchmark's outputs: a text table, `block.json` and the SVG plot of the ratios
//! (`plot.rs`), all from the [`Grid`] of one run.

use super::results::{Grid, Mode, Ratios, Sample, System, ratios};
use serde_json::{Value, json};

/// One table row per (cell, system): IOPS and MB/s for both modes, strict/pass-through,
/// invalidations per I/O, the Moat/Linux ratios on Moat's row, and the spread of the repeats
/// (slowest over fastest, the larger of the two modes').
pub(crate) fn table(grid: &Grid) -> String {
    let mut out = format!(
        "{:<10} {:<8} {:>3} {:<5} | {:>9} {:>8} | {:>9} {:>8} | {:>9} | {:>8} | {:>8} {:>8} | {:>6}\n",
        "device",
        "workload",
        "qd",
        "sys",
        "strict/s",
        "MB/s",
        "pass/s",
        "MB/s",
        "strict/pt",
        "inval/IO",
        "x Linux",
        "x Linux",
        "spread"
    );
    out.push_str(&format!(
        "{:<29} | {:>18} | {:>18} | {:>9} | {:>8} | {:>8} {:>8} |\n",
        "", "strict", "pass-through", "", "(strict)", "strict", "pt"
    ));
    for (cell, samples) in grid {
        let ratios = ratios(samples);
        for system in [System::Linux, System::Moat] {
            let get = |mode| samples.get(&(system, mode));
            if get(Mode::Strict).is_none() && get(Mode::PassThrough).is_none() {
                continue;
            }
            let rate = |mode| number(get(mode).and_then(Sample::iops), 0);
            let mbs = |mode| number(get(mode).and_then(Sample::mb_per_s), 2);
            let (own, to_linux_strict, to_linux_pass) = match system {
                System::Linux => (ratios.linux_strict_to_pass, None, None),
                System::Moat => (
                    ratios.moat_strict_to_pass,
                    ratios.moat_to_linux_strict,
                    ratios.moat_to_linux_pass,
                ),
            };
            let spread = [Mode::Strict, Mode::PassThrough]
                .into_iter()
                .filter_map(|mode| get(mode).and_then(Sample::spread))
                .reduce(f64::max);
            out.push_str(&format!(
                "{:<10} {:<8} {:>3} {:<5} | {:>9} {:>8} | {:>9} {:>8} | {:>9} | {:>8} | {:>8} {:>8} | {:>6}\n",
                cell.device,
                cell.workload,
                cell.queue_depth,
                system.name(),
                rate(Mode::Strict),
                mbs(Mode::Strict),
                rate(Mode::PassThrough),
                mbs(Mode::PassThrough),
                number(own, 2),
                number(get(Mode::Strict).and_then(Sample::invalidations_per_io), 2),
                number(to_linux_strict, 2),
                number(to_linux_pass, 2),
                number(spread, 2),
            ));
        }
    }
    out
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}

/// `block.json`: per cell, every sample (its printed fields plus the computed rates) and the
/// ratios, plus `notes` saying how to read them.
pub(crate) fn json(grid: &Grid, notes: &[String]) -> Value {
    let cells: Vec<Value> = grid
        .iter()
        .map(|(cell, samples)| {
            let results: Vec<Value> = samples
                .values()
                .map(|s| {
                    json!({
                        "system": s.system.name(),
                        "mode": s.mode.name(),
                        "ios": s.ios,
                        "bytes": s.bytes,
                        "ns": s.ns,
                        "io_ns": s.io_ns(),
                        "iops": s.iops(),
                        "mb_per_s": s.mb_per_s(),
                        "invalidations_per_io": s.invalidations_per_io(),
                        "repeats_io_ns": s.repeats,
                        "spread": s.spread(),
                        "fields": s.fields,
                    })
                })
                .collect();
            let Ratios {
                linux_strict_to_pass,
                moat_strict_to_pass,
                moat_to_linux_strict,
                moat_to_linux_pass,
            } = ratios(samples);
            json!({
                "device": cell.device,
                "workload": cell.workload,
                "qd": cell.queue_depth,
                "results": results,
                "ratios": {
                    "linux_strict_to_pass_through": linux_strict_to_pass,
                    "moat_strict_to_pass_through": moat_strict_to_pass,
                    "moat_to_linux_strict": moat_to_linux_strict,
                    "moat_to_linux_pass_through": moat_to_linux_pass,
                },
            })
        })
        .collect();
    json!({ "cells": cells, "notes": notes })
}

#[cfg(test)]
mod tests {
    use super::super::results::{grid, parse};
    use super::*;

    const SERIAL: &str = "\
bench-block: system=linux device=nvme mode=strict workload=rand-4k qd=1 ios=1000 bytes=4096000 ns=2000000000
bench-block: system=linux device=nvme mode=pass-through workload=rand-4k qd=1 ios=1000 bytes=4096000 ns=1000000000
bench-block: system=moat device=nvme mode=strict workload=rand-4k qd=1 ios=1000 bytes=4096000 ns=500000000 invalidations=250
";

    #[test]
    fn the_table_has_a_row_per_system_with_its_ratios() {
        let table = table(&grid(parse(SERIAL).unwrap()).unwrap());
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4, "{table}");
        let linux: Vec<&str> = rows[2].split_whitespace().collect();
        assert_eq!(linux[..4], ["nvme", "rand-4k", "1", "linux"]);
        assert!(rows[2].contains("500") && rows[2].contains("1000") && rows[2].contains("0.50"));
        // Moat: no pass-through run, so no strict/pt ratio; 0.25 invalidations per I/O and
        // 4x Linux's strict rate.
        let moat: Vec<&str> = rows[3]
            .split(['|', ' '])
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(
            moat,
            [
                "nvme", "rand-4k", "1", "moat", "2000", "8.19", "-", "-", "-", "0.25", "4.00", "-",
                "-"
            ]
        );
    }

    #[test]
    fn the_json_carries_rates_and_ratios() {
        let value = json(
            &grid(parse(SERIAL).unwrap()).unwrap(),
            &["a note".to_string()],
        );
        let cell = &value["cells"][0];
        assert_eq!(cell["device"], "nvme");
        assert_eq!(cell["ratios"]["linux_strict_to_pass_through"], 0.5);
        assert_eq!(cell["ratios"]["moat_to_linux_strict"], 4.0);
        assert!(cell["ratios"]["moat_strict_to_pass_through"].is_null());
        assert_eq!(cell["results"].as_array().unwrap().len(), 3);
        assert_eq!(value["notes"][0], "a note");
    }
}

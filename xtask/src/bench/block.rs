//! The block benchmark run: Linux (strict, then `iommu=pt`) and Moat (`test=bench-block`,
//! strict, then `iommu.passthrough=` for both disks) booted one at a time on
//! [`Machine::bench`], every `bench-block:` line collected, and the table, `block.json`,
//! `block.txt` and `block-ratios.svg` written to `target/bench/`.

use super::results::{self, Mode, Sample, System};
use super::{RANDOM_IOS, SEQUENTIAL_IOS, linux, plot, report};
use crate::disk_check;
use crate::qemu::{self, BENCH_NVME, BENCH_VIRTIO_BLK, Boot, Firmware, Machine};
use std::path::{Path, PathBuf};

/// Boots per (system, mode); each cell reports the fastest run, and the spread of all.
const REPEATS: usize = 3;

/// (repeat, mode) in boot order: the modes alternate, so a change in the host's load during
/// the run falls on both.
fn interleaved() -> impl Iterator<Item = (usize, Mode)> {
    (1..=REPEATS).flat_map(|repeat| [(repeat, Mode::Strict), (repeat, Mode::PassThrough)])
}

/// Each benchmark disk image.
const DISK_BYTES: u64 = 64 << 20;
/// Cells per boot: two devices, two workloads, two queue depths.
const CELLS_PER_BOOT: usize = 8;

/// Runs every boot and writes the outputs; returns the JSON's path. `root` is the workspace.
pub(crate) fn run(kernel: &Path, root: &Path) -> Result<PathBuf, String> {
    let out_dir = root.join("target/bench");
    let disks = out_dir.join("disks");
    create_disks(&disks)?;
    let machine = Machine::bench(&disks);
    let mut samples = Vec::new();
    let mut notes = vec![
        format!(
            "clock: QEMU {} for both systems; every rate is timed inside the guest",
            qemu::BENCH_CLOCK.join(" ")
        ),
        "linux: rates use ns - overhead_ns, the same dd commands timed with count=0 \
         (process start, open, seek, close, no read); fields.ns alone includes them"
            .to_string(),
        "linux: queue depth 32 is 32 dd processes at once on one vCPU, each with one request \
         in flight; the device sees up to 32"
            .to_string(),
        format!(
            "every (system, mode) is booted {REPEATS} times, strict and pass-through \
             alternating; a cell reports its fastest run (host load only adds time), spread = \
             slowest run / fastest"
        ),
    ];
    let guest = linux::guest(&root.join(".cache/linux"))?;
    for (repeat, mode) in interleaved() {
        let boot = Boot::Linux {
            kernel: guest.kernel.clone(),
            initrd: guest.initrd.clone(),
            cmdline: linux::cmdline(mode),
        };
        let what = format!("linux {} {repeat}/{REPEATS}", mode.name());
        let serial = boot_and_collect(&machine, &boot, "bench-block-end", &what)?;
        let got = checked(results::parse(&serial)?, System::Linux, mode, &serial)?;
        for sample in &got {
            let domain = sample.fields.get("domain").map_or("", String::as_str);
            if domain != linux::expected_domain(mode) {
                return Err(format!(
                    "linux {}: {} is in a `{domain}` IOMMU domain, not `{}`:\n{serial}",
                    mode.name(),
                    sample.cell.device,
                    linux::expected_domain(mode)
                ));
            }
        }
        samples.extend(got);
    }
    for (repeat, mode) in interleaved() {
        let cmdline = match mode {
            Mode::Strict => "test=bench-block".to_string(),
            Mode::PassThrough => {
                format!("test=bench-block iommu.passthrough={BENCH_VIRTIO_BLK},{BENCH_NVME}")
            }
        };
        let boot = Boot::Kernel {
            image: kernel.to_path_buf(),
            cmdline,
        };
        let command = qemu::command(&machine, &boot, Firmware::Bios);
        eprintln!(
            "xtask: bench boot (moat {} {repeat}/{REPEATS})",
            mode.name()
        );
        let run = moat_tests::run(command, qemu::BENCH_TIMEOUT).map_err(|e| e.to_string())?;
        if run.serial.contains("unknown test scenario `bench-block`") {
            notes.push(
                "moat: this kernel has no bench-block scenario yet (it needs the block \
                 drivers); only Linux was measured"
                    .to_string(),
            );
            eprintln!("xtask: Moat has no bench-block scenario yet; Linux only");
            break;
        }
        if !run.outcome.is_success() {
            return Err(format!(
                "moat {} bench boot failed: {}\n{}",
                mode.name(),
                run.outcome,
                run.serial
            ));
        }
        samples.extend(checked(
            results::parse(&run.serial)?,
            System::Moat,
            mode,
            &run.serial,
        )?);
    }
    let grid = results::grid(results::fastest_of_repeats(samples))?;
    let table = report::table(&grid);
    println!("{table}");
    for note in &notes {
        println!("note: {note}");
    }
    let json = report::json(&grid, &notes);
    let write = |name: &str, text: &str| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<PathBuf, String>(path)
    };
    write("block.txt", &table)?;
    let svg = write(
        "block-ratios.svg",
        &plot::svg(
            &grid,
            "Block reads: strict over pass-through, Moat over Linux",
        ),
    )?;
    println!("{}", svg.display());
    write(
        "block.json",
        &serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
}

/// Boots `boot` and returns its serial log if it contains `end` (QEMU's exit status aside:
/// Linux powers off with status 0).
fn boot_and_collect(
    machine: &Machine,
    boot: &Boot,
    end: &str,
    what: &str,
) -> Result<String, String> {
    let command = qemu::command(machine, boot, Firmware::Bios);
    eprintln!("xtask: bench boot ({what})");
    let run = moat_tests::run(command, qemu::BENCH_TIMEOUT).map_err(|e| e.to_string())?;
    if !run.serial.contains(end) {
        return Err(format!(
            "{what} bench boot did not finish ({} after {:.0} s)\ncommand: {}\n--- stderr ---\n{}\n--- serial ---\n{}",
            run.outcome,
            run.elapsed.as_secs_f64(),
            run.command_line,
            run.stderr,
            run.serial
        ));
    }
    Ok(run.serial)
}

/// `samples` must be `system`'s, in `mode`, one per cell of a boot.
fn checked(
    samples: Vec<Sample>,
    system: System,
    mode: Mode,
    serial: &str,
) -> Result<Vec<Sample>, String> {
    if let Some(wrong) = samples
        .iter()
        .find(|s| s.system != system || s.mode != mode)
    {
        return Err(format!(
            "{} {} boot printed a {} {} result:\n{serial}",
            system.name(),
            mode.name(),
            wrong.system.name(),
            wrong.mode.name()
        ));
    }
    if let Some(wrong) = samples.iter().find(|s| {
        let expected = match s.cell.workload.as_str() {
            "rand-4k" => u64::from(RANDOM_IOS),
            _ => u64::from(SEQUENTIAL_IOS),
        };
        s.ios != expected
    }) {
        return Err(format!(
            "{} {} boot measured {} requests for {}, not this run's count:\n{serial}",
            system.name(),
            mode.name(),
            wrong.ios,
            wrong.cell.workload
        ));
    }
    if samples.len() != CELLS_PER_BOOT {
        return Err(format!(
            "{} {} boot printed {} results, expected {CELLS_PER_BOOT}:\n{serial}",
            system.name(),
            mode.name(),
            samples.len()
        ));
    }
    Ok(samples)
}

/// The seed of the benchmark images' pattern (`disk_check`'s, the block scenarios' one);
/// boot/src/scenarios/bench_block.rs checks reads against the same.
const BENCH_SEED: u64 = 0xbe4c_0001;

/// Creates the disk images under `dir` unless they are there with the pattern: [`DISK_BYTES`]
/// each, pattern [`BENCH_SEED`] throughout.
pub(crate) fn create_disks(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in ["virtio-blk.img", "nvme.img"] {
        let path = dir.join(name);
        if !disk_check::has_pattern(&path, BENCH_SEED, DISK_BYTES) {
            disk_check::pattern_image(&path, BENCH_SEED, DISK_BYTES)?;
        }
    }
    Ok(())
}

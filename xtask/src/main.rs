//! `cargo xtask`: builds the kernel and the appliance image, boots them in QEMU, and runs the
//! test suite. It owns every QEMU command line (`qemu.rs`) and provisions what a fresh machine
//! lacks (`provision.rs`).

mod bench;
mod disk_check;
mod elf;
mod image;
mod net_check;
mod oracle;
mod oracle_check;
mod provision;
mod qemu;
mod scenarios;
mod target;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build                      build the kernel ELF; prints its path last
  run [--image] [--uefi] [--cmdline TEXT] [--timeout SECS]
                             boot the showcase machine (serial on this terminal);
                             --image boots the ISO instead of -kernel, --uefi under OVMF
  image [--cmdline TEXT]     build the BIOS+UEFI appliance ISO; prints its path last
  test                       lint, host unit tests, the QEMU integration tests, then the
                             Linux-oracle checks
  lint                       cargo fmt --check and clippy for every crate on its own target
  scenarios [FILTER]         only the QEMU scenarios (names containing FILTER), for iterating
  oracle                     only the Linux-oracle checks: Moat and Linux (cached in
                             .cache/linux) must see the same PCI functions per topology
  bench [vtd|block]          vtd: boot test=bench-vtd (register and queued invalidation),
                             table and target/bench/vtd.json; block: Moat's block drivers and
                             Linux's on the same machine, strict and pass-through, table,
                             target/bench/block.json and block-ratios.svg; both without
                             an argument
  capture-acpi DIR           boot with test=acpi-dump and write every ACPI table to DIR/SIG.bin
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build_kernel().map(|path| println!("{}", path.display())),
        Some("run") => run(&args[1..]),
        Some("image") => image(&args[1..]).map(|path| println!("{}", path.display())),
        Some("test") => test(),
        Some("lint") => lint(),
        Some("scenarios") => run_scenarios(args.get(1).map(String::as_str)),
        Some("oracle") => oracle(),
        Some("bench") => bench_command(args.get(1).map(String::as_str)),
        Some("capture-acpi") => capture_acpi(&args[1..]),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn option<'a>(args: &'a [String], name: &str) -> Result<Option<&'a str>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .map(|v| Some(v.as_str()))
            .ok_or(format!("{name} needs a value")),
    }
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

fn run_checked(mut command: Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Builds the kernel with `x86_64-target.json` applied, verifies the ELF, returns its path.
fn build_kernel() -> Result<PathBuf, String> {
    provision::ensure_target()?;
    let root = root();
    let settings = target::TargetSettings::load(&root.join("x86_64-target.json"))?;
    let flags = settings.rustflags(&root).join("\x1f");
    let mut command = cargo();
    command
        .args([
            "build",
            "--release",
            "-p",
            "moat-boot",
            "--target",
            target::BASE_TARGET,
        ])
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .env_remove("RUSTFLAGS");
    run_checked(command, "the kernel build")?;
    let path = root
        .join("target")
        .join(target::BASE_TARGET)
        .join("release/moat");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let facts = elf::verify(&bytes, &settings, settings.kernel_base(&root)?)
        .map_err(|e| format!("{} does not match x86_64-target.json: {e}", path.display()))?;
    for fact in facts {
        eprintln!("xtask: kernel image: {fact}");
    }
    Ok(path)
}

fn image(args: &[String]) -> Result<PathBuf, String> {
    provision::ensure_packages(provision::IMAGE)?;
    let kernel = build_kernel()?;
    let cmdline = option(args, "--cmdline")?.unwrap_or(image::DEFAULT_CMDLINE);
    let out = root().join("target/image/moat.iso");
    std::fs::create_dir_all(out.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
    image::build(&kernel, cmdline, &out)
}

fn run(args: &[String]) -> Result<(), String> {
    provision::ensure_packages(provision::QEMU)?;
    let uefi = args.iter().any(|a| a == "--uefi");
    let use_image = args.iter().any(|a| a == "--image") || uefi;
    let cmdline = option(args, "--cmdline")?.unwrap_or("");
    let timeout = match option(args, "--timeout")? {
        Some(text) => Duration::from_secs(
            text.parse()
                .map_err(|_| format!("bad --timeout `{text}`"))?,
        ),
        None => Duration::from_secs(300),
    };
    let disks = root().join("target/disks");
    qemu::create_disks(&disks)?;
    let machine = qemu::Machine::showcase(&disks);
    let boot = if use_image {
        let iso = image(&["--cmdline".into(), cmdline.into()])?;
        qemu::Boot::Cdrom(iso)
    } else {
        qemu::Boot::Kernel {
            image: build_kernel()?,
            cmdline: cmdline.into(),
        }
    };
    let firmware = if uefi {
        qemu::Firmware::Uefi
    } else {
        qemu::Firmware::Bios
    };
    let mut command = qemu::command(&machine, &boot, firmware);
    eprintln!(
        "xtask: {} (stops after {} s; Ctrl-C to stop earlier)",
        moat_tests::render_command_line(&command),
        timeout.as_secs()
    );
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let outcome = moat_tests::classify(Some(status), false);
            eprintln!("xtask: QEMU ended: {outcome}");
            return if outcome.is_success() {
                Ok(())
            } else {
                Err(format!("the run ended with: {outcome}"))
            };
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "xtask: stopped QEMU after {} s (--timeout)",
                timeout.as_secs()
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lint() -> Result<(), String> {
    provision::ensure_target()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run_checked(fmt, "cargo fmt --check")?;
    let mut host = cargo();
    host.args([
        "clippy",
        "--workspace",
        "--exclude",
        "moat-boot",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run_checked(host, "clippy (host crates)")?;
    let root = root();
    let settings = target::TargetSettings::load(&root.join("x86_64-target.json"))?;
    let mut kernel = cargo();
    kernel
        .args([
            "clippy",
            "--release",
            "-p",
            "moat-boot",
            "-p",
            "moat-kernel",
            "-p",
            "moat-iommu",
            "-p",
            "moat-edu",
            "-p",
            "moat-virtio",
            "-p",
            "moat-virtio-blk",
            "-p",
            "moat-nvme",
            "-p",
            "moat-e1000e",
            "-p",
            "moat-net-stack",
            "--target",
            target::BASE_TARGET,
            "--",
            "-D",
            "warnings",
        ])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            settings.rustflags(&root).join("\x1f"),
        )
        .env_remove("RUSTFLAGS");
    run_checked(kernel, "clippy (kernel crates on x86_64-unknown-none)")
}

fn test() -> Result<(), String> {
    let started = Instant::now();
    provision::ensure_target()?;
    eprintln!("xtask: [1/4] lint");
    lint()?;
    eprintln!("xtask: [2/4] host unit tests");
    let mut host = cargo();
    host.args(["test", "--workspace", "--exclude", "moat-boot"]);
    run_checked(host, "host unit tests")?;
    eprintln!("xtask: [3/4] kernel image, appliance ISO and QEMU scenarios (2 at a time)");
    run_scenarios(None)?;
    eprintln!("xtask: [4/4] Linux agrees on the PCI topology (Moat and Linux side by side)");
    oracle_check::run_oracle_checks(&build_kernel()?)?;
    eprintln!(
        "xtask: whole suite passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds the kernel and checks that Linux sees the same PCI functions as Moat.
fn oracle() -> Result<(), String> {
    let kernel = build_kernel()?;
    oracle_check::run_oracle_checks(&kernel)
}

/// Builds the kernel and the ISO and runs the QEMU scenarios whose names contain `filter`.
fn run_scenarios(filter: Option<&str>) -> Result<(), String> {
    provision::ensure_packages(provision::QEMU)?;
    provision::ensure_packages(provision::IMAGE)?;
    provision::ensure_packages(provision::NET)?;
    let kernel = build_kernel()?;
    let iso = image(&["--cmdline".into(), "poweroff".into()])?;
    let disks = root().join("target/disks");
    qemu::create_disks(&disks)?;
    let mut list = scenarios::kernel_scenarios(&kernel, &disks);
    list.extend(net_check::scenarios(&kernel, &disks.join("net")));
    list.extend(scenarios::image_scenarios(&iso));
    list.retain(|scenario| filter.is_none_or(|f| scenario.name.contains(f)));
    if list.is_empty() {
        return Err(format!("no scenario matches `{}`", filter.unwrap_or("")));
    }
    let report = moat_tests::run_all(list, 2);
    eprintln!("xtask: {report}");
    if report.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{} scenario(s) failed: {}",
            report.failed.len(),
            report.failed.join(", ")
        ))
    }
}

fn capture_acpi(args: &[String]) -> Result<(), String> {
    let dir = PathBuf::from(
        args.first()
            .ok_or("capture-acpi needs an output directory")?,
    );
    provision::ensure_packages(provision::QEMU)?;
    let kernel = build_kernel()?;
    let boot = qemu::Boot::Kernel {
        image: kernel,
        cmdline: "test=acpi-dump".into(),
    };
    let mut machine = qemu::Machine::minimal();
    machine.devices.extend(args[1..].iter().cloned());
    let command = qemu::command(&machine, &boot, qemu::Firmware::Bios);
    let result = moat_tests::run(command, qemu::KERNEL_TIMEOUT).map_err(|e| e.to_string())?;
    if !result.outcome.is_success() {
        return Err(format!(
            "the dump run failed: {}\n{}",
            result.outcome, result.serial
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut tables: Vec<(String, Vec<u8>)> = Vec::new();
    for line in result.serial.lines() {
        if let Some(rest) = line.trim_end().strip_prefix("acpi-dump: ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let [signature, address, _length] = words[..] {
                tables.push((format!("{signature} {address}"), Vec::new()));
            }
        } else if let Some(rest) = line.trim_end().strip_prefix("acpi-dump-data: ") {
            let hex = rest.split_whitespace().nth(1).unwrap_or("");
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| format!("bad hex in dump: {e}"))?;
            tables
                .last_mut()
                .ok_or("data before a table header")?
                .1
                .extend(bytes);
        }
    }
    let mut index = String::new();
    for (label, bytes) in &tables {
        let (signature, address) = label.split_once(' ').unwrap_or((label, "0x0"));
        index.push_str(&format!("{signature} {address} {}\n", bytes.len()));
        let path = dir.join(format!("{signature}.bin"));
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    std::fs::write(dir.join("index.txt"), index).map_err(|e| e.to_string())?;
    Ok(())
}

fn bench_command(which: Option<&str>) -> Result<(), String> {
    let (vtd, block) = match which {
        None => (true, true),
        Some("vtd") => (true, false),
        Some("block") => (false, true),
        Some(other) => return Err(format!("unknown benchmark `{other}`; use vtd or block")),
    };
    provision::ensure_packages(provision::QEMU)?;
    let kernel = build_kernel()?;
    if vtd {
        let path = bench::run_vtd(&kernel, &root().join("target/bench"))?;
        println!("{}", path.display());
    }
    if block {
        let path = bench::run_block(&kernel, &root())?;
        println!("{}", path.display());
    }
    Ok(())
}

//! Tests of the result-line parser and the ratios.

use super::*;

const LINUX: &str = "\
[    5.1] random kernel noise\r
bench-block-begin
bench-block: system=linux device=nvme mode=strict domain=DMA workload=rand-4k qd=1 ios=100 bytes=409600 ns=300000000 overhead_ns=200000000
bench-block-end
";

#[test]
fn a_linux_line_is_parsed_and_its_overhead_subtracted() {
    let samples = parse(LINUX).unwrap();
    assert_eq!(samples.len(), 1);
    let sample = &samples[0];
    assert_eq!((sample.system, sample.mode), (System::Linux, Mode::Strict));
    assert_eq!(
        sample.cell,
        Cell {
            device: "nvme".into(),
            workload: "rand-4k".into(),
            queue_depth: 1
        }
    );
    assert_eq!(sample.io_ns(), 100_000_000);
    assert_eq!(sample.iops(), Some(1000.0));
    assert_eq!(sample.mb_per_s(), Some(4.096));
    assert_eq!(sample.invalidations_per_io(), None);
    assert_eq!(sample.fields["domain"], "DMA");
}

#[test]
fn a_moat_line_after_a_log_prefix_counts_invalidations() {
    let serial = "[    2.000001] INFO  test: bench-block: system=moat device=virtio-blk mode=pass-through workload=seq-128k qd=32 ios=64 bytes=8388608 ns=1000000 invalidations=2\n";
    let sample = &parse(serial).unwrap()[0];
    assert_eq!(
        (sample.system, sample.mode),
        (System::Moat, Mode::PassThrough)
    );
    assert_eq!(sample.cell.queue_depth, 32);
    assert_eq!(sample.iops(), Some(64_000.0));
    assert_eq!(sample.invalidations_per_io(), Some(2.0 / 64.0));
}

#[test]
fn errors_and_malformed_lines_fail_the_run() {
    assert_eq!(
        parse("x\nbench-block-error: dd of /dev/vda failed\n").unwrap_err(),
        "bench-block-error: dd of /dev/vda failed"
    );
    for bad in [
        "bench-block: system=bsd device=nvme mode=strict workload=w qd=1 ios=1 bytes=1 ns=1",
        "bench-block: system=moat device=nvme mode=lazy workload=w qd=1 ios=1 bytes=1 ns=1",
        "bench-block: system=moat device=nvme mode=strict workload=w qd=1 ios=1 bytes=1",
        "bench-block: system=moat device=nvme mode=strict workload=w qd=1 ios=x bytes=1 ns=1",
        "bench-block: system=moat device=nvme mode=strict workload=w qd=0 ios=1 bytes=1 ns=1",
        "bench-block: system=moat device=nvme mode=strict workload=w qd=1 ios=1 bytes=1 ns=1 ns=2",
        "bench-block: system=moat device=nvme mode=strict workload=w qd=1 ios=1 bytes=1 ns=1 junk",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_time_at_or_below_the_overhead_gives_no_rate() {
    let line = "bench-block: system=linux device=nvme mode=strict workload=w qd=1 ios=1 bytes=1 ns=5 overhead_ns=9";
    let sample = &parse(line).unwrap()[0];
    assert_eq!(sample.io_ns(), 0);
    assert_eq!(sample.iops(), None);
}

fn line(system: &str, mode: &str, ns: u64) -> String {
    format!(
        "bench-block: system={system} device=nvme mode={mode} workload=rand-4k qd=1 ios=1000 bytes=4096000 ns={ns}\n"
    )
}

#[test]
fn ratios_compare_within_a_system_and_across_systems() {
    let serial = [
        line("linux", "strict", 2_000_000_000),
        line("linux", "pass-through", 1_000_000_000),
        line("moat", "strict", 500_000_000),
        line("moat", "pass-through", 400_000_000),
    ]
    .concat();
    let grid = grid(parse(&serial).unwrap()).unwrap();
    assert_eq!(grid.len(), 1);
    let ratios = ratios(grid.values().next().unwrap());
    assert_eq!(ratios.linux_strict_to_pass, Some(0.5));
    assert_eq!(ratios.moat_strict_to_pass, Some(0.8));
    assert_eq!(ratios.moat_to_linux_strict, Some(4.0));
    assert_eq!(ratios.moat_to_linux_pass, Some(2.5));
}

#[test]
fn a_missing_side_leaves_its_ratios_empty_and_duplicates_are_refused() {
    let only_linux = [
        line("linux", "strict", 2_000_000_000),
        line("linux", "pass-through", 1_000_000_000),
    ]
    .concat();
    let grid_linux = grid(parse(&only_linux).unwrap()).unwrap();
    let ratios = ratios(grid_linux.values().next().unwrap());
    assert_eq!(ratios.linux_strict_to_pass, Some(0.5));
    assert_eq!(ratios.moat_strict_to_pass, None);
    assert_eq!(ratios.moat_to_linux_strict, None);
    let twice = [line("moat", "strict", 1), line("moat", "strict", 2)].concat();
    assert!(grid(parse(&twice).unwrap()).is_err());
}

#[test]
fn repeats_collapse_to_the_fastest_with_their_spread() {
    let serial = [
        line("linux", "strict", 3_000_000_000),
        line("linux", "strict", 1_000_000_000),
        line("linux", "strict", 2_000_000_000),
        line("linux", "pass-through", 1_000_000_000),
    ]
    .concat();
    let samples = fastest_of_repeats(parse(&serial).unwrap());
    assert_eq!(samples.len(), 2);
    let strict = samples.iter().find(|s| s.mode == Mode::Strict).unwrap();
    assert_eq!(strict.ns, 1_000_000_000);
    assert_eq!(
        strict.repeats,
        [1_000_000_000, 2_000_000_000, 3_000_000_000]
    );
    assert_eq!(strict.spread(), Some(3.0));
    let pass = samples
        .iter()
        .find(|s| s.mode == Mode::PassThrough)
        .unwrap();
    assert_eq!(pass.spread(), None);
    assert!(grid(samples).is_ok());
}

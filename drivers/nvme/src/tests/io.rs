//! Read, Write and Flush: data through PRP1/PRP2 and PRP lists, the range and size checks,
//! several commands in flight, completion queue wrap, and per-request DMA mappings.

use super::{pattern, start, start_with};
use crate::error::NvmeError;
use crate::sim::{Config, QEMU_CAP};
use crate::{Direction, Options};

#[test]
fn writes_land_on_the_disk_and_read_back() {
    let (sim, mut nvme) = start(Config::default());
    // One block, two pages, three pages, 128 KiB (a 31-entry PRP list), an odd block count.
    let cases = [
        (0u64, 512usize),
        (8, 8192),
        (40, 3 * 4096),
        (100, 128 * 1024),
        (700, 5 * 512),
    ];
    for (i, (block, len)) in cases.iter().enumerate() {
        let data = pattern(i as u64, *len);
        nvme.write(*block, &data).unwrap();
        let at = *block as usize * 512;
        assert_eq!(
            &sim.state().disk[at..at + len],
            &data[..],
            "case {i} on disk"
        );
        let mut back = vec![0; *len];
        nvme.read(*block, &mut back).unwrap();
        assert_eq!(back, data, "case {i} read back");
    }
    let state = sim.state();
    // The 3-page and 128 KiB transfers used a list, each way; the others fit PRP1/PRP2.
    assert_eq!(state.prp_lists, 2 * 2);
    assert!(state.memory.faults.is_empty(), "{:x?}", state.memory.faults);
    assert!(state.bad_accesses.is_empty());
}

#[test]
fn the_largest_transfer_uses_one_full_list() {
    let config = Config {
        mdts: 0,
        namespace: Some((8192, 9)),
        ..Config::default()
    };
    let (sim, mut nvme) = start(config);
    // No MDTS: one PRP list page bounds the transfer at 512 pages (2 MiB).
    assert_eq!(nvme.max_transfer(), 2 * 1024 * 1024);
    let data = pattern(9, nvme.max_transfer());
    nvme.write(0, &data).unwrap();
    let mut back = vec![0; data.len()];
    nvme.read(0, &mut back).unwrap();
    assert!(back == data);
    assert_eq!(sim.state().prp_lists, 2);
}

#[test]
fn every_request_maps_fresh_memory_and_retires_it() {
    let (sim, mut nvme) = start(Config::default());
    let before = sim.state().memory.live();
    let allocated = sim.state().memory.allocated;
    nvme.write(0, &pattern(1, 3 * 4096)).unwrap();
    let mut back = vec![0; 512];
    nvme.read(0, &mut back).unwrap();
    nvme.flush().unwrap();
    let state = sim.state();
    assert_eq!(
        state.memory.live(),
        before,
        "nothing stays mapped after completion"
    );
    // Write: data (device reads) and its PRP list (device reads); read: data (device writes).
    assert_eq!(
        state.memory.sizes[allocated..],
        [
            (3 * 4096, Direction::ToDevice),
            (16, Direction::ToDevice),
            (512, Direction::FromDevice)
        ]
    );
    assert_eq!(state.flushes, 1);
}

#[test]
fn a_namespace_smaller_than_the_range_is_a_clear_error() {
    let (sim, mut nvme) = start(Config {
        namespace: Some((16, 9)),
        ..Config::default()
    });
    let error = nvme.write(12, &[0; 8 * 512]).unwrap_err();
    assert_eq!(
        error,
        NvmeError::NamespaceTooSmall {
            first_block: 12,
            blocks: 8,
            namespace_blocks: 16
        }
    );
    assert_eq!(
        error.to_string(),
        "blocks 12..20 asked, the namespace has 16"
    );
    assert_eq!(
        nvme.submit_read(0, u64::MAX, 1).unwrap_err(),
        NvmeError::NamespaceTooSmall {
            first_block: u64::MAX,
            blocks: 1,
            namespace_blocks: 16
        }
    );
    assert!(sim.state().io_log.is_empty(), "nothing was sent");
    // The controller is still usable: the last 4 blocks are fine.
    nvme.write(12, &[1; 4 * 512]).unwrap();
}

#[test]
fn lengths_are_whole_blocks_within_the_transfer_limit() {
    let (sim, mut nvme) = start(Config::default());
    for len in [0, 100, 513] {
        assert_eq!(
            nvme.write(0, &vec![0; len]).unwrap_err(),
            NvmeError::BadLength {
                len,
                block_size: 512
            }
        );
    }
    let len = 512 * 1024 + 512;
    assert_eq!(
        nvme.write(0, &vec![0; len]).unwrap_err(),
        NvmeError::TooLarge {
            len,
            max: 512 * 1024
        }
    );
    assert_eq!(nvme.submit_flush(1).unwrap_err(), NvmeError::NoSuchRequest);
    assert!(sim.state().io_log.is_empty());
    assert!(!nvme.is_stopped());
    let state = sim.state();
    assert_eq!(
        state.memory.allocated,
        state.memory.retired + 4,
        "only the rings are mapped"
    );
}

#[test]
fn several_commands_in_flight_complete_in_any_order() {
    let config = Config {
        deferred: true,
        reverse: true,
        ..Config::default()
    };
    let (sim, mut nvme) = start(config);
    let tags: Vec<_> = (0..8)
        .map(|i| nvme.submit_write(0, i * 16, &pattern(i, 16 * 512)).unwrap())
        .collect();
    assert_eq!(nvme.in_flight(0), 8);
    let mut order = Vec::new();
    for _ in 0..8 {
        let completion = nvme.next_completion(0).unwrap();
        assert_eq!(completion.outcome, Ok(Vec::new()));
        order.push(completion.tag);
    }
    let reversed: Vec<_> = tags.iter().rev().copied().collect();
    assert_eq!(
        order, reversed,
        "completions come back in the order they were posted"
    );
    assert_eq!(
        sim.state().largest_batch,
        8,
        "all eight were in flight together"
    );
    // Reads in flight together; waited for by tag in submission order.
    let reads: Vec<_> = (0..8)
        .map(|i| nvme.submit_read(0, i * 16, 16).unwrap())
        .collect();
    for (i, tag) in reads.into_iter().enumerate() {
        assert_eq!(nvme.wait(tag).unwrap(), pattern(i as u64, 16 * 512));
    }
    assert_eq!(nvme.in_flight(0), 0);
    assert!(sim.state().memory.faults.is_empty());
}

#[test]
fn a_full_queue_is_refused_not_overrun() {
    let cap = (QEMU_CAP & !0xffff) | 3;
    let (_, mut nvme) = start(Config {
        cap,
        deferred: true,
        ..Config::default()
    });
    for i in 0..3 {
        nvme.submit_write(0, i, &[0; 512]).unwrap();
    }
    assert_eq!(
        nvme.submit_write(0, 3, &[0; 512]).unwrap_err(),
        NvmeError::QueueFull { queue: 1 }
    );
    for _ in 0..3 {
        nvme.next_completion(0).unwrap().outcome.unwrap();
    }
    nvme.write(3, &[0; 512]).unwrap();
}

#[test]
fn the_completion_phase_wraps_many_times() {
    // MQES = 3: four-entry queues (admin too), so both rings wrap every few commands.
    let cap = (QEMU_CAP & !0xffff) | 3;
    let config = Config {
        cap,
        deferred: true,
        ..Config::default()
    };
    let (sim, mut nvme) = start_with(
        config,
        Options {
            queue_entries: 64,
            ..Options::default()
        },
    );
    for round in 0..12u64 {
        // Three in flight (a full ring), then one at a time.
        let tags: Vec<_> = (0..3)
            .map(|i| {
                nvme.submit_write(0, round * 3 + i, &pattern(round * 3 + i, 512))
                    .unwrap()
            })
            .collect();
        for tag in tags {
            nvme.wait(tag).unwrap();
        }
        let mut back = vec![0; 512];
        nvme.read(round * 3, &mut back).unwrap();
        assert_eq!(back, pattern(round * 3, 512));
    }
    let state = sim.state();
    assert_eq!(
        state.io_log.len(),
        48,
        "48 completions through a 4-entry ring"
    );
    assert!(state.bad_accesses.is_empty());
}

#[test]
fn a_failed_command_is_reported_and_the_controller_goes_on() {
    let (sim, mut nvme) = start(Config::default());
    sim.state().faults.fail_next_io = Some((2, 0x81));
    let error = nvme.write(0, &[0; 512]).unwrap_err();
    let NvmeError::CommandFailed {
        queue: 1,
        opcode: 0x01,
        status,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!((status.code_type, status.code), (2, 0x81));
    assert!(!nvme.is_stopped());
    nvme.write(0, &[0; 512]).unwrap();
    assert_eq!(
        sim.state().memory.live(),
        4,
        "the failed write's buffer was retired too"
    );
}

//! Bring-up and shutdown: reset, admin queue, enable, Identify, queue creation, CC.SHN; and
//! the controllers that never get there.

use super::{start, start_fails, start_with};
use crate::error::{NvmeError, Wait};
use crate::identify::IdentifyError;
use crate::sim::{Config, QEMU_CAP};
use crate::{Direction, Options};

#[test]
fn a_controller_comes_up_with_its_namespace_and_an_io_queue() {
    let (sim, nvme) = start(Config::default());
    assert_eq!(nvme.namespace().id, 1);
    assert_eq!(nvme.namespace().blocks, 2048);
    assert_eq!(nvme.namespace().block_size, 512);
    assert_eq!(nvme.controller().vendor, 0x1b36);
    assert_eq!(nvme.max_transfer(), 512 * 1024, "MDTS 7 with 4 KiB pages");
    assert_eq!(nvme.version(), 0x0001_0400);
    assert_eq!(nvme.io_queues(), 1);
    let state = sim.state();
    // Identify controller, active list, namespace; queue count; CQ before SQ.
    assert_eq!(state.admin_log, [0x06, 0x06, 0x06, 0x09, 0x05, 0x01]);
    assert_eq!(
        state.enabled[..3],
        [true, true, false],
        "MSI-X 0 (admin) and 1 (I/O)"
    );
    assert!(state.bad_accesses.is_empty(), "{:x?}", state.bad_accesses);
    assert!(state.memory.faults.is_empty());
    // The admin queue was programmed while disabled, then CC.EN with 64/16-byte entries.
    let writes: Vec<u64> = state.register_writes.iter().map(|w| w.0).take(6).collect();
    assert_eq!(writes, [0x14, 0x24, 0x28, 0x2c, 0x30, 0x34]);
    assert_eq!(state.register_writes[0].1, 0);
    assert_eq!(state.register_writes[6], (0x14, 0x0046_0001));
    assert_eq!(
        state.register_writes[1].1, 0x000f_000f,
        "16-entry admin queues"
    );
    // Rings: SQ device-read, CQ device-write; Identify data device-write.
    assert_eq!(state.memory.sizes[0], (16 * 64, Direction::ToDevice));
    assert_eq!(state.memory.sizes[1], (16 * 16, Direction::FromDevice));
    assert_eq!(state.memory.sizes[2], (4096, Direction::FromDevice));
    // Live: two admin rings, two I/O rings; Identify buffers retired.
    assert_eq!(state.memory.live(), 4);
}

#[test]
fn a_controller_left_enabled_is_reset_before_the_admin_queue_is_programmed() {
    let config = Config {
        start_enabled: true,
        ..Config::default()
    };
    let (sim, _nvme) = start(config);
    assert_eq!(sim.state().register_writes[0], (0x14, 0));
}

#[test]
fn doorbells_respect_the_doorbell_stride() {
    // DSTRD = 2: doorbells 16 bytes apart.
    let config = Config {
        cap: QEMU_CAP | (2 << 32),
        ..Config::default()
    };
    let (sim, mut nvme) = start(config);
    nvme.write(0, &[7; 512]).unwrap();
    let state = sim.state();
    assert!(state.bad_accesses.is_empty(), "{:x?}", state.bad_accesses);
    let doorbells: Vec<u64> = state
        .register_writes
        .iter()
        .map(|w| w.0)
        .filter(|o| *o >= 0x1000)
        .collect();
    assert!(
        doorbells.contains(&0x1000) && doorbells.contains(&0x1010),
        "admin SQ/CQ"
    );
    assert!(
        doorbells.contains(&0x1020) && doorbells.contains(&0x1030),
        "I/O SQ 1 / CQ 1"
    );
}

#[test]
fn several_queue_pairs_each_get_their_own_vector() {
    let options = Options {
        io_queues: 3,
        ..Options::default()
    };
    let (sim, mut nvme) = start_with(Config::default(), options);
    assert_eq!(nvme.io_queues(), 3);
    assert_eq!(sim.state().enabled[..5], [true, true, true, true, false]);
    for queue in 0..3 {
        let tag = nvme
            .submit_write(queue, queue as u64, &[queue as u8; 512])
            .unwrap();
        assert_eq!(tag.queue(), queue as u16 + 1);
        nvme.wait(tag).unwrap();
    }
    assert_eq!(sim.state().deliveries[1..4], [1, 1, 1]);
    assert_eq!(sim.state().io_log, [(1, 1), (2, 1), (3, 1)]);
}

#[test]
fn fewer_queues_granted_are_used_as_granted() {
    let config = Config {
        max_queue_pairs: 2,
        ..Config::default()
    };
    let (_, nvme) = start_with(
        config,
        Options {
            io_queues: 4,
            ..Options::default()
        },
    );
    assert_eq!(nvme.io_queues(), 2);
}

#[test]
fn a_controller_that_never_becomes_ready_times_out() {
    let (_, error) = start_fails(Config {
        never_ready: true,
        ..Config::default()
    });
    assert_eq!(
        error,
        NvmeError::Timeout {
            what: Wait::Ready,
            budget_us: 7_500_000
        }
    );
}

#[test]
fn the_ready_budget_comes_from_cap_to() {
    let cap = (QEMU_CAP & !(0xff << 24)) | (2 << 24);
    let (sim, error) = start_fails(Config {
        cap,
        never_ready: true,
        ..Config::default()
    });
    assert_eq!(
        error,
        NvmeError::Timeout {
            what: Wait::Ready,
            budget_us: 1_000_000
        }
    );
    // The budget ran on the clock: about 1 s of simulated time, not more.
    let clock = sim.state().clock;
    assert!((1_000_000..1_100_000).contains(&clock), "clock {clock}");
}

#[test]
fn a_fatal_status_during_enable_is_an_error() {
    let (_, error) = start_fails(Config {
        fatal_on_enable: true,
        ..Config::default()
    });
    assert_eq!(error, NvmeError::ControllerFatal { status: 2 });
}

#[test]
fn a_controller_that_stays_ready_after_reset_times_out() {
    let config = Config {
        start_enabled: true,
        stuck_ready: true,
        ..Config::default()
    };
    let (_, error) = start_fails(config);
    assert_eq!(
        error,
        NvmeError::Timeout {
            what: Wait::Disabled,
            budget_us: 7_500_000
        }
    );
}

#[test]
fn unusable_capabilities_are_refused_before_any_write() {
    let cap = QEMU_CAP & !(1 << 37);
    let (sim, error) = start_fails(Config {
        cap,
        ..Config::default()
    });
    assert_eq!(error, NvmeError::BadCapabilities { cap });
    assert!(sim.state().register_writes.is_empty());
}

#[test]
fn a_controller_without_a_namespace_is_refused() {
    let (_, error) = start_fails(Config {
        namespace: None,
        ..Config::default()
    });
    assert_eq!(error, NvmeError::NoNamespace);
}

#[test]
fn a_namespace_with_an_unusable_format_is_refused() {
    let (_, error) = start_fails(Config {
        namespace: Some((64, 8)),
        ..Config::default()
    });
    assert_eq!(
        error,
        NvmeError::Identify(IdentifyError::BlockSize { shift: 8 })
    );
}

#[test]
fn missing_msix_vectors_are_an_error() {
    let config = Config {
        vectors: 1,
        ..Config::default()
    };
    let (_, error) = start_fails(config);
    assert_eq!(
        error,
        NvmeError::Interrupt(crate::InterruptError { vector: 1 })
    );
}

#[test]
fn shutdown_deletes_queues_notifies_and_disables() {
    let (sim, mut nvme) = start(Config::default());
    nvme.write(3, &[1; 1024]).unwrap();
    let (_platform, result) = nvme.shut_down();
    result.unwrap();
    let state = sim.state();
    assert_eq!(state.admin_log[6..], [0x00, 0x04], "delete SQ 1, then CQ 1");
    let cc: Vec<u32> = state
        .register_writes
        .iter()
        .filter(|w| w.0 == 0x14)
        .map(|w| w.1)
        .collect();
    assert_eq!(
        cc[cc.len() - 2..],
        [0x0046_4001, 0],
        "CC.SHN normal, then disabled"
    );
    assert_eq!(state.memory.live(), 0, "every region retired");
    assert_eq!(state.memory.allocated, state.memory.retired);
}

#[test]
fn a_shutdown_that_never_completes_times_out_and_still_hands_back() {
    let (sim, nvme) = start(Config {
        never_shutdown: true,
        ..Config::default()
    });
    let (_platform, result) = nvme.shut_down();
    assert_eq!(
        result,
        Err(NvmeError::Timeout {
            what: Wait::ShutdownComplete,
            budget_us: 10_000_000
        })
    );
    assert_eq!(sim.state().memory.live(), 0);
    assert_eq!(sim.state().cc & 1, 0);
}

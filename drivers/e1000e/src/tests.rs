//! Host tests of the device logic against the simulated device in `tests/sim.rs`.

mod sim;

use super::*;
use sim::{MAC, Sim};

/// Regions live after bring-up: the two descriptor rings and one buffer per receive descriptor.
const BRING_UP_REGIONS: usize = 2 + RX_RING_LEN;

fn frame(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn up() -> (Sim, E1000e<Sim>) {
    let sim = Sim::new();
    let device = E1000e::new(sim.clone()).expect("bring-up");
    (sim, device)
}

#[test]
fn bring_up_programs_rings_vectors_and_reads_the_mac() {
    let (sim, device) = up();
    assert_eq!(device.mac_address(), MAC);
    assert_eq!(sim.register(registers::RDLEN), 512);
    assert_eq!(sim.register(registers::RDT), 31);
    assert_eq!(sim.register(registers::TDLEN), 512);
    assert_eq!(sim.register(registers::TDT), 0);
    // RXQ0 and TXQ0 -> vector 0 (valid), other -> vector 1 (valid).
    assert_eq!(sim.register(registers::IVAR), 0x8 | 0x8 << 8 | 0x9 << 16);
    assert_eq!(sim.register(registers::EIAC), 0);
    let ims = sim.register(registers::IMS);
    assert_eq!(ims, (1 << 20) | (1 << 22) | (1 << 24) | (1 << 2));
    let rctl = sim.register(registers::RCTL);
    assert_eq!(rctl, (1 << 1) | (1 << 15) | (1 << 26));
    assert_ne!(sim.register(registers::TCTL) & 2, 0);
    assert_ne!(sim.register(registers::CTRL) & (1 << 6), 0, "CTRL.SLU");
    let state = sim.state();
    assert!(state.enabled[0] && state.enabled[1]);
    // Ring and buffer regions are live; the device saw nothing outside them.
    assert_eq!(state.regions.len(), BRING_UP_REGIONS);
    assert!(state.faults.is_empty());
}

#[test]
fn a_reset_that_never_completes_times_out() {
    let sim = Sim::new();
    sim.state().reset_clears_after = None;
    assert_eq!(
        E1000e::new(sim.clone()).err(),
        Some(E1000eError::ResetTimeout {
            budget_us: RESET_BUDGET_US
        })
    );
    // Nothing was programmed after the failed reset.
    assert_eq!(sim.register(registers::RCTL), 0);
}

#[test]
fn a_reset_times_out_even_with_a_stuck_clock() {
    let sim = Sim::new();
    sim.state().reset_clears_after = None;
    sim.state().tick_us = 0;
    assert!(matches!(
        E1000e::new(sim),
        Err(E1000eError::ResetTimeout { .. })
    ));
}

#[test]
fn an_invalid_station_address_is_refused() {
    for (low, high) in [
        (0x0012_5452, 0x5634),                     // AV clear
        (0, RAH_ADDRESS_VALID),                    // all zero
        (0x0012_5401, 0x5634 | RAH_ADDRESS_VALID), // group bit
    ] {
        let sim = Sim::new();
        sim.state().registers.insert(registers::RAL0, low);
        sim.state().registers.insert(registers::RAH0, high);
        assert_eq!(
            E1000e::new(sim).err(),
            Some(E1000eError::BadMacAddress { low, high })
        );
    }
}

#[test]
fn the_link_comes_up_on_a_link_interrupt_or_times_out() {
    let sim = Sim::new();
    sim.state().link_after_waits = Some(1);
    assert!(E1000e::new(sim.clone()).is_ok());
    assert!(sim.state().deliveries[1] >= 1, "LSC went to vector 1");

    let sim = Sim::new();
    sim.state().link_after_waits = None;
    assert_eq!(
        E1000e::new(sim).err(),
        Some(E1000eError::LinkDown {
            budget_us: LINK_BUDGET_US
        })
    );
}

#[test]
fn frames_are_sent_from_buffers_of_their_own_and_retired_after_write_back() {
    let (sim, mut device) = up();
    let frames: Vec<Vec<u8>> = (0..3).map(|i| frame(i, 60 + usize::from(i))).collect();
    for f in &frames {
        device.transmit(f).unwrap();
    }
    assert_eq!(sim.state().sent, frames);
    // Each transmit first retires what the device finished: only the last frame's region is
    // still mapped (this device completes at once).
    assert_eq!(sim.state().retired.len(), 2);
    assert_eq!(sim.state().regions.len(), BRING_UP_REGIONS + 1);
    assert_eq!(sim.state().deliveries[0], 3, "TXQ0 raised vector 0");
    device.reclaim().unwrap();
    assert_eq!(sim.state().retired.len(), 3);
    assert_eq!(sim.state().regions.len(), BRING_UP_REGIONS);
    assert_eq!(device.statistics().transmit_retired, 3);
    assert!(sim.state().faults.is_empty());
}

#[test]
fn the_transmit_ring_wraps_and_fills_up_when_the_device_stalls() {
    let (sim, mut device) = up();
    let frames: Vec<Vec<u8>> = (0..100).map(|i| frame(i, 64)).collect();
    for f in &frames {
        device.transmit(f).unwrap();
    }
    assert_eq!(sim.state().sent, frames);
    assert_eq!(sim.register(registers::TDT), 100 % 32);

    sim.state().transmit_paused = true;
    sim.state().sent.clear();
    for i in 0..TX_RING_LEN - 1 {
        device.transmit(&frame(i as u8, 64)).unwrap();
    }
    assert_eq!(
        device.transmit(&frame(0, 64)),
        Err(E1000eError::TransmitRingFull)
    );
    assert!(!device.can_transmit().unwrap());
    sim.resume_transmit();
    assert_eq!(sim.state().sent.len(), TX_RING_LEN - 1);
    assert!(device.can_transmit().unwrap());
    device.transmit(&frame(7, 64)).unwrap();
}

#[test]
fn frames_of_a_bad_length_are_not_sent() {
    let (sim, mut device) = up();
    for len in [0, 13, MAX_FRAME_LEN + 1] {
        assert_eq!(
            device.transmit(&vec![0; len]),
            Err(E1000eError::BadFrameLength { len })
        );
    }
    assert!(sim.state().sent.is_empty());
    assert_eq!(sim.state().regions.len(), BRING_UP_REGIONS);
}

#[test]
fn the_receive_ring_wraps_and_frames_arrive_intact() {
    let (sim, mut device) = up();
    let mut buffer = [0u8; RX_BUFFER_LEN];
    assert_eq!(device.receive(&mut buffer), Ok(None));
    for i in 0..100u8 {
        let f = frame(i, 60 + usize::from(i) * 10);
        assert!(sim.inject(&f));
        let len = device.receive(&mut buffer).unwrap().expect("a frame");
        assert_eq!(&buffer[..len], &f[..]);
        assert_eq!(
            sim.register(registers::RDT) as usize,
            usize::from(i) % RX_RING_LEN
        );
    }
    assert_eq!(device.statistics().received, 100);

    // With nobody taking frames the ring fills: 31 descriptors, then the device drops.
    let frames: Vec<Vec<u8>> = (0..RX_RING_LEN as u8).map(|i| frame(i, 100)).collect();
    let accepted = frames.iter().take_while(|f| sim.inject(f)).count();
    assert_eq!(accepted, RX_RING_LEN - 1);
    for f in &frames[..accepted] {
        let len = device.receive(&mut buffer).unwrap().expect("a frame");
        assert_eq!(&buffer[..len], &f[..]);
    }
    assert_eq!(device.receive(&mut buffer), Ok(None));
    assert!(sim.state().faults.is_empty());
}

#[test]
fn bad_receive_write_backs_are_dropped_and_the_ring_goes_on() {
    let (sim, mut device) = up();
    let mut buffer = [0u8; RX_BUFFER_LEN];
    let cases = [
        (
            0u16,
            0b11u8,
            0u8,
            E1000eError::BadReceiveLength { index: 0, len: 0 },
        ),
        (
            13,
            0b11,
            0,
            E1000eError::BadReceiveLength { index: 1, len: 13 },
        ),
        (
            4000,
            0b11,
            0,
            E1000eError::BadReceiveLength {
                index: 2,
                len: 4000,
            },
        ),
        (
            100,
            0b01,
            0,
            E1000eError::ReceiveNotEndOfPacket { index: 3 },
        ),
        (
            100,
            0b11,
            0x01,
            E1000eError::ReceiveFrameError {
                index: 4,
                errors: 1,
            },
        ),
    ];
    for (length, status, errors, expected) in cases {
        assert!(sim.inject_write_back(length, status, errors));
        assert_eq!(device.receive(&mut buffer), Err(expected));
    }
    assert_eq!(device.statistics().receive_dropped, 5);
    // A frame longer than the caller's buffer is refused too, not truncated.
    assert!(sim.inject(&frame(1, 200)));
    assert_eq!(
        device.receive(&mut buffer[..100]),
        Err(E1000eError::BadReceiveLength { index: 5, len: 200 })
    );
    let good = frame(9, 300);
    assert!(sim.inject(&good));
    let len = device.receive(&mut buffer).unwrap().expect("a frame");
    assert_eq!(&buffer[..len], &good[..]);
}

#[test]
fn a_head_register_outside_the_ring_is_reported() {
    let (sim, mut device) = up();
    assert!(sim.inject(&frame(1, 64)));
    sim.state().registers.insert(registers::RDH, 999);
    let mut buffer = [0u8; RX_BUFFER_LEN];
    assert_eq!(
        device.receive(&mut buffer),
        Err(E1000eError::HeadOutOfRange {
            register: "RDH",
            value: 999
        })
    );
}

#[test]
fn queue_interrupts_are_counted_acknowledged_and_waited_for() {
    let (sim, mut device) = up();
    let seen = device.queue_interrupts();
    assert_eq!(
        device.wait_for_queues(seen, 1000),
        Err(E1000eError::InterruptTimeout { budget_us: 1000 })
    );
    assert!(sim.inject(&frame(1, 64)));
    assert_eq!(device.wait_for_queues(seen, 1000), Ok(seen + 1));
    let causes = device.acknowledge();
    assert!(causes.contains(Causes::RX_QUEUE0));
    assert_eq!(sim.register(registers::ICR), 0);
    let mut buffer = [0u8; RX_BUFFER_LEN];
    assert!(device.receive_pending().unwrap());
    assert!(device.receive(&mut buffer).unwrap().is_some());
    assert!(!device.receive_pending().unwrap());
}

#[test]
fn a_taken_frame_s_buffer_is_retired_and_its_descriptor_gets_a_fresh_one() {
    let (sim, mut device) = up();
    let handed = sim.handed_rx_buffers();
    assert_eq!(handed.len(), RX_RING_LEN - 1);
    for iova in &handed {
        assert_eq!(sim.state().regions[iova].len(), RX_REGION_LEN);
        assert_eq!(sim.state().directions[iova], DmaDirection::FromDevice);
    }
    let first = sim.rx_descriptor_buffer(0);
    assert_eq!(first, handed[0]);

    let mut buffer = [0u8; RX_BUFFER_LEN];
    let f = frame(3, 200);
    assert!(sim.inject(&f));
    assert_eq!(device.receive(&mut buffer), Ok(Some(200)));
    assert_eq!(&buffer[..200], &f[..]);
    // The frame's page went back; descriptor 0 names a page never used before, mapped for the
    // device to write only.
    assert_eq!(sim.state().retired, vec![first]);
    assert!(!sim.state().regions.contains_key(&first));
    let fresh = sim.rx_descriptor_buffer(0);
    assert!(!handed.contains(&fresh), "{fresh:#x} is not fresh");
    assert_eq!(sim.state().directions[&fresh], DmaDirection::FromDevice);
    assert_eq!(sim.state().regions.len(), BRING_UP_REGIONS);
    assert_eq!(device.statistics().receive_retired, 1);

    // Around the ring once more: descriptor 0 is filled through the fresh page.
    for i in 0..RX_RING_LEN as u8 {
        let f = frame(i, 100);
        assert!(sim.inject(&f));
        assert_eq!(device.receive(&mut buffer), Ok(Some(100)));
        assert_eq!(&buffer[..100], &f[..]);
    }
    assert!(sim.state().retired.contains(&fresh));
    assert_eq!(sim.state().retired.len(), RX_RING_LEN + 1);
    // A dropped write-back retires its page too.
    assert!(sim.inject_write_back(0, 0b11, 0));
    assert!(device.receive(&mut buffer).is_err());
    assert_eq!(device.statistics().receive_retired, RX_RING_LEN as u64 + 2);
    assert_eq!(sim.state().regions.len(), BRING_UP_REGIONS);
    let handed = sim.handed_rx_buffers();
    assert!(
        handed
            .iter()
            .all(|iova| sim.state().regions.contains_key(iova))
    );
    assert!(sim.state().faults.is_empty());
}

#[test]
fn without_memory_for_a_fresh_buffer_the_descriptor_stays_held_and_the_ring_shrinks() {
    let (sim, mut device) = up();
    let mut buffer = [0u8; RX_BUFFER_LEN];
    sim.state().refuse_allocations = true;
    let f = frame(1, 80);
    assert!(sim.inject(&f));
    // The frame itself is delivered; its descriptor keeps no buffer and is not handed back:
    // RDT stops on it (the descriptor held since bring-up went back instead).
    assert_eq!(device.receive(&mut buffer), Ok(Some(80)));
    assert_eq!(&buffer[..80], &f[..]);
    assert_eq!(sim.register(registers::RDT), 0);
    let statistics = device.statistics();
    assert_eq!(statistics.receive_refill_failures, 1);
    assert_eq!(statistics.receive_unfilled, 1);

    // The device fills what it still owns; taking those frames hands nothing back.
    let mut accepted = 0;
    while sim.inject(&frame(accepted, 64)) {
        accepted += 1;
    }
    assert_eq!(usize::from(accepted), RX_RING_LEN - 1);
    for i in 0..accepted {
        assert_eq!(device.receive(&mut buffer), Ok(Some(64)));
        assert_eq!(&buffer[..64], &frame(i, 64)[..]);
    }
    // Every descriptor is held now: the device has none, and the driver reads no old
    // write-back as a frame.
    assert_eq!(device.statistics().receive_unfilled, RX_RING_LEN as u64);
    assert_eq!(sim.register(registers::RDT), sim.register(registers::RDH));
    assert!(!sim.inject(&frame(0, 64)));
    assert!(!device.receive_pending().unwrap());
    assert_eq!(device.receive(&mut buffer), Ok(None));
    assert!(device.statistics().receive_refill_failures > RX_RING_LEN as u64);

    // Memory comes back: the next call refills the whole ring with fresh pages.
    sim.state().refuse_allocations = false;
    assert_eq!(device.receive(&mut buffer), Ok(None));
    assert_eq!(device.statistics().receive_unfilled, 0);
    assert_eq!(sim.handed_rx_buffers().len(), RX_RING_LEN - 1);
    let f = frame(5, 300);
    assert!(sim.inject(&f));
    assert_eq!(device.receive(&mut buffer), Ok(Some(300)));
    assert_eq!(&buffer[..300], &f[..]);
    // No retired page was ever handed to the device.
    assert!(sim.state().faults.is_empty());
    let handed = sim.handed_rx_buffers();
    assert!(
        handed
            .iter()
            .all(|iova| !sim.state().retired.contains(iova))
    );
}

#[test]
fn bring_up_fails_when_the_receive_buffers_cannot_all_be_had() {
    let sim = Sim::new();
    sim.state().refuse_allocations = true;
    assert_eq!(E1000e::new(sim.clone()).err(), Some(E1000eError::Dma));
    assert_eq!(sim.register(registers::RCTL), 0, "the receiver stays off");
}

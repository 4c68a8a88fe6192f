//! Host tests of the transport against the fake function in `fake.rs`.

use crate::fake::{self, FakeVirtio};
use crate::*;

const FLUSH: u64 = 1 << 9;

fn ready(fake: &FakeVirtio) -> VirtioPciTransport<&FakeVirtio> {
    VirtioPciTransport::new(fake).expect("the fake is a virtio-blk")
}

#[test]
fn the_structures_are_found_through_config_reads() {
    let fake = FakeVirtio::blk();
    let transport = ready(&fake);
    assert_eq!(transport.device_type(), DeviceType::Block);
    let structures = transport.structures();
    assert_eq!(structures.common.offset, fake::COMMON);
    assert_eq!(structures.isr.offset, fake::ISR);
    assert_eq!(structures.notify.offset, fake::NOTIFY);
    assert_eq!(structures.notify_multiplier, fake::NOTIFY_MULTIPLIER);
    assert_eq!(structures.device.map(|d| d.offset), Some(fake::DEVICE));
}

#[test]
fn access_platform_is_accepted_when_offered_and_features_ok_sticks() {
    let fake = FakeVirtio::blk();
    let mut transport = ready(&fake);
    let features = transport.negotiate(FLUSH).unwrap();
    assert_eq!(
        features,
        FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | FLUSH
    );
    assert_eq!(fake.driver_features.get(), features);
    assert_eq!(fake.status.get(), 0x0b); // ACKNOWLEDGE | DRIVER | FEATURES_OK
    assert!(fake.width_errors.borrow().is_empty());
}

#[test]
fn features_the_device_does_not_offer_are_not_accepted() {
    let mut fake = FakeVirtio::blk();
    fake.device_features = FEATURE_VERSION_1; // no ACCESS_PLATFORM, no FLUSH
    let mut transport = ready(&fake);
    assert_eq!(transport.negotiate(FLUSH), Ok(FEATURE_VERSION_1));
}

#[test]
fn a_refused_features_ok_is_reported_and_the_device_marked_failed() {
    let mut fake = FakeVirtio::blk();
    fake.refuse_features_ok = true;
    let mut transport = ready(&fake);
    assert_eq!(
        transport.negotiate(FLUSH),
        Err(TransportError::FeaturesRefused {
            features: FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | FLUSH,
            status: 0x03,
        })
    );
    assert_eq!(fake.status.get(), 0x80);
    assert_eq!(
        transport.prepare_queue(0, 16, 0),
        Err(TransportError::NotNegotiated)
    );
    assert_eq!(transport.finish(), Err(TransportError::NotNegotiated));
    assert!(!fake.status_writes.borrow().iter().any(|s| s & 0x04 != 0));
}

#[test]
fn a_legacy_only_device_is_refused() {
    let mut fake = FakeVirtio::blk();
    fake.device_features = FLUSH;
    let mut transport = ready(&fake);
    assert_eq!(transport.negotiate(FLUSH), Err(TransportError::NotModern));
}

#[test]
fn a_reset_that_never_completes_times_out() {
    let mut fake = FakeVirtio::blk();
    fake.status_stuck = Some(0x0f);
    let mut transport = ready(&fake);
    assert_eq!(
        transport.negotiate(FLUSH),
        Err(TransportError::ResetTimeout { status: 0x0f })
    );
}

#[test]
fn a_queue_size_of_zero_is_reported() {
    let fake = FakeVirtio::blk().with_queue_size(0);
    let mut transport = ready(&fake);
    transport.negotiate(FLUSH).unwrap();
    assert_eq!(
        transport.prepare_queue(0, 16, 0),
        Err(TransportError::QueueSizeZero { queue: 0 })
    );
    // Nothing was set up: queue_set on the unprepared queue is recorded, DRIVER_OK never written.
    transport.queue_set(0, 16, 0x1000, 0x2000, 0x3000);
    assert_eq!(fake.queues.borrow()[0].enable, 0);
    assert_eq!(
        transport.finish(),
        Err(TransportError::QueueNotPrepared { queue: 0 })
    );
    assert!(!fake.status_writes.borrow().iter().any(|s| s & 0x04 != 0));
}

#[test]
fn a_queue_smaller_than_the_ring_and_a_missing_queue_are_reported() {
    let fake = FakeVirtio::blk().with_queue_size(4);
    let mut transport = ready(&fake);
    transport.negotiate(0).unwrap();
    assert_eq!(
        transport.prepare_queue(0, 16, 0),
        Err(TransportError::QueueTooSmall {
            queue: 0,
            size: 4,
            needed: 16
        })
    );
    assert_eq!(
        transport.prepare_queue(1, 4, 0),
        Err(TransportError::NoSuchQueue {
            queue: 1,
            queues: 1
        })
    );
}

#[test]
fn a_vector_the_device_does_not_take_is_reported() {
    let fake = FakeVirtio::blk();
    let mut transport = ready(&fake);
    transport.negotiate(0).unwrap();
    assert_eq!(
        transport.prepare_queue(0, 16, 2),
        Err(TransportError::VectorRefused {
            queue: Some(0),
            vector: 2,
            read_back: NO_VECTOR
        })
    );
    assert_eq!(
        transport.set_config_vector(7),
        Err(TransportError::VectorRefused {
            queue: None,
            vector: 7,
            read_back: NO_VECTOR
        })
    );
    assert_eq!(transport.set_config_vector(NO_VECTOR), Ok(()));
}

#[test]
fn a_prepared_queue_is_programmed_with_its_vector_and_notified_at_its_address() {
    let fake = FakeVirtio::blk();
    let mut transport = ready(&fake);
    transport.negotiate(FLUSH).unwrap();
    let info = transport.prepare_queue(0, 64, 1).unwrap();
    assert_eq!(info.size, 256);
    assert_eq!(info.notify_offset, u64::from(fake::NOTIFY_MULTIPLIER));
    assert!(!transport.queue_used(0));
    transport.queue_set(0, 64, 0x1_2345_6000, 0x7000, 0x8000);
    {
        let queues = fake.queues.borrow();
        let queue = &queues[0];
        assert_eq!(
            (queue.size, queue.desc, queue.driver, queue.device),
            (64, 0x1_2345_6000, 0x7000, 0x8000)
        );
        assert_eq!((queue.vector, queue.enable), (1, 1));
    }
    assert!(transport.queue_used(0));
    transport.finish().unwrap();
    assert_eq!(fake.status.get(), 0x0f);
    transport.notify(0);
    assert_eq!(
        *fake.notifies.borrow(),
        vec![(u64::from(fake::NOTIFY_MULTIPLIER), 0)]
    );
    assert!(fake.width_errors.borrow().is_empty());
    assert_eq!(transport.failure(), None);
}

#[test]
fn driver_ok_is_checked() {
    let mut fake = FakeVirtio::blk();
    fake.needs_reset_on_driver_ok = true;
    let mut transport = ready(&fake);
    transport.negotiate(0).unwrap();
    assert_eq!(
        transport.finish(),
        Err(TransportError::DriverOkRefused { status: 0x4f })
    );
}

#[test]
fn the_crates_begin_init_goes_through_the_checked_negotiation() {
    bitflags::bitflags! {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        struct BlkFeature: u64 {
            const FLUSH = 1 << 9;
            const VERSION_1 = 1 << 32;
        }
    }
    let mut fake = FakeVirtio::blk();
    fake.refuse_features_ok = true;
    let mut transport = ready(&fake);
    let features = transport.begin_init(BlkFeature::FLUSH | BlkFeature::VERSION_1);
    assert_eq!(features, BlkFeature::empty());
    assert!(matches!(
        transport.failure(),
        Some(TransportError::FeaturesRefused { .. })
    ));
    transport.finish_init();
    assert!(!fake.status_writes.borrow().iter().any(|s| s & 0x04 != 0));
}

#[test]
fn device_configuration_is_read_at_natural_widths() {
    let mut fake = FakeVirtio::blk();
    fake.capacity = 0x1_0000_0800;
    let transport = ready(&fake);
    let capacity: u64 = transport.read_config_space(0).unwrap();
    assert_eq!(capacity, 0x1_0000_0800);
    let low: u32 = transport.read_config_space(0).unwrap();
    assert_eq!(low, 0x800);
    assert_eq!(
        transport.read_config_space::<u32>(0x100),
        Err(virtio_drivers::Error::ConfigSpaceTooSmall)
    );
}

#[test]
fn malformed_capability_lists_are_errors() {
    let fake = FakeVirtio::blk();
    fake.config.borrow_mut()[0x80 / 4] = 0x09 | 0x50 << 8 | 20 << 16 | 2 << 24; // loop back
    assert!(matches!(
        VirtioPciTransport::new(&fake),
        Err(TransportError::BadCapabilityList { .. })
    ));
    let fake = FakeVirtio::blk();
    fake.config.borrow_mut()[0x60 / 4 + 2] = 0x3ff8; // ISR at the BAR's end, 0x1000 long
    assert!(matches!(
        VirtioPciTransport::new(&fake),
        Err(TransportError::OutsideBar {
            kind: StructureKind::Isr,
            ..
        })
    ));
    let fake = FakeVirtio::blk();
    fake.config.borrow_mut()[0x50 / 4] = 0x09 | 0x60 << 8 | 16 << 16 | 9 << 24; // no common cfg
    assert_eq!(
        VirtioPciTransport::new(&fake).err(),
        Some(TransportError::Missing(StructureKind::Common))
    );
    let fake = FakeVirtio::blk();
    fake.config.borrow_mut()[0] = 0x1111_1af4;
    assert!(matches!(
        VirtioPciTransport::new(&fake),
        Err(TransportError::NotVirtio { .. })
    ));
}

//! Host tests of the interrupt remapping encodings against the spec's layouts and the bits
//! QEMU 7.2 checks (`vtd_irte_get`, `vtd_interrupt_remap_msi`).

use super::*;

/// QEMU rejects an entry with any of these set: bits 14:12 and 31:24 of `lo`.
const LO_RESERVED: u64 = 0xff00_7000;
/// Bits 127:84.
const HI_RESERVED: u64 = 0xffff_ffff_fff0_0000;
/// With EIME = 0 only DST bits 15:8 (entry bits 47:40) hold the destination; DST 7:0 and
/// 31:16 are reserved.
const XAPIC_DST_RESERVED: u64 = 0xffff_00ff_0000_0000;

fn vector(raw: u8) -> InterruptVector {
    InterruptVector::new(raw).unwrap()
}

fn edu_at_04() -> SourceValidation {
    SourceValidation::exact(SourceId::new(0, 4, 0).unwrap())
}

#[test]
fn fixed_msi_entry_layout() {
    let entry = InterruptEntry::remapped(RemappedInterrupt::fixed(vector(0x42), 0, edu_at_04()));
    // P, vector 0x42, fixed, edge, physical, destination APIC 0.
    assert_eq!(entry.lo(), 0x0042_0001);
    // SVT = 01 (bit 82 -> bit 18 of hi), SQ = 00, SID = 00:04.0.
    assert_eq!(entry.hi(), 0x0004_0020);
    assert!(entry.is_present());
    assert_eq!(
        (entry.vector(), entry.xapic_destination(), entry.source_id()),
        (0x42, 0, 0x20)
    );
    assert_eq!(entry.source_validation_type(), 1);
    let to_cpu_3 = InterruptEntry::remapped(RemappedInterrupt::fixed(vector(0x30), 3, edu_at_04()));
    assert_eq!(to_cpu_3.lo(), 0x0000_0300_0030_0001);
    assert_eq!(to_cpu_3.xapic_destination(), 3);
}

#[test]
fn every_mode_field_lands_in_its_bits() {
    let interrupt = RemappedInterrupt {
        vector: vector(0xef),
        destination: 0xff,
        destination_mode: DestinationMode::Logical,
        delivery: DeliveryMode::ExtInt,
        trigger: TriggerMode::Level,
        source: SourceValidation::RequesterId {
            source: SourceId::from_raw(0xffff),
            qualifier: FunctionMask::IgnoreBits2To0,
        },
    };
    let entry = InterruptEntry::remapped(interrupt);
    // DM bit 2, TM bit 4, DLM 111 in 7:5, vector 0xef, destination 0xff in 47:40.
    assert_eq!(entry.lo(), 0x0000_ff00_00ef_00f5);
    // SVT 01, SQ 11, SID ffff.
    assert_eq!(entry.hi(), 0x0007_ffff);
    assert_eq!(entry.lo() & (LO_RESERVED | XAPIC_DST_RESERVED), 0);
    assert_eq!(entry.hi() & HI_RESERVED, 0);
    let modes = [
        (DeliveryMode::Fixed, 0b000),
        (DeliveryMode::LowestPriority, 0b001),
        (DeliveryMode::Smi, 0b010),
        (DeliveryMode::Nmi, 0b100),
        (DeliveryMode::Init, 0b101),
        (DeliveryMode::ExtInt, 0b111),
    ];
    for (delivery, bits) in modes {
        let entry = InterruptEntry::remapped(RemappedInterrupt {
            delivery,
            ..interrupt
        });
        assert_eq!((entry.lo() >> 5) & 0b111, bits, "{delivery:?}");
    }
}

#[test]
fn source_qualifiers_match_qemus_masks() {
    // QEMU compares `sid & mask` with SQ selecting {ffff, fffb, fff9, fff8}: the same
    // encoding as the context-cache function mask.
    for (qualifier, sq) in [
        (FunctionMask::Exact, 0),
        (FunctionMask::IgnoreBit2, 1),
        (FunctionMask::IgnoreBits2To1, 2),
        (FunctionMask::IgnoreBits2To0, 3),
    ] {
        let source = SourceValidation::RequesterId {
            source: SourceId::from_raw(0x0208),
            qualifier,
        };
        let entry = InterruptEntry::remapped(RemappedInterrupt::fixed(vector(48), 0, source));
        assert_eq!(entry.hi(), 1 << 18 | sq << 16 | 0x0208);
    }
}

#[test]
fn bus_range_validation() {
    // A device behind a PCIe-to-PCI bridge on bus 2: SVT = 10, SID = first << 8 | last.
    let range = BusRange::new(2, 3).unwrap();
    assert_eq!((range.first(), range.last()), (2, 3));
    let entry = InterruptEntry::remapped(RemappedInterrupt::fixed(
        vector(48),
        0,
        SourceValidation::BusRange(range),
    ));
    assert_eq!(entry.hi(), 2 << 18 | 0x0203);
    assert_eq!(entry.source_validation_type(), 2);
    assert_eq!(BusRange::new(3, 2), None);
    assert!(BusRange::new(7, 7).is_some());
}

#[test]
fn vectors_below_32_are_refused() {
    assert_eq!(InterruptVector::new(31), None);
    assert_eq!(InterruptVector::new(0), None);
    assert_eq!(InterruptVector::new(32).map(InterruptVector::get), Some(32));
    assert_eq!(
        InterruptVector::new(255).map(InterruptVector::get),
        Some(255)
    );
}

#[test]
fn not_present_is_all_zero() {
    assert_eq!(InterruptEntry::NOT_PRESENT.lo(), 0);
    assert_eq!(InterruptEntry::NOT_PRESENT.hi(), 0);
    assert!(!InterruptEntry::NOT_PRESENT.is_present());
    let raw = InterruptEntry::from_raw(0x0042_0001, 0x0004_0020);
    assert_eq!(
        raw,
        InterruptEntry::remapped(RemappedInterrupt::fixed(vector(0x42), 0, edu_at_04()))
    );
}

#[test]
fn remappable_msi_address() {
    // 0xFEE, handle[14:0] in 19:5, bit 4 = 1, SHV bit 3, handle[15] in bit 2.
    let five = RemappableMessage::new(InterruptIndex::new(5));
    assert_eq!((five.address(), five.data()), (0xfee0_00b0, 0));
    let top = RemappableMessage::new(InterruptIndex::new(0x8001));
    assert_eq!(top.address(), 0xfee0_0034);
    let last = RemappableMessage::new(InterruptIndex::new(0x7fff));
    assert_eq!(last.address(), 0xfeef_fff0);
    let sub = RemappableMessage::with_subhandle(InterruptIndex::new(8), 3);
    assert_eq!((sub.address(), sub.data()), (0xfee0_0118, 3));
}

#[test]
fn remappable_msi_decodes_like_the_unit() {
    for handle in [0u16, 1, 5, 255, 0x7fff, 0x8000, 0xffff] {
        let message = RemappableMessage::new(InterruptIndex::new(handle));
        assert_eq!(
            RemappableMessage::decode(message.address(), message.data()),
            Some(InterruptIndex::new(handle))
        );
    }
    let sub = RemappableMessage::with_subhandle(InterruptIndex::new(8), 3);
    assert_eq!(
        RemappableMessage::decode(sub.address(), sub.data()),
        Some(InterruptIndex::new(11))
    );
    // A subhandle with upper data bits set is invalid.
    assert_eq!(RemappableMessage::decode(sub.address(), 0x1_0003), None);
    // Compatibility format (bit 4 clear) and addresses outside 0xFEEx_xxxx select nothing.
    assert_eq!(RemappableMessage::decode(0xfee0_0000, 0x30), None);
    assert_eq!(RemappableMessage::decode(0xfed0_0010, 0), None);
}

#[test]
fn table_sizes() {
    assert_eq!(
        InterruptTableSize::new(256).map(InterruptTableSize::s),
        Some(7)
    );
    assert_eq!(
        InterruptTableSize::new(2).map(InterruptTableSize::s),
        Some(0)
    );
    assert_eq!(
        InterruptTableSize::new(16).map(InterruptTableSize::entries),
        Some(16)
    );
    for bad in [0, 1, 3, 100, 512, 65536] {
        assert_eq!(InterruptTableSize::new(bad), None, "{bad}");
    }
}

#[test]
fn table_address_register() {
    let size = InterruptTableSize::new(256).unwrap();
    let table = PhysAddr::new(0x1234_5000).unwrap();
    let irta = InterruptTableAddress::xapic(table, size).unwrap();
    // Base | S = 7; EIME (bit 11) clear.
    assert_eq!(irta.raw(), 0x1234_5007);
    assert_eq!(irta.raw() & (1 << 11), 0);
    let odd = PhysAddr::new(0x1234_5800).unwrap();
    assert_eq!(
        InterruptTableAddress::xapic(odd, size),
        Err(EntryError::Misaligned)
    );
}

//! The MSI capability (PCI Local Bus 3.0, 6.8.1): what a function offers, and programming its
//! message (address and data), enabling, disabling and masking it, all through configuration
//! space in 32-bit accesses. Only single-message MSI is programmed (MME = 0).

use moat_iommu::Bdf;

use super::access::ConfigAccess;
use super::capabilities::CapabilityId;
use super::device::PciDevice;

/// Message control bits (upper half of the capability's first dword).
const CONTROL_ENABLE: u16 = 1 << 0;
const CONTROL_CAPABLE_SHIFT: u16 = 1;
const CONTROL_MULTIPLE_ENABLE: u16 = 0b111 << 4;
const CONTROL_64BIT: u16 = 1 << 7;
const CONTROL_MASKABLE: u16 = 1 << 8;
/// Offsets inside the capability.
const ADDRESS_LOW: u16 = 0x4;
const ADDRESS_HIGH: u16 = 0x8;
const DATA_32BIT: u16 = 0x8;
const DATA_64BIT: u16 = 0xc;
const MASK_32BIT: u16 = 0xc;
const MASK_64BIT: u16 = 0x10;
/// Bits 31:20 of every MSI address.
const INTERRUPT_WINDOW: u32 = 0xfee0_0000;

/// Why an MSI operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiError {
    /// The function has no MSI capability (or the ID there is not MSI's).
    NoCapability,
    /// The address is outside the interrupt window 0xFEEx_xxxx.
    NotAnInterruptAddress(u32),
    /// MSI data is 16 bits; the value does not fit.
    DataTooWide(u32),
    /// The capability has no per-vector masking.
    NoMasking,
}

/// Masked or not, for per-vector masking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// The function holds the message pending instead of sending it.
    Masked,
    /// The function sends the message.
    Unmasked,
}

/// One function's MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    bdf: Bdf,
    offset: u16,
    control: u16,
}

impl Msi {
    /// The MSI capability discovery found on `device`, its message control read now.
    pub fn of(config: &impl ConfigAccess, device: &PciDevice) -> Result<Self, MsiError> {
        let capability = device
            .capability(CapabilityId::Msi)
            .ok_or(MsiError::NoCapability)?;
        Self::at(config, device.bdf, u16::from(capability.offset))
    }

    /// The capability at `offset` of `bdf`, if the ID byte there says MSI.
    fn at(config: &impl ConfigAccess, bdf: Bdf, offset: u16) -> Result<Self, MsiError> {
        let header = config.read32(bdf, offset);
        if header as u8 != CapabilityId::Msi.raw() {
            return Err(MsiError::NoCapability);
        }
        Ok(Self {
            bdf,
            offset,
            control: (header >> 16) as u16,
        })
    }

    /// Offset of the capability header.
    pub fn offset(&self) -> u16 {
        self.offset
    }

    /// Whether the address register is 64 bits wide.
    pub fn is_64bit(&self) -> bool {
        self.control & CONTROL_64BIT != 0
    }

    /// Whether the function has per-vector mask bits.
    pub fn maskable(&self) -> bool {
        self.control & CONTROL_MASKABLE != 0
    }

    /// Messages the function can send (MMC: 1, 2, 4 .. 32).
    pub fn vectors_capable(&self) -> u8 {
        1 << ((self.control >> CONTROL_CAPABLE_SHIFT) & 0b111).min(5)
    }

    /// Whether MSI is enabled now.
    pub fn is_enabled(&self, config: &impl ConfigAccess) -> bool {
        self.read_control(config) & CONTROL_ENABLE != 0
    }

    /// Disables MSI, then writes one message: `address` (upper address 0 on a 64-bit
    /// capability) and `data`, with MME = 0 (one message). MSI stays disabled until
    /// [`Msi::enable`], so the function never sends a half-written message.
    pub fn program(
        &self,
        config: &impl ConfigAccess,
        address: u32,
        data: u32,
    ) -> Result<(), MsiError> {
        if address & 0xfff0_0000 != INTERRUPT_WINDOW {
            return Err(MsiError::NotAnInterruptAddress(address));
        }
        if data > 0xffff {
            return Err(MsiError::DataTooWide(data));
        }
        let control = self.read_control(config) & !(CONTROL_ENABLE | CONTROL_MULTIPLE_ENABLE);
        self.write_control(config, control);
        config.write32(self.bdf, self.offset + ADDRESS_LOW, address);
        let data_offset = if self.is_64bit() {
            config.write32(self.bdf, self.offset + ADDRESS_HIGH, 0);
            DATA_64BIT
        } else {
            DATA_32BIT
        };
        // The upper half is extended message data or reserved: 0 either way.
        config.write32(self.bdf, self.offset + data_offset, data);
        Ok(())
    }

    /// Sets the MSI enable bit.
    pub fn enable(&self, config: &impl ConfigAccess) {
        self.write_control(config, self.read_control(config) | CONTROL_ENABLE);
    }

    /// Clears the MSI enable bit.
    pub fn disable(&self, config: &impl ConfigAccess) {
        self.write_control(config, self.read_control(config) & !CONTROL_ENABLE);
    }

    /// Masks or unmasks message 0 (per-vector masking only).
    pub fn set_mask(&self, config: &impl ConfigAccess, mask: Mask) -> Result<(), MsiError> {
        if !self.maskable() {
            return Err(MsiError::NoMasking);
        }
        let at = self.offset
            + if self.is_64bit() {
                MASK_64BIT
            } else {
                MASK_32BIT
            };
        let bits = config.read32(self.bdf, at);
        let bits = match mask {
            Mask::Masked => bits | 1,
            Mask::Unmasked => bits & !1,
        };
        config.write32(self.bdf, at, bits);
        Ok(())
    }

    fn read_control(&self, config: &impl ConfigAccess) -> u16 {
        (config.read32(self.bdf, self.offset) >> 16) as u16
    }

    /// Writes message control; the ID and next pointer in the low half are read-only and
    /// written back as read.
    fn write_control(&self, config: &impl ConfigAccess, control: u16) {
        let header = config.read32(self.bdf, self.offset) & 0xffff;
        config.write32(self.bdf, self.offset, u32::from(control) << 16 | header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    /// 256 bytes of configuration space holding one MSI capability at 0x40 whose read-only
    /// bits (ID, next pointer, the capability bits of message control) ignore writes.
    struct Space {
        bytes: RefCell<[u8; 256]>,
        writes: RefCell<alloc::vec::Vec<(u16, u32)>>,
    }

    impl Space {
        fn msi(control: u16) -> Self {
            let mut bytes = [0u8; 256];
            bytes[0x40] = 0x05;
            bytes[0x41] = 0x00;
            bytes[0x42..0x44].copy_from_slice(&control.to_le_bytes());
            Self {
                bytes: RefCell::new(bytes),
                writes: RefCell::new(alloc::vec::Vec::new()),
            }
        }

        fn dword(&self, offset: u16) -> u32 {
            let at = usize::from(offset);
            let bytes = self.bytes.borrow();
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        }
    }

    impl ConfigAccess for Space {
        fn read32(&self, _bdf: Bdf, offset: u16) -> u32 {
            self.dword(offset)
        }

        fn write32(&self, _bdf: Bdf, offset: u16, value: u32) {
            self.writes.borrow_mut().push((offset, value));
            let mut value = value;
            if offset == 0x40 {
                // ID, next and the read-only control bits (MMC, 64-bit, maskable) keep
                // their values; enable and MME are writable.
                let writable = 0x0071_0000;
                value = (self.dword(0x40) & !writable) | (value & writable);
            }
            let at = usize::from(offset);
            self.bytes.borrow_mut()[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }

        fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
            let aligned = offset & !3;
            let shift = u32::from(offset & 2) * 8;
            let merged = (self.dword(aligned) & !(0xffff << shift)) | (u32::from(value) << shift);
            self.write32(bdf, aligned, merged);
        }
    }

    fn bdf() -> Bdf {
        "0000:00:04.0".parse().unwrap()
    }

    #[test]
    fn edu_like_capability_is_programmed_and_enabled() {
        // QEMU's edu: 64-bit, one message, no masking (`msi_init(pdev, 0, 1, true, false)`).
        let space = Space::msi(CONTROL_64BIT);
        let msi = Msi::at(&space, bdf(), 0x40).unwrap();
        assert!(msi.is_64bit() && !msi.maskable() && !msi.is_enabled(&space));
        assert_eq!(msi.vectors_capable(), 1);
        msi.program(&space, 0xfee0_00b0, 0).unwrap();
        assert_eq!(space.dword(0x44), 0xfee0_00b0);
        assert_eq!(space.dword(0x48), 0);
        assert_eq!(space.dword(0x4c), 0);
        assert!(!msi.is_enabled(&space));
        msi.enable(&space);
        assert!(msi.is_enabled(&space));
        assert_eq!(
            space.dword(0x40) >> 16,
            u32::from(CONTROL_64BIT | CONTROL_ENABLE)
        );
        assert_eq!(space.dword(0x40) & 0xffff, 0x0005);
        // Reprogramming disables first, so no message is sent half-written.
        space.writes.borrow_mut().clear();
        msi.program(&space, 0xfee0_1000, 0x31).unwrap();
        let writes = space.writes.borrow();
        assert_eq!(writes[0], (0x40, u32::from(CONTROL_64BIT) << 16 | 0x0005));
        assert_eq!(space.dword(0x4c), 0x31);
        assert!(!msi.is_enabled(&space));
        drop(writes);
        msi.enable(&space);
        msi.disable(&space);
        assert!(!msi.is_enabled(&space));
        assert_eq!(msi.set_mask(&space, Mask::Masked), Err(MsiError::NoMasking));
    }

    #[test]
    fn a_32bit_maskable_capability_uses_the_short_layout() {
        let space = Space::msi(CONTROL_MASKABLE | 0b011 << CONTROL_CAPABLE_SHIFT);
        let msi = Msi::at(&space, bdf(), 0x40).unwrap();
        assert!(!msi.is_64bit() && msi.maskable());
        assert_eq!(msi.vectors_capable(), 8);
        msi.program(&space, 0xfee0_0010, 7).unwrap();
        assert_eq!((space.dword(0x44), space.dword(0x48)), (0xfee0_0010, 7));
        msi.set_mask(&space, Mask::Masked).unwrap();
        assert_eq!(space.dword(0x4c), 1);
        msi.set_mask(&space, Mask::Unmasked).unwrap();
        assert_eq!(space.dword(0x4c), 0);
    }

    #[test]
    fn bad_messages_and_missing_capabilities_are_refused() {
        let space = Space::msi(CONTROL_64BIT);
        let msi = Msi::at(&space, bdf(), 0x40).unwrap();
        assert_eq!(
            msi.program(&space, 0x1234_0000, 0),
            Err(MsiError::NotAnInterruptAddress(0x1234_0000))
        );
        assert_eq!(
            msi.program(&space, 0xfee0_0000, 0x1_0000),
            Err(MsiError::DataTooWide(0x1_0000))
        );
        assert!(space.writes.borrow().is_empty());
        assert_eq!(Msi::at(&space, bdf(), 0x50), Err(MsiError::NoCapability));
    }
}

//! Builds fake functions the way QEMU lays them out: header, BARs with size masks, and
//! capability lists linked in the order they are added.

use super::fake::Function;

/// Builds one [`Function`].
pub(super) struct FunctionBuilder {
    function: Function,
    /// Where the next standard capability's offset is written (the head pointer, then the
    /// last capability's next byte).
    next_link: u16,
    /// The last extended capability added.
    last_extended: Option<u16>,
}

impl FunctionBuilder {
    fn new(vendor: u16, device: u16, class: u32, header_type: u8, bar_count: usize) -> Self {
        let mut function = Function::new(bar_count);
        function.put32(0x00, u32::from(vendor) | (u32::from(device) << 16));
        function.put32(0x08, class << 8);
        function.put8(0x0e, header_type);
        let next_link = if header_type & 0x7f == 2 { 0x14 } else { 0x34 };
        FunctionBuilder {
            function,
            next_link,
            last_extended: None,
        }
    }

    /// A type 0 function.
    pub(super) fn endpoint(vendor: u16, device: u16, class: u32) -> Self {
        Self::new(vendor, device, class, 0x00, 6)
    }

    /// A type 1 function (class 060400) with these bus numbers.
    pub(super) fn bridge(vendor: u16, device: u16, buses: [u8; 3]) -> Self {
        let [primary, secondary, subordinate] = buses;
        let builder = Self::new(vendor, device, 0x06_04_00, 0x01, 2);
        builder.set32(
            0x18,
            u32::from(primary) | (u32::from(secondary) << 8) | (u32::from(subordinate) << 16),
        )
    }

    /// A type 2 (CardBus) function with one BAR slot.
    pub(super) fn cardbus(vendor: u16, device: u16) -> Self {
        Self::new(vendor, device, 0x06_07_00, 0x02, 1)
    }

    /// Sets the revision ID.
    pub(super) fn revision(mut self, revision: u8) -> Self {
        self.function.put8(0x08, revision);
        self
    }

    /// Sets bit 7 of the header type.
    pub(super) fn multifunction(mut self) -> Self {
        let header = self.function.bytes[0x0e] | 0x80;
        self.function.put8(0x0e, header);
        self
    }

    /// Sets the command register.
    pub(super) fn command(mut self, command: u16) -> Self {
        self.function.put16(0x04, command);
        self
    }

    /// Sets status register bits.
    pub(super) fn status(mut self, bits: u16) -> Self {
        let status = u16::from_le_bytes([self.function.bytes[6], self.function.bytes[7]]);
        self.function.put16(0x06, status | bits);
        self
    }

    /// A BAR dword with its writable bits, exactly as given.
    pub(super) fn bar_raw(mut self, index: u16, value: u32, writable: u32) -> Self {
        self.function.put32(0x10 + 4 * index, value);
        self.function.bar_writable[usize::from(index)] = Some(writable);
        self
    }

    /// A 32-bit memory BAR of `size` bytes at `address`.
    pub(super) fn bar32(self, index: u16, address: u32, size: u32, prefetchable: bool) -> Self {
        let flags = if prefetchable { 0x8 } else { 0x0 };
        self.bar_raw(index, address | flags, !(size - 1))
    }

    /// A 64-bit memory BAR of `size` bytes at `address`, in slots `index` and `index + 1`.
    pub(super) fn bar64(self, index: u16, address: u64, size: u64, prefetchable: bool) -> Self {
        let flags = if prefetchable { 0xc } else { 0x4 };
        let writable = !(size - 1);
        self.bar_raw(index, address as u32 | flags, writable as u32)
            .bar_raw(index + 1, (address >> 32) as u32, (writable >> 32) as u32)
    }

    /// An I/O BAR of `size` ports at `port` (decoding 32 address bits).
    pub(super) fn io_bar(self, index: u16, port: u32, size: u32) -> Self {
        self.bar_raw(index, port | 0x1, !(size - 1) & !0x3)
    }

    /// Appends a standard capability with `id` at `offset`.
    pub(super) fn cap(mut self, offset: u8, id: u8) -> Self {
        self = self.status(1 << 4);
        self.function.put8(self.next_link, offset);
        self.function.put8(u16::from(offset), id);
        self.function.put8(u16::from(offset) + 1, 0);
        self.next_link = u16::from(offset) + 1;
        self
    }

    /// Appends a PCI Express capability (version 2) of `port_type` at `offset`.
    pub(super) fn pcie(self, offset: u8, port_type: u8) -> Self {
        self.cap(offset, 0x10)
            .set16(u16::from(offset) + 2, 0x2 | (u16::from(port_type) << 4))
    }

    /// Appends an extended capability with `id` (version 1) at `offset`.
    pub(super) fn ext_cap(mut self, offset: u16, id: u16) -> Self {
        if let Some(previous) = self.last_extended {
            let header = self.function.get32(previous);
            self.function
                .put32(previous, (header & 0x000f_ffff) | (u32::from(offset) << 20));
        }
        self.function.put32(offset, u32::from(id) | (1 << 16));
        self.last_extended = Some(offset);
        self
    }

    /// Appends an ACS extended capability with these registers at `offset`.
    pub(super) fn acs(self, offset: u16, capability: u16, control: u16) -> Self {
        self.ext_cap(offset, 0x000d).set32(
            offset + 4,
            u32::from(capability) | (u32::from(control) << 16),
        )
    }

    /// Sets a 16-bit word.
    pub(super) fn set16(mut self, offset: u16, value: u16) -> Self {
        self.function.put16(offset, value);
        self
    }

    /// Sets a dword.
    pub(super) fn set32(mut self, offset: u16, value: u32) -> Self {
        self.function.put32(offset, value);
        self
    }

    /// The finished function.
    pub(super) fn build(self) -> Function {
        self.function
    }
}

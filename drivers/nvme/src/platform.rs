//! What the driver needs from the machine, as four small traits: register access to BAR 0, DMA
//! memory mapped into the driver's own address space, MSI-X deliveries, and a clock. The
//! kernel's boot glue implements them over `DriverDevice`; the host tests over a simulated
//! controller. Nothing here names a physical address: the device sees IOVAs only.

/// Why a register access failed (an offset outside the mapped BAR, for example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterError {
    /// Offset in BAR 0.
    pub offset: u64,
}

/// 32-bit register access at BAR 0 offsets.
///
/// The 64-bit registers (CAP, ASQ, ACQ) are accessed as two 32-bit halves, low half first,
/// which the NVMe specification allows (NVMe 1.4, 3.1.1) and every controller accepts.
pub trait Registers {
    /// 32-bit read at `offset`.
    fn read32(&mut self, offset: u64) -> Result<u32, RegisterError>;
    /// 32-bit write at `offset`.
    fn write32(&mut self, offset: u64, value: u32) -> Result<(), RegisterError>;

    /// 64-bit read at `offset`, as two 32-bit reads (low, then high).
    fn read64(&mut self, offset: u64) -> Result<u64, RegisterError> {
        let low = self.read32(offset)?;
        let high = self.read32(offset + 4)?;
        Ok(u64::from(low) | (u64::from(high) << 32))
    }

    /// 64-bit write at `offset`, as two 32-bit writes (low, then high).
    fn write64(&mut self, offset: u64, value: u64) -> Result<(), RegisterError> {
        self.write32(offset, value as u32)?;
        self.write32(offset + 4, (value >> 32) as u32)
    }
}

/// Which way the device may move data through a DMA region (the IOMMU permission).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The device only reads it (submission queues, PRP lists, data to write).
    ToDevice,
    /// The device only writes it (completion queues, Identify data, data read).
    FromDevice,
}

/// Why a DMA operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// No memory, or no room in the address space, for `len` bytes.
    Allocate {
        /// Bytes asked for.
        len: usize,
    },
    /// A CPU access outside the region.
    OutOfBounds {
        /// Offset in the region.
        offset: usize,
        /// Length of the access.
        len: usize,
    },
}

/// A DMA region: memory the device reaches at [`DmaRegion::iova`].
pub trait DmaRegion {
    /// Where the device sees the region's first byte, in the driver's address space.
    fn iova(&self) -> u64;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether the region is empty (never, for a region the driver asked for).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// DMA memory: fresh zeroed regions mapped into the driver's address space, and their retirement.
pub trait DmaMemory {
    /// One mapped region. Not `Clone`: whoever holds it may retire it.
    type Region: DmaRegion;

    /// Allocates and maps `len` bytes, zeroed, page-aligned, the device allowed `direction`.
    fn allocate(&mut self, len: usize, direction: Direction) -> Result<Self::Region, DmaError>;
    /// Copies `out.len()` bytes from `region` at `offset` into `out`.
    fn read(
        &mut self,
        region: &Self::Region,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), DmaError>;
    /// Copies `data` into `region` at `offset`.
    fn write(&mut self, region: &Self::Region, offset: usize, data: &[u8]) -> Result<(), DmaError>;
    /// Unmaps the region. Its memory is not reused before the IOTLB invalidation covering it has
    /// completed (the platform's duty, batched or not).
    fn retire(&mut self, region: Self::Region);
}

/// Why an MSI-X vector could not be enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptError {
    /// The MSI-X table index.
    pub vector: u16,
}

/// An interrupt wait ran out of its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeout {
    /// The budget, in microseconds.
    pub budget_us: u64,
}

/// MSI-X deliveries, counted per table index.
pub trait Interrupts {
    /// Programs and unmasks MSI-X table entry `vector`.
    fn enable_vector(&mut self, vector: u16) -> Result<(), InterruptError>;
    /// How many interrupts entry `vector` has delivered so far.
    fn deliveries(&mut self, vector: u16) -> u64;
    /// Waits until entry `vector` has delivered more than `seen` interrupts, for at most
    /// `budget_us`; returns the new count.
    fn wait_for_interrupt(
        &mut self,
        vector: u16,
        seen: u64,
        budget_us: u64,
    ) -> Result<u64, WaitTimeout>;
}

/// A monotonic clock.
pub trait Clock {
    /// Microseconds since some fixed point.
    fn now_us(&mut self) -> u64;
}

/// Everything the driver needs, implemented by one value (the boot glue's device session).
pub trait Platform: Registers + DmaMemory + Interrupts + Clock {}

impl<T: Registers + DmaMemory + Interrupts + Clock> Platform for T {}

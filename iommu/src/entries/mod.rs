//! Typed VT-d legacy-mode structures: root, context and second-level paging entries,
//! queued-invalidation descriptors, the register-based invalidation commands, and interrupt
//! remapping table entries with the remappable MSI format.
//!
//! Every bit pattern the IOMMU sees is built here, by a constructor that takes typed values and
//! cites the section of the Intel VT-d specification (rev. 4.x numbering) that defines the
//! layout. Nothing outside this module assembles entries from raw bits (no `addr | 3`).

mod addr;
mod context;
mod domain;
mod irte;
mod queued;
mod register;
mod root;
mod scope;
mod slpte;

pub use addr::{AddressError, Iova, PageSize, PhysAddr};
pub use context::{
    ContextAddressWidth, ContextEntry, ContextTranslation, FaultProcessing, TranslationType,
};
pub use domain::{DomainId, DomainIdAllocator, DomainIdError, DomainLimit};
pub use irte::{
    BusRange, DeliveryMode, DestinationMode, InterruptEntry, InterruptIndex, InterruptTableAddress,
    InterruptTableSize, InterruptVector, RemappableMessage, RemappedInterrupt, SourceValidation,
    TriggerMode,
};
pub use queued::{
    Fence, InterruptEntryScope, InvalidationDescriptor, StatusAddress, WaitCompletion,
};
pub use register::{
    ContextCommand, ContextCommandStatus, InvalidateAddress, IotlbCommand, IotlbCommandStatus,
};
pub use root::RootEntry;
pub use scope::{
    ContextCacheScope, ContextGranularity, Drain, FunctionMask, InvalidationHint, IotlbGranularity,
    IotlbScope, PageSelective, SourceId,
};
pub use slpte::{Access, SlPte, Snoop};

/// Why an entry or command could not be built from the values given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// An address is not aligned as the field requires (4 KiB for table pointers, the page size
    /// for leaves, 4 bytes for a wait status address, `2^(12+order)` for a page-selective range).
    Misaligned,
    /// A value does not fit in its field (for example an AVL value above 15).
    ValueTooLarge,
}

/// Extracts `width` bits of `value` starting at bit `low`.
pub(crate) const fn field(value: u64, low: u32, width: u32) -> u64 {
    (value >> low) & ((1u64 << width) - 1)
}

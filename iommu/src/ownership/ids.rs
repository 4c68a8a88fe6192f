//! The names the ownership table keys its records by: groups, owners and address spaces.

use core::fmt;

/// Defines a `u32` newtype with `new`, `get` and a plain-number `Display`.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name(u32);

        impl $name {
            /// The id numbered `raw`.
            pub const fn new(raw: u32) -> Self {
                Self(raw)
            }

            /// The number inside.
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type! {
    /// An IOMMU group: the devices that cannot be isolated from each other and so change DMA
    /// owner together.
    ///
    /// A stand-in for the `GroupId` of `crate::group` (being written beside this module). The
    /// table only stores, compares and prints group ids — it needs `Copy + Ord + Display` and
    /// nothing else — so the swap is one line here: replace this definition by
    /// `pub use crate::group::GroupId;` (and build test ids with that type's constructor).
    GroupId
}

id_type! {
    /// A party that can hold devices: a passthrough driver or application.
    ///
    /// A name, not a capability: the kernel mints one per owner and keeps it inside that
    /// owner's handles, and passes the id of the handle being used. The table checks that the
    /// id matches the holder; it cannot check who is calling.
    OwnerId
}

id_type! {
    /// An I/O address space (a domain: IOVA -> physical, with permissions), chosen by the
    /// kernel when it creates one (for example from its domain id).
    AddressSpaceId
}

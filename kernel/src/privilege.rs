//! The composition root's capability. Some kernel services reach any device or any memory:
//! raw config space of every function, a register window at any address. Drivers must never
//! have them, so they take a `&Privileged`, which only `unsafe` code can mint: the boot crate
//! mints one for itself and its in-kernel scenarios; driver crates are `forbid(unsafe_code)`.
//! (Tock's capabilities, CONVENTIONS.md item 5.)

/// Proof that the holder is the composition root.
#[derive(Debug)]
pub struct Privileged {
    _private: (),
}

impl Privileged {
    /// Mints the capability.
    ///
    /// # Safety
    ///
    /// Only the composition root (the boot crate) may call this. Whoever holds the value can
    /// rewrite any device's configuration (BARs, bus mastering, MSI) and map any physical
    /// range, bypassing the ownership rules; handing it to a driver breaks isolation.
    pub const unsafe fn assume() -> Self {
        Self { _private: () }
    }
}

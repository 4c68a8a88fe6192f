//! Device interrupt vectors 48..=239, one per MSI: each is owned by a [`DeviceVector`] from
//! [`allocate`] until that value is dropped. Every delivery is counted per vector; an owned
//! vector's callback runs in the interrupt; a delivery on a vector nobody owns is counted as
//! stray and logged, never fatal (a misprogrammed or malicious device must not stop the
//! kernel).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use moat_iommu::entries::InterruptVector;

/// The first vector handed out.
pub const FIRST: u8 = 48;
/// The last vector handed out (240..=254 stay free for the kernel; 255 is spurious).
pub const LAST: u8 = 239;
const COUNT: usize = (LAST - FIRST) as usize + 1;

/// Runs in interrupt context (interrupts disabled) with the vector that fired; the local
/// APIC's end-of-interrupt is sent after it returns.
pub type Callback = fn(u8);

/// Owner slot values: free, owned without a callback, or the callback's address.
const FREE: usize = 0;
const OWNED: usize = 1;

/// Why no vector could be handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorError {
    /// Every vector in 48..=239 is owned.
    Exhausted,
}

/// Which vectors are owned, by whom, and how often each fired.
#[derive(Debug)]
pub struct VectorTable {
    owners: [AtomicUsize; COUNT],
    deliveries: [AtomicU64; COUNT],
    stray: AtomicU64,
}

/// What one delivery found.
#[derive(Clone, Copy, Debug)]
pub enum Delivery {
    /// An owner without a callback.
    Owned,
    /// An owner whose callback must run.
    Callback(Callback),
    /// Nobody owns the vector: the n-th stray delivery since boot.
    Stray(u64),
    /// Not a device vector at all.
    NotDeviceVector,
}

impl VectorTable {
    /// A table with every vector free.
    pub const fn new() -> Self {
        Self {
            owners: [const { AtomicUsize::new(FREE) }; COUNT],
            deliveries: [const { AtomicU64::new(0) }; COUNT],
            stray: AtomicU64::new(0),
        }
    }

    fn slot(vector: u8) -> Option<usize> {
        (FIRST..=LAST)
            .contains(&vector)
            .then(|| usize::from(vector - FIRST))
    }

    /// Hands out the lowest free vector, its delivery count reset, with `callback`.
    pub fn allocate(
        &'static self,
        callback: Option<Callback>,
    ) -> Result<DeviceVector, VectorError> {
        let owner = callback.map_or(OWNED, |callback| callback as usize);
        for (slot, state) in self.owners.iter().enumerate() {
            if state.load(Ordering::Acquire) != FREE {
                continue;
            }
            self.deliveries[slot].store(0, Ordering::Relaxed);
            if state
                .compare_exchange(FREE, owner, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(DeviceVector {
                    table: self,
                    vector: FIRST + slot as u8,
                });
            }
        }
        Err(VectorError::Exhausted)
    }

    /// Counts one delivery on `vector` and says what to do with it.
    pub fn record(&self, vector: u8) -> Delivery {
        let Some(slot) = Self::slot(vector) else {
            return Delivery::NotDeviceVector;
        };
        self.deliveries[slot].fetch_add(1, Ordering::Relaxed);
        match self.owners[slot].load(Ordering::Acquire) {
            FREE => Delivery::Stray(self.stray.fetch_add(1, Ordering::Relaxed) + 1),
            OWNED => Delivery::Owned,
            callback => {
                // SAFETY: only `allocate` stores into `owners`, and any value other than FREE
                // and OWNED it stores is a `Callback` function pointer cast to usize.
                Delivery::Callback(unsafe { core::mem::transmute::<usize, Callback>(callback) })
            }
        }
    }

    /// Deliveries on `vector` since it was last handed out (or since boot if never), owned
    /// or not; 0 outside 48..=239.
    pub fn deliveries(&self, vector: u8) -> u64 {
        Self::slot(vector).map_or(0, |slot| self.deliveries[slot].load(Ordering::Relaxed))
    }

    /// Deliveries on vectors nobody owned.
    pub fn stray(&self) -> u64 {
        self.stray.load(Ordering::Relaxed)
    }

    /// Whether `vector` is owned now.
    pub fn is_owned(&self, vector: u8) -> bool {
        Self::slot(vector).is_some_and(|slot| self.owners[slot].load(Ordering::Acquire) != FREE)
    }
}

impl Default for VectorTable {
    fn default() -> Self {
        Self::new()
    }
}

/// One owned device vector. Not `Clone`: whoever holds it owns the vector, and dropping it
/// frees the vector (deliveries on it are then stray). Drop it only once nothing can send it:
/// an interrupt remapping entry naming it holds it until the entry is cleared.
#[derive(Debug)]
pub struct DeviceVector {
    table: &'static VectorTable,
    vector: u8,
}

impl DeviceVector {
    /// The vector number.
    pub fn number(&self) -> u8 {
        self.vector
    }

    /// The vector as an interrupt remapping entry takes it.
    pub fn interrupt_vector(&self) -> InterruptVector {
        let Some(vector) = InterruptVector::new(self.vector) else {
            unreachable!("device vectors are 48..=239");
        };
        vector
    }

    /// Deliveries since it was handed out.
    pub fn deliveries(&self) -> u64 {
        self.table.deliveries(self.vector)
    }
}

impl Drop for DeviceVector {
    fn drop(&mut self) {
        if let Some(slot) = VectorTable::slot(self.vector) {
            self.table.owners[slot].store(FREE, Ordering::Release);
        }
    }
}

/// The machine's device vectors.
static VECTORS: VectorTable = VectorTable::new();

/// Hands out a device vector from the machine's table; `callback` runs on each delivery.
pub fn allocate(callback: Option<Callback>) -> Result<DeviceVector, VectorError> {
    VECTORS.allocate(callback)
}

/// Deliveries on `vector` since it was last handed out (owned or not).
pub fn deliveries(vector: u8) -> u64 {
    VECTORS.deliveries(vector)
}

/// Deliveries on vectors nobody owned, since boot.
pub fn stray_count() -> u64 {
    VECTORS.stray()
}

/// Whether `vector` is owned now.
pub fn is_owned(vector: u8) -> bool {
    VECTORS.is_owned(vector)
}

/// The IDT's entry for vectors 48..=239: count, call the owner or report a stray, then EOI.
pub(super) fn dispatch(vector: u8) {
    match VECTORS.record(vector) {
        Delivery::Callback(callback) => callback(vector),
        Delivery::Stray(count) => crate::warn!(
            "irq",
            "stray interrupt on vector {vector}: no owner; counted and ignored ({count} stray so far)"
        ),
        Delivery::Owned | Delivery::NotDeviceVector => {}
    }
    super::apic::end_of_interrupt();
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    fn table() -> &'static VectorTable {
        Box::leak(Box::new(VectorTable::new()))
    }

    fn noted(_vector: u8) {}

    #[test]
    fn vectors_are_owned_until_dropped() {
        let table = table();
        let first = table.allocate(None).unwrap();
        let second = table.allocate(Some(noted)).unwrap();
        assert_eq!((first.number(), second.number()), (48, 49));
        assert!(table.is_owned(48) && table.is_owned(49) && !table.is_owned(50));
        assert_eq!(first.interrupt_vector().get(), 48);
        drop(first);
        assert!(!table.is_owned(48));
        assert_eq!(table.allocate(None).unwrap().number(), 48);
    }

    #[test]
    fn deliveries_are_counted_and_strays_reported() {
        let table = table();
        let owned = table.allocate(None).unwrap();
        let with_callback = table.allocate(Some(noted)).unwrap();
        assert!(matches!(table.record(48), Delivery::Owned));
        assert!(matches!(table.record(48), Delivery::Owned));
        let expected = noted as Callback as usize;
        assert!(matches!(table.record(49), Delivery::Callback(f) if f as usize == expected));
        assert_eq!((owned.deliveries(), with_callback.deliveries()), (2, 1));
        assert!(matches!(table.record(100), Delivery::Stray(1)));
        assert!(matches!(table.record(239), Delivery::Stray(2)));
        assert_eq!((table.deliveries(100), table.stray()), (1, 2));
        assert!(matches!(table.record(47), Delivery::NotDeviceVector));
        assert!(matches!(table.record(240), Delivery::NotDeviceVector));
        assert_eq!(table.deliveries(47), 0);
        // A vector handed out again starts from zero; after its owner drops it, it is stray.
        drop(owned);
        assert!(matches!(table.record(48), Delivery::Stray(3)));
        let again = table.allocate(None).unwrap();
        assert_eq!((again.number(), again.deliveries()), (48, 0));
    }

    #[test]
    fn the_range_runs_out() {
        let table = table();
        let all: Vec<DeviceVector> = (FIRST..=LAST)
            .map(|_| table.allocate(None).unwrap())
            .collect();
        assert_eq!(all.len(), 192);
        assert_eq!(all.last().map(DeviceVector::number), Some(LAST));
        assert_eq!(table.allocate(None).unwrap_err(), VectorError::Exhausted);
        drop(all);
        assert!(table.allocate(None).is_ok());
    }
}

//! Identify data (NVMe 1.4, 5.15.2): the controller and namespace data structures and the
//! active namespace list, parsed and checked before anything is built on them.

use crate::registers::{CQ_ENTRY_SHIFT, PAGE_SIZE, SQ_ENTRY_SHIFT};

/// Size of every Identify data structure.
pub(crate) const IDENTIFY_BYTES: usize = 4096;

/// Why Identify data is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifyError {
    /// SQES or CQES does not allow the 64/16-byte entries the driver uses.
    EntrySizes {
        /// SQES byte.
        submission: u8,
        /// CQES byte.
        completion: u8,
    },
    /// MDTS allows less than one block of the namespace.
    TransferSize {
        /// The largest transfer in bytes.
        max: usize,
        /// The block size.
        block: u32,
    },
    /// The namespace's size fields are inconsistent (NCAP > NSZE, or the byte size overflows).
    NamespaceSize {
        /// NSZE.
        size: u64,
        /// NCAP.
        capacity: u64,
    },
    /// The namespace is not active (NSZE 0).
    Inactive {
        /// Namespace ID.
        namespace: u32,
    },
    /// FLBAS names a format past NLBAF.
    LbaFormat {
        /// The format index in use.
        index: u8,
        /// Formats the namespace has.
        count: u8,
    },
    /// The format has metadata, which this driver does not handle.
    Metadata {
        /// Metadata bytes per block.
        bytes: u16,
    },
    /// The block size is outside 512 B..=64 KiB.
    BlockSize {
        /// LBADS (log2 of the block size).
        shift: u8,
    },
}

impl core::fmt::Display for IdentifyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::EntrySizes {
                submission,
                completion,
            } => write!(
                f,
                "SQES {submission:#x} / CQES {completion:#x} exclude 64/16-byte entries"
            ),
            Self::TransferSize { max, block } => {
                write!(
                    f,
                    "largest transfer {max} bytes is below one {block}-byte block"
                )
            }
            Self::NamespaceSize { size, capacity } => {
                write!(
                    f,
                    "namespace size {size} / capacity {capacity} inconsistent"
                )
            }
            Self::Inactive { namespace } => write!(f, "namespace {namespace} is not active"),
            Self::LbaFormat { index, count } => {
                write!(f, "LBA format {index} in use, {count} defined")
            }
            Self::Metadata { bytes } => write!(f, "{bytes} metadata bytes per block"),
            Self::BlockSize { shift } => write!(f, "block size 2^{shift} unsupported"),
        }
    }
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from(u32_at(data, at)) | (u64::from(u32_at(data, at + 4)) << 32)
}

/// What the driver takes from Identify Controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerIdentity {
    /// PCI vendor ID (VID).
    pub vendor: u16,
    /// Serial number, ASCII, space padded.
    pub serial: [u8; 20],
    /// Model number, ASCII, space padded.
    pub model: [u8; 40],
    /// Largest transfer in bytes (MDTS, in 4 KiB pages since MPSMIN is 4 KiB), `None` if the
    /// controller sets no limit.
    pub max_transfer: Option<usize>,
    /// Number of namespaces (NN).
    pub namespaces: u32,
    /// A volatile write cache is present (VWC bit 0): Flush matters.
    pub volatile_write_cache: bool,
}

impl ControllerIdentity {
    /// Parses and checks the Identify Controller data structure (CNS 01h).
    pub fn parse(data: &[u8; IDENTIFY_BYTES]) -> Result<Self, IdentifyError> {
        let (sqes, cqes) = (data[512], data[513]);
        let fits =
            |byte: u8, shift: u32| u32::from(byte & 0xf) <= shift && shift <= u32::from(byte >> 4);
        if !fits(sqes, SQ_ENTRY_SHIFT) || !fits(cqes, CQ_ENTRY_SHIFT) {
            return Err(IdentifyError::EntrySizes {
                submission: sqes,
                completion: cqes,
            });
        }
        let mdts = data[77];
        let max_transfer = match mdts {
            0 => None,
            // Beyond 2^31 bytes the limit never binds; avoid the overflow.
            1..=19 => Some(PAGE_SIZE << mdts),
            _ => None,
        };
        let mut serial = [0; 20];
        serial.copy_from_slice(&data[4..24]);
        let mut model = [0; 40];
        model.copy_from_slice(&data[24..64]);
        Ok(Self {
            vendor: u16_at(data, 0),
            serial,
            model,
            max_transfer,
            namespaces: u32_at(data, 516),
            volatile_write_cache: data[525] & 1 != 0,
        })
    }
}

/// What the driver takes from Identify Namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceIdentity {
    /// Namespace ID.
    pub id: u32,
    /// Size in blocks (NSZE).
    pub blocks: u64,
    /// Block size in bytes (from the LBA format in use).
    pub block_size: u32,
}

impl NamespaceIdentity {
    /// Parses and checks the Identify Namespace data structure (CNS 00h) of namespace `id`.
    pub fn parse(id: u32, data: &[u8; IDENTIFY_BYTES]) -> Result<Self, IdentifyError> {
        let size = u64_at(data, 0);
        let capacity = u64_at(data, 8);
        if size == 0 {
            return Err(IdentifyError::Inactive { namespace: id });
        }
        if capacity > size {
            return Err(IdentifyError::NamespaceSize { size, capacity });
        }
        // NLBAF is 0-based; FLBAS bits 3:0 with bits 6:5 as the upper index bits (NVMe 2.0).
        let count = data[25].saturating_add(1);
        let flbas = data[26];
        let index = (flbas & 0xf) | ((flbas >> 1) & 0x30);
        if index >= count || usize::from(index) >= 64 {
            return Err(IdentifyError::LbaFormat { index, count });
        }
        let format = u32_at(data, 128 + 4 * usize::from(index));
        let metadata = format as u16;
        if metadata != 0 {
            return Err(IdentifyError::Metadata { bytes: metadata });
        }
        let shift = (format >> 16) as u8;
        if !(9..=16).contains(&shift) {
            return Err(IdentifyError::BlockSize { shift });
        }
        if size.checked_mul(1 << shift).is_none() {
            return Err(IdentifyError::NamespaceSize { size, capacity });
        }
        Ok(Self {
            id,
            blocks: size,
            block_size: 1 << shift,
        })
    }
}

/// The first namespace in an active namespace ID list (CNS 02h), if any. The list is sorted
/// and ends at the first zero entry.
pub(crate) fn first_active_namespace(data: &[u8; IDENTIFY_BYTES]) -> Option<u32> {
    let first = u32_at(data, 0);
    // 0 ends the list; FFFFFFFFh is the broadcast value, never a namespace.
    (first != 0 && first != u32::MAX).then_some(first)
}

/// Test helpers: Identify data as a controller would return it.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::IDENTIFY_BYTES;

    /// Identify Controller data: QEMU-like entry sizes, `mdts`, `namespaces`.
    pub(crate) fn controller(mdts: u8, namespaces: u32) -> [u8; IDENTIFY_BYTES] {
        let mut data = [0u8; IDENTIFY_BYTES];
        data[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        data[4..24].copy_from_slice(b"sim-serial          ");
        data[24..64].copy_from_slice(b"simulated controller                    ");
        data[77] = mdts;
        data[512] = 0x66;
        data[513] = 0x44;
        data[516..520].copy_from_slice(&namespaces.to_le_bytes());
        data[525] = 1;
        data
    }

    /// Identify Namespace data: `blocks` blocks of 2^`shift` bytes, format 0.
    pub(crate) fn namespace(blocks: u64, shift: u8) -> [u8; IDENTIFY_BYTES] {
        let mut data = [0u8; IDENTIFY_BYTES];
        data[0..8].copy_from_slice(&blocks.to_le_bytes());
        data[8..16].copy_from_slice(&blocks.to_le_bytes());
        data[16..24].copy_from_slice(&blocks.to_le_bytes());
        data[130] = shift;
        data
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn controller_fields_are_read() {
        let identity = ControllerIdentity::parse(&controller(7, 256)).unwrap();
        assert_eq!(identity.vendor, 0x1b36);
        assert_eq!(identity.max_transfer, Some(512 * 1024));
        assert_eq!(identity.namespaces, 256);
        assert!(identity.volatile_write_cache);
        assert_eq!(&identity.serial[..10], b"sim-serial");
        assert_eq!(
            ControllerIdentity::parse(&controller(0, 1))
                .unwrap()
                .max_transfer,
            None
        );
    }

    #[test]
    fn entry_sizes_must_allow_64_and_16_bytes() {
        for (sqes, cqes) in [(0x77, 0x44), (0x55, 0x44), (0x66, 0x55), (0x66, 0x33)] {
            let mut data = controller(7, 1);
            data[512] = sqes;
            data[513] = cqes;
            assert_eq!(
                ControllerIdentity::parse(&data),
                Err(IdentifyError::EntrySizes {
                    submission: sqes,
                    completion: cqes
                })
            );
        }
    }

    #[test]
    fn namespace_fields_are_read() {
        let ns = NamespaceIdentity::parse(1, &namespace(2048, 9)).unwrap();
        assert_eq!(
            ns,
            NamespaceIdentity {
                id: 1,
                blocks: 2048,
                block_size: 512
            }
        );
        let mut data = namespace(100, 9);
        // Two formats, the second (4 KiB) in use.
        data[25] = 1;
        data[26] = 1;
        data[134] = 12;
        assert_eq!(NamespaceIdentity::parse(3, &data).unwrap().block_size, 4096);
    }

    #[test]
    fn bad_namespaces_are_refused() {
        assert_eq!(
            NamespaceIdentity::parse(1, &namespace(0, 9)),
            Err(IdentifyError::Inactive { namespace: 1 })
        );
        let mut data = namespace(10, 9);
        data[8] = 11;
        assert_eq!(
            NamespaceIdentity::parse(1, &data),
            Err(IdentifyError::NamespaceSize {
                size: 10,
                capacity: 11
            })
        );
        let mut data = namespace(10, 9);
        data[26] = 2;
        assert_eq!(
            NamespaceIdentity::parse(1, &data),
            Err(IdentifyError::LbaFormat { index: 2, count: 1 })
        );
        let mut data = namespace(10, 9);
        data[128] = 8;
        assert_eq!(
            NamespaceIdentity::parse(1, &data),
            Err(IdentifyError::Metadata { bytes: 8 })
        );
        for shift in [0, 8, 17, 0xff] {
            assert_eq!(
                NamespaceIdentity::parse(1, &namespace(10, shift)),
                Err(IdentifyError::BlockSize { shift })
            );
        }
        assert!(matches!(
            NamespaceIdentity::parse(1, &namespace(u64::MAX / 256, 9)),
            Err(IdentifyError::NamespaceSize { .. })
        ));
    }

    #[test]
    fn the_active_list_names_the_first_namespace() {
        let mut data = [0u8; IDENTIFY_BYTES];
        assert_eq!(first_active_namespace(&data), None);
        data[0..4].copy_from_slice(&2u32.to_le_bytes());
        data[4..8].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(first_active_namespace(&data), Some(2));
        data[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(first_active_namespace(&data), None);
    }
}

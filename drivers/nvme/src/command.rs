//! Submission and completion queue entries (NVMe 1.4, 4.2 and 4.6), the opcodes the driver
//! sends, and the completion status.

/// Admin opcodes (NVMe 1.4, 5).
pub(crate) mod admin {
    /// Delete I/O Submission Queue.
    pub(crate) const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub(crate) const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub(crate) const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub(crate) const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub(crate) const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub(crate) const SET_FEATURES: u8 = 0x09;
    /// Feature identifier: Number of Queues (NVMe 1.4, 5.21.1.7).
    pub(crate) const FEATURE_QUEUES: u32 = 0x07;
    /// Identify CNS: namespace data structure.
    pub(crate) const CNS_NAMESPACE: u32 = 0x00;
    /// Identify CNS: controller data structure.
    pub(crate) const CNS_CONTROLLER: u32 = 0x01;
    /// Identify CNS: active namespace ID list.
    pub(crate) const CNS_ACTIVE_NAMESPACES: u32 = 0x02;
}

/// NVM command set opcodes (NVMe 1.4, 6).
pub(crate) mod nvm {
    /// Flush.
    pub(crate) const FLUSH: u8 = 0x00;
    /// Write.
    pub(crate) const WRITE: u8 = 0x01;
    /// Read.
    pub(crate) const READ: u8 = 0x02;
}

/// Submission queue entry size in bytes.
pub(crate) const COMMAND_BYTES: usize = 64;
/// Completion queue entry size in bytes.
pub(crate) const COMPLETION_BYTES: usize = 16;

/// A command before it gets its command ID (CDW0 bits 31:16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Command {
    dwords: [u32; 16],
}

impl Command {
    /// A command with `opcode`, PRPs for data (PSDT 00b), not fused.
    pub(crate) const fn new(opcode: u8) -> Self {
        let mut dwords = [0; 16];
        dwords[0] = opcode as u32;
        Self { dwords }
    }

    /// Sets the namespace ID (CDW1).
    pub(crate) const fn namespace(mut self, id: u32) -> Self {
        self.dwords[1] = id;
        self
    }

    /// Sets PRP entry 1 and 2 (CDW6-9).
    pub(crate) const fn prps(mut self, first: u64, second: u64) -> Self {
        self.dwords[6] = first as u32;
        self.dwords[7] = (first >> 32) as u32;
        self.dwords[8] = second as u32;
        self.dwords[9] = (second >> 32) as u32;
        self
    }

    /// Sets command dword `index` (10..=15).
    pub(crate) const fn dword(mut self, index: usize, value: u32) -> Self {
        assert!(
            index >= 10 && index <= 15,
            "only CDW10-15 are command specific"
        );
        self.dwords[index] = value;
        self
    }

    /// The opcode.
    pub(crate) const fn opcode(&self) -> u8 {
        self.dwords[0] as u8
    }

    /// The 64 bytes to put in a submission queue, with command ID `id`.
    pub(crate) fn encode(&self, id: u16) -> [u8; COMMAND_BYTES] {
        let mut bytes = [0; COMMAND_BYTES];
        for (i, dword) in self.dwords.iter().enumerate() {
            let value = if i == 0 {
                dword | (u32::from(id) << 16)
            } else {
                *dword
            };
            bytes[i * 4..i * 4 + 4].copy_from_slice(&value.to_le_bytes());
        }
        bytes
    }
}

/// The status of a completed command (NVMe 1.4, 4.6.1): type, code and do-not-retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandStatus {
    /// Status Code Type (0 generic, 1 command specific, 2 media and data integrity, ...).
    pub code_type: u8,
    /// Status Code.
    pub code: u8,
    /// Do Not Retry.
    pub do_not_retry: bool,
}

impl CommandStatus {
    /// From completion dword 3 bits 31:17.
    const fn decode(dword3: u32) -> Self {
        Self {
            code: (dword3 >> 17) as u8,
            code_type: ((dword3 >> 25) & 7) as u8,
            do_not_retry: dword3 >> 31 != 0,
        }
    }

    /// Successful completion (type 0, code 0).
    pub const fn is_success(self) -> bool {
        self.code_type == 0 && self.code == 0
    }
}

impl core::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "status type {:#x} code {:#04x}{}",
            self.code_type,
            self.code,
            if self.do_not_retry {
                " (do not retry)"
            } else {
                ""
            }
        )
    }
}

/// A completion queue entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompletionEntry {
    /// Command specific result (DW0).
    pub(crate) result: u32,
    /// Submission queue head pointer when the entry was posted.
    pub(crate) submission_head: u16,
    /// The submission queue the command came from.
    pub(crate) submission_queue: u16,
    /// The command's ID.
    pub(crate) command_id: u16,
    /// The phase tag.
    pub(crate) phase: bool,
    /// The status.
    pub(crate) status: CommandStatus,
}

impl CompletionEntry {
    /// Decodes 16 bytes of a completion queue.
    pub(crate) fn decode(bytes: &[u8; COMPLETION_BYTES]) -> Self {
        let dword = |i: usize| {
            u32::from_le_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ])
        };
        let (dword2, dword3) = (dword(2), dword(3));
        Self {
            result: dword(0),
            submission_head: dword2 as u16,
            submission_queue: (dword2 >> 16) as u16,
            command_id: dword3 as u16,
            phase: (dword3 >> 16) & 1 != 0,
            status: CommandStatus::decode(dword3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_command_is_laid_out_as_the_specification_says() {
        let bytes = Command::new(nvm::READ)
            .namespace(1)
            .prps(0x1234_5000, 0x0000_0001_0000_0000)
            .dword(10, 0x89ab_cdef)
            .dword(11, 0x1)
            .dword(12, 7)
            .encode(0xbeef);
        assert_eq!(&bytes[0..4], &[0x02, 0, 0xef, 0xbe]);
        assert_eq!(&bytes[4..8], &1u32.to_le_bytes());
        assert_eq!(&bytes[24..32], &0x1234_5000u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &0x1_0000_0000u64.to_le_bytes());
        assert_eq!(&bytes[40..44], &0x89ab_cdefu32.to_le_bytes());
        assert_eq!(&bytes[44..48], &1u32.to_le_bytes());
        assert_eq!(&bytes[48..52], &7u32.to_le_bytes());
        assert!(bytes[8..24].iter().all(|b| *b == 0));
    }

    #[test]
    fn completion_fields_decode() {
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&0x0003_0003u32.to_le_bytes());
        raw[8..12].copy_from_slice(&((2u32 << 16) | 5).to_le_bytes());
        // CID 0x41, phase 1, SCT 2, SC 0x81, DNR.
        raw[12..16].copy_from_slice(
            &(0x41u32 | (1 << 16) | (0x81 << 17) | (2 << 25) | (1 << 31)).to_le_bytes(),
        );
        let entry = CompletionEntry::decode(&raw);
        assert_eq!(entry.result, 0x0003_0003);
        assert_eq!((entry.submission_head, entry.submission_queue), (5, 2));
        assert_eq!(entry.command_id, 0x41);
        assert!(entry.phase);
        assert_eq!(
            entry.status,
            CommandStatus {
                code_type: 2,
                code: 0x81,
                do_not_retry: true
            }
        );
        assert!(!entry.status.is_success());
        raw[12..16].copy_from_slice(&(1u32 << 16).to_le_bytes());
        assert!(CompletionEntry::decode(&raw).status.is_success());
    }
}

//! Why the driver stopped or refused a request: one enum, with the device's values in it.

use crate::command::CommandStatus;
use crate::identify::IdentifyError;
use crate::platform::{DmaError, InterruptError, RegisterError};

/// What a wait was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// CSTS.RDY = 0 after CC.EN = 0.
    Disabled,
    /// CSTS.RDY = 1 after CC.EN = 1.
    Ready,
    /// CSTS.SHST = complete after CC.SHN.
    ShutdownComplete,
    /// A completion on queue `queue` (0 is the admin queue).
    Completion {
        /// Queue ID.
        queue: u16,
    },
}

/// An NVMe driver error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmeError {
    /// A register access failed.
    Register(RegisterError),
    /// A DMA allocation or CPU access failed.
    Dma(DmaError),
    /// An MSI-X vector could not be enabled.
    Interrupt(InterruptError),
    /// CAP describes a controller the driver cannot drive.
    BadCapabilities {
        /// The raw register.
        cap: u64,
    },
    /// The platform gave a DMA region that is not aligned (queue rings need a 4 KiB page, data
    /// a dword).
    MisalignedRegion {
        /// Where the ring starts.
        iova: u64,
    },
    /// A wait ran out of its budget.
    Timeout {
        /// What was awaited.
        what: Wait,
        /// The budget in microseconds.
        budget_us: u64,
    },
    /// CSTS.CFS: the controller reports a fatal error.
    ControllerFatal {
        /// CSTS as read.
        status: u32,
    },
    /// An admin or I/O command completed with an error status.
    CommandFailed {
        /// Queue ID.
        queue: u16,
        /// Opcode.
        opcode: u8,
        /// The status the controller reported.
        status: CommandStatus,
    },
    /// A completion named a command ID that is not in flight on that queue (never issued, or
    /// already completed).
    UnexpectedCompletion {
        /// Queue ID.
        queue: u16,
        /// The command ID in the completion.
        command_id: u16,
    },
    /// A completion's SQ identifier or SQ head pointer does not fit the queue it was posted to.
    BadCompletion {
        /// Queue ID.
        queue: u16,
        /// The SQ identifier in the completion.
        submission_queue: u16,
        /// The SQ head pointer in the completion.
        submission_head: u16,
    },
    /// A completion was in the queue, but its interrupt never came.
    MissedInterrupt {
        /// MSI-X table index.
        vector: u16,
    },
    /// Identify data the driver cannot use.
    Identify(IdentifyError),
    /// The controller has no active namespace.
    NoNamespace,
    /// The controller gave fewer I/O queues than the driver needs.
    QueuesRefused {
        /// Queue pairs asked for.
        asked: u16,
    },
    /// The request reaches past the namespace's last block.
    NamespaceTooSmall {
        /// First block asked for.
        first_block: u64,
        /// Blocks asked for.
        blocks: u64,
        /// Blocks in the namespace (NSZE).
        namespace_blocks: u64,
    },
    /// The length is zero or not a multiple of the block size.
    BadLength {
        /// Bytes asked for.
        len: usize,
        /// The namespace's block size.
        block_size: u32,
    },
    /// The transfer is larger than MDTS or one PRP list allow.
    TooLarge {
        /// Bytes asked for.
        len: usize,
        /// The largest transfer, in bytes.
        max: usize,
    },
    /// Every command slot of the queue is in flight.
    QueueFull {
        /// Queue ID.
        queue: u16,
    },
    /// No I/O queue with that index, or no command with that tag in flight.
    NoSuchRequest,
    /// An earlier error stopped the controller; it takes no more commands.
    Stopped,
}

impl From<RegisterError> for NvmeError {
    fn from(error: RegisterError) -> Self {
        Self::Register(error)
    }
}

impl From<DmaError> for NvmeError {
    fn from(error: DmaError) -> Self {
        Self::Dma(error)
    }
}

impl From<InterruptError> for NvmeError {
    fn from(error: InterruptError) -> Self {
        Self::Interrupt(error)
    }
}

impl From<IdentifyError> for NvmeError {
    fn from(error: IdentifyError) -> Self {
        Self::Identify(error)
    }
}

impl NvmeError {
    /// Whether the error means the controller can no longer be trusted (as opposed to a
    /// request the driver refused, no memory for it, or a command the controller failed
    /// cleanly).
    pub const fn stops_controller(&self) -> bool {
        !matches!(
            self,
            Self::Dma(DmaError::Allocate { .. })
                | Self::CommandFailed { .. }
                | Self::NamespaceTooSmall { .. }
                | Self::BadLength { .. }
                | Self::TooLarge { .. }
                | Self::QueueFull { .. }
                | Self::NoSuchRequest
        )
    }
}

impl core::fmt::Display for NvmeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Register(e) => write!(f, "register access at BAR0+{:#x} failed", e.offset),
            Self::Dma(DmaError::Allocate { len }) => write!(f, "no DMA memory for {len} bytes"),
            Self::Dma(DmaError::OutOfBounds { offset, len }) => {
                write!(
                    f,
                    "DMA access of {len} bytes at {offset:#x} outside its region"
                )
            }
            Self::Interrupt(e) => write!(f, "MSI-X vector {} could not be enabled", e.vector),
            Self::MisalignedRegion { iova } => {
                write!(f, "DMA region at IOVA {iova:#x} is misaligned")
            }
            Self::BadCapabilities { cap } => write!(f, "unusable CAP {cap:#018x}"),
            Self::Timeout { what, budget_us } => {
                let what = match what {
                    Wait::Disabled => "CSTS.RDY = 0 after reset",
                    Wait::Ready => "CSTS.RDY = 1 after enable",
                    Wait::ShutdownComplete => "CSTS.SHST = complete",
                    Wait::Completion { .. } => "a completion",
                };
                write!(f, "timeout: no {what} within {budget_us} us")
            }
            Self::ControllerFatal { status } => {
                write!(f, "controller fatal status (CSTS {status:#x})")
            }
            Self::CommandFailed {
                queue,
                opcode,
                status,
            } => {
                write!(f, "queue {queue} opcode {opcode:#04x} failed: {status}")
            }
            Self::UnexpectedCompletion { queue, command_id } => write!(
                f,
                "completion on queue {queue} for command ID {command_id:#x}, which is not in flight"
            ),
            Self::BadCompletion {
                queue,
                submission_queue,
                submission_head,
            } => write!(
                f,
                "completion on queue {queue} names SQ {submission_queue} head {submission_head}"
            ),
            Self::MissedInterrupt { vector } => {
                write!(
                    f,
                    "a completion arrived without its MSI-X interrupt (vector {vector})"
                )
            }
            Self::Identify(e) => write!(f, "identify: {e}"),
            Self::NoNamespace => write!(f, "the controller has no active namespace"),
            Self::QueuesRefused { asked } => {
                write!(f, "the controller refused {asked} I/O queue pairs")
            }
            Self::NamespaceTooSmall {
                first_block,
                blocks,
                namespace_blocks,
            } => write!(
                f,
                "blocks {first_block}..{} asked, the namespace has {namespace_blocks}",
                first_block.saturating_add(*blocks)
            ),
            Self::BadLength { len, block_size } => {
                write!(
                    f,
                    "{len} bytes is not a whole number of {block_size}-byte blocks"
                )
            }
            Self::TooLarge { len, max } => write!(f, "{len} bytes is over the {max}-byte limit"),
            Self::QueueFull { queue } => write!(f, "queue {queue} is full"),
            Self::NoSuchRequest => write!(f, "no such queue or request"),
            Self::Stopped => write!(f, "the controller was stopped by an earlier error"),
        }
    }
}

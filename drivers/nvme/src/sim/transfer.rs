//! The simulated controller's side of a data transfer: its own PRP walk (NVMe 1.4, 4.3),
//! independent of the driver's, and the device reads and writes through it.

use super::State;
use super::controller::{PAGE, status};

impl State {
    /// The simulation's own PRP walk (NVMe 1.4, 4.3): the (IOVA, length) pieces of `len` bytes.
    fn walk(&mut self, prp1: u64, prp2: u64, len: usize) -> Result<Vec<(u64, usize)>, u16> {
        let first = len.min((PAGE - prp1 % PAGE) as usize);
        let mut pieces = vec![(prp1, first)];
        let rest = len - first;
        if rest == 0 {
            return Ok(pieces);
        }
        let pages: Vec<u64> = if rest <= PAGE as usize {
            vec![prp2]
        } else {
            let count = rest.div_ceil(PAGE as usize);
            if !prp2.is_multiple_of(8) || (prp2 % PAGE) as usize + count * 8 > PAGE as usize {
                return Err(status::PRP_OFFSET_INVALID);
            }
            self.prp_lists += 1;
            let list = self
                .memory
                .device_read(prp2, count * 8)
                .ok_or(status::TRANSFER_ERROR)?;
            list.chunks(8)
                .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
                .collect()
        };
        let mut left = rest;
        for page in pages {
            if page % PAGE != 0 {
                return Err(status::PRP_OFFSET_INVALID);
            }
            let piece = left.min(PAGE as usize);
            pieces.push((page, piece));
            left -= piece;
        }
        Ok(pieces)
    }

    /// Device writes `data` to host memory through the PRPs.
    pub(super) fn write_host(&mut self, prp1: u64, prp2: u64, data: &[u8]) -> u16 {
        let pieces = match self.walk(prp1, prp2, data.len()) {
            Ok(pieces) => pieces,
            Err(status) => return status,
        };
        let mut done = 0;
        for (iova, len) in pieces {
            if !self.memory.device_write(iova, &data[done..done + len]) {
                return status::TRANSFER_ERROR;
            }
            done += len;
        }
        status::SUCCESS
    }

    /// Device reads `len` bytes of host memory through the PRPs.
    pub(super) fn read_host(&mut self, prp1: u64, prp2: u64, len: usize) -> Result<Vec<u8>, u16> {
        let mut data = Vec::with_capacity(len);
        for (iova, piece) in self.walk(prp1, prp2, len)? {
            data.extend(
                self.memory
                    .device_read(iova, piece)
                    .ok_or(status::TRANSFER_ERROR)?,
            );
        }
        Ok(data)
    }
}

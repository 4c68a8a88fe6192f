//! The pseudo-random pattern the block scenarios write and the host checks afterwards
//! (xtask/src/disk_check.rs computes the same bytes independently). The byte at disk offset
//! `o` of pattern `seed` is byte `o % 8` (little-endian) of splitmix64(`seed` ^ (`o` / 8)): every
//! 8-byte word differs, so a block written at the wrong offset or a stale block shows.

/// One splitmix64 step (Steele, Lea, Flood: "Fast splittable pseudorandom number generators").
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buffer` with the pattern's bytes for disk offsets `offset..offset + buffer.len()`.
pub(crate) fn fill(seed: u64, offset: u64, buffer: &mut [u8]) {
    for (i, byte) in buffer.iter_mut().enumerate() {
        let at = offset + i as u64;
        *byte = splitmix64(seed ^ (at / 8)).to_le_bytes()[(at % 8) as usize];
    }
}

/// The first offset in `buffer` (holding disk offsets from `offset`) that differs from the
/// pattern, if any.
pub(crate) fn first_mismatch(seed: u64, offset: u64, buffer: &[u8]) -> Option<usize> {
    let mut expected = [0u8; 512];
    buffer.chunks(512).enumerate().find_map(|(chunk, got)| {
        let start = chunk * 512;
        fill(seed, offset + start as u64, &mut expected[..got.len()]);
        got.iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .map(|i| start + i)
    })
}

//! Disk images for the block scenarios: created fresh (all zero) before the run, and checked
//! byte by byte on the host afterwards against the pattern the guest was told to write
//! (boot/src/scenarios/pattern.rs defines it; this is an independent implementation).

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

/// Replaces `path` with a sparse all-zero image of `size` bytes.
pub(crate) fn fresh_image(path: &Path, size: u64) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.set_len(size)
        .map_err(|e| format!("cannot size {}: {e}", path.display()))
}

/// Writes a `size`-byte image at `path` holding pattern `seed` throughout (written in full,
/// not sparse: every read reaches data the host holds), through a temporary file renamed into
/// place, so an interrupted write leaves no image that looks finished.
pub(crate) fn pattern_image(path: &Path, seed: u64, size: u64) -> Result<(), String> {
    use std::io::Write;
    let partial = path.with_extension("partial");
    let mut file =
        File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(chunk.len() as u64) as usize;
        for (i, byte) in chunk[..len].iter_mut().enumerate() {
            *byte = expected(seed, offset + i as u64);
        }
        file.write_all(&chunk[..len])
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        offset += len as u64;
    }
    drop(file);
    std::fs::rename(&partial, path).map_err(|e| format!("cannot rename to {}: {e}", path.display()))
}

/// Whether the image at `path` has `size` bytes and starts with pattern `seed` (a cached image
/// from another pattern is rewritten).
pub(crate) fn has_pattern(path: &Path, seed: u64, size: u64) -> bool {
    let mut head = [0u8; 64];
    let read = File::open(path).and_then(|mut file| {
        let len = file.metadata()?.len();
        file.read_exact(&mut head)?;
        Ok(len)
    });
    matches!(read, Ok(len) if len == size)
        && head
            .iter()
            .enumerate()
            .all(|(i, b)| *b == expected(seed, i as u64))
}

/// The pattern's byte at disk offset `offset`.
fn expected(seed: u64, offset: u64) -> u8 {
    let mut z = (seed ^ (offset / 8)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.to_le_bytes()[(offset % 8) as usize]
}

/// Checks every byte of the image at `path`: `written` holds pattern `seed`, everything else
/// is still zero.
pub(crate) fn check_pattern(path: &Path, seed: u64, written: Range<u64>) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut image = Vec::new();
    file.read_to_end(&mut image)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if (image.len() as u64) < written.end {
        return Err(format!(
            "{} has {} bytes, the pattern ends at {}",
            path.display(),
            image.len(),
            written.end
        ));
    }
    for (offset, byte) in image.iter().enumerate() {
        let offset = offset as u64;
        let want = if written.contains(&offset) {
            expected(seed, offset)
        } else {
            0
        };
        if *byte != want {
            return Err(format!(
                "{}: byte at {offset:#x} is {byte:#04x}, expected {want:#04x} ({})",
                path.display(),
                if written.contains(&offset) {
                    "pattern"
                } else {
                    "untouched, zero"
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(bytes: &[(u64, u8)], size: u64, name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("moat-disk-{name}-{}", std::process::id()));
        let mut data = vec![0u8; size as usize];
        for (offset, byte) in bytes {
            data[*offset as usize] = *byte;
        }
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn a_correct_image_passes_and_one_wrong_byte_fails() {
        let range = 4096..3 * 4096;
        let mut bytes: Vec<(u64, u8)> = range.clone().map(|o| (o, expected(7, o))).collect();
        let good = image_with(&bytes, 16 * 4096, "good");
        assert_eq!(check_pattern(&good, 7, range.clone()), Ok(()));
        assert!(
            check_pattern(&good, 8, range.clone()).is_err(),
            "another seed"
        );
        bytes[100].1 ^= 1;
        let flipped = image_with(&bytes, 16 * 4096, "flipped");
        let error = check_pattern(&flipped, 7, range.clone()).unwrap_err();
        assert!(error.contains("0x1064"), "{error}");
        bytes[100].1 ^= 1;
        bytes.push((20, 1));
        let stray = image_with(&bytes, 16 * 4096, "stray");
        assert!(
            check_pattern(&stray, 7, range)
                .unwrap_err()
                .contains("untouched")
        );
    }

    #[test]
    fn neighbouring_words_differ() {
        let words: Vec<u8> = (0..64).map(|o| expected(1, o)).collect();
        assert_ne!(words[0..8], words[8..16]);
    }
}

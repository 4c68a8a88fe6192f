//! Checks that a built kernel ELF really carries what `x86_64-target.json` and the boot
//! protocol require: static (non-PIE) x86_64 executable, loaded at the linker script's base
//! with 4 KiB segment alignment, a valid multiboot2 header in the first 32 KiB and a PVH note.
//! [`section`] finds a named section in any ELF64 file (the Linux benchmark reads kernel
//! modules' `.modinfo` with it).

use crate::target::TargetSettings;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(format!("truncated at {at:#x}"))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or(format!("truncated at {at:#x}"))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    bytes
        .get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or(format!("truncated at {at:#x}"))
}

struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    align: u64,
}

/// Verifies `bytes` (a kernel ELF) against `settings`; `kernel_base` is the linker script's.
pub(crate) fn verify(
    bytes: &[u8],
    settings: &TargetSettings,
    kernel_base: u64,
) -> Result<Vec<String>, String> {
    let mut facts = Vec::new();
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    let kind = u16_at(bytes, 16)?;
    let machine = u16_at(bytes, 18)?;
    if machine != 0x3e {
        return Err(format!("machine {machine:#x} is not x86_64"));
    }
    let expected_kind = if settings.relocation_model == "static" {
        2
    } else {
        3
    };
    if kind != expected_kind {
        return Err(format!(
            "ELF type {kind} but relocation-model `{}` needs {expected_kind} (2 = static EXEC, 3 = PIE)",
            settings.relocation_model
        ));
    }
    facts.push(format!(
        "ELF64 x86_64, type {kind} (relocation-model {})",
        settings.relocation_model
    ));
    let phoff = u64_at(bytes, 32)? as usize;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        segments.push(Segment {
            kind: u32_at(bytes, at)?,
            offset: u64_at(bytes, at + 8)?,
            vaddr: u64_at(bytes, at + 16)?,
            filesz: u64_at(bytes, at + 32)?,
            align: u64_at(bytes, at + 48)?,
        });
    }
    let dynamic = segments
        .iter()
        .find(|s| s.kind == PT_INTERP || s.kind == PT_DYNAMIC);
    if let (true, Some(s)) = (settings.relocation_model == "static", dynamic) {
        return Err(format!(
            "static image has a PT_INTERP/PT_DYNAMIC segment (type {})",
            s.kind
        ));
    }
    let loads: Vec<&Segment> = segments.iter().filter(|s| s.kind == PT_LOAD).collect();
    let lowest = loads
        .iter()
        .map(|s| s.vaddr)
        .min()
        .ok_or("no PT_LOAD segment")?;
    if lowest != kernel_base {
        return Err(format!(
            "lowest load address {lowest:#x} is not the linker script's KERNEL_BASE {kernel_base:#x}"
        ));
    }
    facts.push(format!("loads at {lowest:#x} (linker script KERNEL_BASE)"));
    if settings
        .link_args
        .windows(2)
        .any(|w| w[0] == "-z" && w[1] == "max-page-size=4096")
    {
        if let Some(s) = loads.iter().find(|s| s.align != 0x1000) {
            return Err(format!(
                "segment at {:#x} aligned {:#x}, link args ask for 4 KiB",
                s.vaddr, s.align
            ));
        }
        facts.push("segments 4 KiB aligned (link-args max-page-size)".into());
    }
    // Multiboot2 header: 8-aligned, in the first 32 KiB, magic, arch 0, checksum.
    let window = &bytes[..bytes.len().min(32 * 1024)];
    let header = (0..window.len().saturating_sub(16))
        .step_by(8)
        .find(|&at| u32_at(window, at).ok() == Some(0xe852_50d6))
        .ok_or("no multiboot2 header in the first 32 KiB")?;
    let sum = [0, 4, 8, 12]
        .iter()
        .map(|o| u32_at(window, header + o))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .fold(0u32, u32::wrapping_add);
    if sum != 0 || u32_at(window, header + 4)? != 0 {
        return Err(format!(
            "multiboot2 header at {header:#x} has a bad checksum or architecture"
        ));
    }
    facts.push(format!("multiboot2 header at file offset {header:#x}"));
    // PVH note: name "Xen", type 18, 8-byte descriptor inside a loaded segment.
    let mut pvh = None;
    for note in segments.iter().filter(|s| s.kind == PT_NOTE) {
        let mut at = note.offset as usize;
        let end = at + note.filesz as usize;
        while at + 12 <= end {
            let namesz = u32_at(bytes, at)? as usize;
            let descsz = u32_at(bytes, at + 4)? as usize;
            let kind = u32_at(bytes, at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            if kind == 18 && bytes.get(name_at..name_at + 4) == Some(b"Xen\0") {
                pvh = Some(if descsz >= 8 {
                    u64_at(bytes, desc_at)?
                } else {
                    u64::from(u32_at(bytes, desc_at)?)
                });
            }
            at = desc_at + descsz.next_multiple_of(4);
        }
    }
    let entry = pvh.ok_or("no PVH entry note (Xen, type 18)")?;
    if !loads
        .iter()
        .any(|s| entry >= s.vaddr && entry < s.vaddr + s.filesz)
    {
        return Err(format!("PVH entry {entry:#x} is outside the loaded image"));
    }
    facts.push(format!("PVH entry note -> {entry:#x}"));
    Ok(facts)
}

/// The contents of the section named `name` in the little-endian ELF64 file `bytes`, or
/// `None` if it has no such section. Every offset is bounds-checked: a truncated or
/// inconsistent file is an error, never a panic.
pub(crate) fn section<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4..6) != Some(&[2, 1]) {
        return Err("not a little-endian ELF64 file".into());
    }
    let shoff = u64_at(bytes, 0x28)? as usize;
    let shentsize = usize::from(u16_at(bytes, 0x3a)?);
    let shnum = usize::from(u16_at(bytes, 0x3c)?);
    let shstrndx = usize::from(u16_at(bytes, 0x3e)?);
    if shentsize < 64 || shstrndx >= shnum {
        return Err(format!(
            "bad section header table (entry size {shentsize}, {shnum} entries, names in {shstrndx})"
        ));
    }
    // (name offset, file offset, size) of section `index`.
    let header = |index: usize| -> Result<(usize, usize, usize), String> {
        let at = shoff + index * shentsize;
        Ok((
            u32_at(bytes, at)? as usize,
            u64_at(bytes, at + 24)? as usize,
            u64_at(bytes, at + 32)? as usize,
        ))
    };
    let contents = |offset: usize, size: usize| {
        offset
            .checked_add(size)
            .and_then(|end| bytes.get(offset..end))
            .ok_or(format!(
                "section at {offset:#x} (+{size:#x}) is past the end"
            ))
    };
    let (_, names_at, names_size) = header(shstrndx)?;
    let names = contents(names_at, names_size)?;
    for index in 0..shnum {
        let (name_at, offset, size) = header(index)?;
        let this = names
            .get(name_at..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .ok_or(format!("section {index}'s name is outside the name table"))?;
        if this == name.as_bytes() {
            return contents(offset, size).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(relocation_model: &str) -> TargetSettings {
        TargetSettings {
            code_model: "small".into(),
            relocation_model: relocation_model.into(),
            linker_script: "boot/linker.ld".into(),
            link_args: vec!["-z".into(), "max-page-size=4096".into()],
        }
    }

    /// A minimal ELF64 image: one PT_LOAD at `base` (file offset 0x1000) holding a multiboot2
    /// header, and a PT_NOTE with the PVH note pointing into it.
    fn image(kind: u16, base: u64, with_note: bool, align: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x2000];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[16..18].copy_from_slice(&kind.to_le_bytes());
        bytes[18..20].copy_from_slice(&0x3eu16.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&(1 + u16::from(with_note)).to_le_bytes());
        let mut header =
            |index: usize, kind: u32, offset: u64, vaddr: u64, size: u64, align: u64| {
                let at = 64 + index * 56;
                bytes[at..at + 4].copy_from_slice(&kind.to_le_bytes());
                bytes[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
                bytes[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
                bytes[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
                bytes[at + 48..at + 56].copy_from_slice(&align.to_le_bytes());
            };
        header(0, PT_LOAD, 0x1000, base, 0x1000, align);
        if with_note {
            header(1, PT_NOTE, 0x1100, base + 0x100, 24, 4);
        }
        let magic = 0xe852_50d6u32;
        let length = 16u32;
        for (i, word) in [magic, 0, length, 0u32.wrapping_sub(magic + length)]
            .iter()
            .enumerate()
        {
            bytes[0x1000 + i * 4..0x1004 + i * 4].copy_from_slice(&word.to_le_bytes());
        }
        let note = [
            4u32.to_le_bytes(),
            8u32.to_le_bytes(),
            18u32.to_le_bytes(),
            *b"Xen\0",
        ]
        .concat();
        bytes[0x1100..0x1110].copy_from_slice(&note);
        bytes[0x1110..0x1118].copy_from_slice(&(base + 0x18).to_le_bytes());
        bytes
    }

    #[test]
    fn a_conforming_image_passes() {
        let facts = verify(
            &image(2, 0x20_0000, true, 0x1000),
            &settings("static"),
            0x20_0000,
        )
        .unwrap();
        assert!(
            facts
                .iter()
                .any(|f| f.contains("PVH entry note -> 0x200018")),
            "{facts:?}"
        );
    }

    #[test]
    fn deviations_from_the_settings_are_caught() {
        let static_settings = settings("static");
        let pie = verify(
            &image(3, 0x20_0000, true, 0x1000),
            &static_settings,
            0x20_0000,
        )
        .unwrap_err();
        assert!(pie.contains("relocation-model `static` needs 2"), "{pie}");
        let moved = verify(
            &image(2, 0x40_0000, true, 0x1000),
            &static_settings,
            0x20_0000,
        )
        .unwrap_err();
        assert!(moved.contains("KERNEL_BASE"), "{moved}");
        let aligned = verify(
            &image(2, 0x20_0000, true, 0x20_0000),
            &static_settings,
            0x20_0000,
        )
        .unwrap_err();
        assert!(aligned.contains("link args ask for 4 KiB"), "{aligned}");
        let no_note = verify(
            &image(2, 0x20_0000, false, 0x1000),
            &static_settings,
            0x20_0000,
        )
        .unwrap_err();
        assert!(no_note.contains("no PVH entry note"), "{no_note}");
        let mut broken = image(2, 0x20_0000, true, 0x1000);
        broken[0x100c] ^= 1;
        let checksum = verify(&broken, &static_settings, 0x20_0000).unwrap_err();
        assert!(checksum.contains("bad checksum"), "{checksum}");
        assert!(verify(b"not an elf", &static_settings, 0).is_err());
    }
}

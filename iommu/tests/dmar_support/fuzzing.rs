//! Input generation for the DMAR fuzzer (`tests/dmar_fuzz.rs`): a seeded PRNG, random
//! well-formed tables, the corpus of real tables, the mutations, and a pseudo-random PCI
//! topology. Everything derives from a `u64` seed, so generation is cheap and reproducible.

use std::sync::OnceLock;

use moat_iommu::Bdf;
use moat_iommu::dmar::{PAGE_SIZE, PciTopology};

use super::builder::{FIRST_STRUCTURE, Scope, TableBuilder, fix_checksum, set_length};
use super::{data_dir, qemu};

// ---------------------------------------------------------------- PRNG

/// SplitMix64: tiny, fast, and good enough to spread a seed over bytes.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), near enough.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    pub(crate) fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

// ---------------------------------------------------------------- valid-ish tables

pub(crate) fn random_scope(rng: &mut Rng) -> Scope {
    let kind = if rng.chance(16) {
        rng.byte()
    } else {
        1 + rng.below(5) as u8
    };
    let max_hops = if rng.chance(4) { 6 } else { 2 };
    let hops = 1 + rng.below(max_hops);
    let path = (0..hops)
        .map(|_| (rng.below(32) as u8, rng.below(8) as u8))
        .collect::<Vec<_>>();
    let mut scope = Scope::raw(kind, rng.byte(), rng.byte(), &path);
    if rng.chance(8) {
        scope.flags = rng.byte();
    }
    scope
}

pub(crate) fn random_scopes(rng: &mut Rng) -> Vec<Scope> {
    (0..rng.below(5)).map(|_| random_scope(rng)).collect()
}

pub(crate) fn random_page(rng: &mut Rng) -> u64 {
    (rng.next() >> 20) & !(PAGE_SIZE - 1)
}

/// A table of random but well-formed structures (a duplicate INCLUDE_PCI_ALL is avoided).
pub(crate) fn random_table(rng: &mut Rng) -> Vec<u8> {
    let haw = if rng.chance(2) {
        38
    } else {
        rng.below(64) as u8
    };
    let mut table = TableBuilder::new(haw, rng.byte() & 0x07);
    let mut include_all = [false; 2];
    for _ in 0..rng.below(7) {
        let segment = rng.below(2) as u16;
        table = match rng.below(8) {
            0 | 1 => {
                let all = rng.chance(2) && !include_all[usize::from(segment)];
                include_all[usize::from(segment)] |= all;
                let scopes = random_scopes(rng);
                let size = if rng.chance(4) { rng.byte() } else { 0 };
                table.drhd(u8::from(all), size, segment, random_page(rng), &scopes)
            }
            2 => {
                let base = random_page(rng);
                let limit = base + PAGE_SIZE * (1 + rng.below(64) as u64) - 1;
                let scopes = random_scopes(rng);
                table.rmrr(segment, base, limit, &scopes)
            }
            3 => {
                let scopes = random_scopes(rng);
                table.atsr(rng.byte() & 1, segment, &scopes)
            }
            4 => table.rhsa(random_page(rng), rng.next() as u32),
            5 => {
                let name: Vec<u8> = (0..rng.below(16))
                    .map(|_| b'A' + rng.below(26) as u8)
                    .collect();
                let pad = name.len() + 1 + rng.below(6);
                table.andd(rng.byte(), &name, pad)
            }
            6 => {
                let scopes = random_scopes(rng);
                table.satc(rng.byte() & 1, segment, &scopes)
            }
            _ => {
                let kind = 6 + rng.below(0xfffa) as u16;
                let body_len = rng.below(24);
                let body = rng.bytes(body_len);
                table.structure(kind, &body)
            }
        };
    }
    table.build()
}

/// The real tables and the QEMU reconstructions, loaded once.
pub(crate) fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut tables = vec![qemu::q35_default(), qemu::q35_iotlb_bridges()];
        if let Ok(entries) = std::fs::read_dir(data_dir()) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "bin") {
                    tables.push(std::fs::read(entry.path()).expect("readable fixture"));
                }
            }
        }
        tables
    })
}

/// A starting table: builder-made two times in three, otherwise from the corpus.
pub(crate) fn seed_table(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(3) {
        let corpus = corpus();
        corpus[rng.below(corpus.len())].clone()
    } else {
        random_table(rng)
    }
}

// ---------------------------------------------------------------- mutations

/// Offsets of structures (and of the scopes inside them) reachable by a tolerant walk.
pub(crate) fn record_offsets(table: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let (mut structures, mut scopes) = (Vec::new(), Vec::new());
    let mut at = FIRST_STRUCTURE;
    while at + 4 <= table.len() {
        let kind = u16::from_le_bytes([table[at], table[at + 1]]);
        let length = usize::from(u16::from_le_bytes([table[at + 2], table[at + 3]]));
        structures.push(at);
        let end = (at + length).min(table.len());
        let fixed = match kind {
            0 => Some(16),
            1 => Some(24),
            2 | 5 => Some(8),
            _ => None,
        };
        if let Some(fixed) = fixed {
            let mut scope = at + fixed;
            while scope + 2 <= end {
                scopes.push(scope);
                let scope_length = usize::from(table[scope + 1]);
                if scope_length == 0 {
                    break;
                }
                scope += scope_length;
            }
        }
        if length < 4 {
            break;
        }
        at += length;
    }
    (structures, scopes)
}

/// Values a length field is most likely to get wrong.
pub(crate) fn edge_length(rng: &mut Rng, current: usize) -> usize {
    match rng.below(8) {
        0 => 0,
        1 => 1 + rng.below(8),
        2 => current.saturating_sub(1),
        3 => current + 1,
        4 => current.saturating_sub(2),
        5 => current + 2,
        6 => 0xffff,
        _ => rng.below(0x1_0000),
    }
}

pub(crate) fn corrupt_structure_length(rng: &mut Rng, table: &mut [u8]) {
    let (structures, _) = record_offsets(table);
    if structures.is_empty() {
        return;
    }
    let at = structures[rng.below(structures.len())];
    let current = usize::from(u16::from_le_bytes([table[at + 2], table[at + 3]]));
    let length = edge_length(rng, current) as u16;
    table[at + 2..at + 4].copy_from_slice(&length.to_le_bytes());
}

pub(crate) fn corrupt_scope_length(rng: &mut Rng, table: &mut [u8]) {
    let (_, scopes) = record_offsets(table);
    if scopes.is_empty() {
        return;
    }
    let at = scopes[rng.below(scopes.len())];
    table[at + 1] = edge_length(rng, usize::from(table[at + 1])) as u8;
}

pub(crate) fn mutate(rng: &mut Rng, table: &mut Vec<u8>) {
    if table.is_empty() {
        table.push(rng.byte());
        return;
    }
    match rng.below(10) {
        0 => {
            let at = rng.below(table.len());
            table[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = rng.below(table.len());
            table[at] = [0, 1, 0x7f, 0x80, 0xff, rng.byte()][rng.below(6)];
        }
        2 => {
            let keep = rng.below(table.len());
            table.truncate(keep);
        }
        3 if table.len() >= 8 => {
            let length = edge_length(rng, table.len()) as u32;
            set_length(
                table,
                if rng.chance(4) {
                    rng.next() as u32
                } else {
                    length
                },
            );
        }
        4 => corrupt_structure_length(rng, table),
        5 => corrupt_scope_length(rng, table),
        6 => {
            // Insert a chunk of another table.
            let donor = seed_table(rng);
            let start = rng.below(donor.len());
            let end = start + rng.below(donor.len() - start + 1);
            let at = rng.below(table.len() + 1);
            table.splice(at..at, donor[start..end].iter().copied());
        }
        7 => {
            // Overwrite with a chunk of another table.
            let donor = seed_table(rng);
            let start = rng.below(donor.len());
            let len = rng.below(donor.len() - start + 1).min(table.len());
            let at = rng.below(table.len() - len + 1);
            table[at..at + len].copy_from_slice(&donor[start..start + len]);
        }
        8 => {
            // Remove a range.
            let start = rng.below(table.len());
            let end = start + rng.below((table.len() - start).min(32) + 1);
            table.drain(start..end);
        }
        _ => {
            // Duplicate a range in place (a repeated structure or scope, roughly).
            let start = rng.below(table.len());
            let end = start + rng.below((table.len() - start).min(48) + 1);
            let chunk: Vec<u8> = table[start..end].to_vec();
            table.splice(end..end, chunk);
        }
    }
}

/// Three times in four: make the header length match and the checksum correct, so the
/// mutation is judged by the structure walker rather than the header checks.
pub(crate) fn maybe_fix_up(rng: &mut Rng, table: &mut [u8]) {
    if table.len() >= FIRST_STRUCTURE && !rng.chance(4) {
        if !rng.chance(4) {
            set_length(table, table.len() as u32);
        }
        fix_checksum(table);
    }
}

// ---------------------------------------------------------------- topology

/// A topology where some functions exist and some of them are bridges, derived from a seed.
pub(crate) struct HashTopology(pub(crate) u64);

impl HashTopology {
    fn hash(&self, bdf: Bdf, salt: u64) -> u64 {
        let location = (u64::from(bdf.segment()) << 32) | u64::from(bdf.requester_id());
        Rng(self.0 ^ location ^ (salt << 48)).next()
    }
}

impl PciTopology for HashTopology {
    fn exists(&self, bdf: Bdf) -> bool {
        !self.hash(bdf, 1).is_multiple_of(4)
    }

    fn secondary_bus(&self, bdf: Bdf) -> Option<u8> {
        let h = self.hash(bdf, 2);
        h.is_multiple_of(3).then_some((h >> 8) as u8)
    }

    fn subordinate_bus(&self, bdf: Bdf) -> Option<u8> {
        let secondary = self.secondary_bus(bdf)?;
        let h = self.hash(bdf, 3);
        // Sometimes inverted, to exercise InvalidBusRange.
        Some(if h.is_multiple_of(8) {
            secondary.wrapping_sub(1)
        } else {
            secondary.saturating_add((h >> 8) as u8 % 8)
        })
    }
}

//! Property-based fuzzing of the DMAR parser: 100,000 inputs per `cargo test` run.
//!
//! | test                          | cases  | inputs                                          |
//! |-------------------------------|--------|-------------------------------------------------|
//! | `random_bytes`                | 20,000 | random bytes, half behind a valid DMAR header   |
//! | `mutated_tables`              | 50,000 | builder-made and real tables, 1-4 mutations     |
//! | `corrupted_length_fields`     | 30,000 | one structure or scope length set to an edge    |
//!
//! Mutations are bit flips, byte overwrites, truncation, header/structure/scope length
//! corruption and splices (chunks from another table inserted, overwritten or removed). Three
//! times in four the header length and checksum are fixed up afterwards, so mutations get past
//! the checksum into the structure walker; the rest test the header checks.
//!
//! Two deterministic tests run on top: every prefix of every corpus table, and a check that
//! the mutations reach every `DmarError` variant (so the fuzzer cannot silently degenerate).
//!
//! Proptest draws only a seed per case (`dmar_support::fuzzing` turns it into bytes with a small
//! PRNG). That keeps generation cheap: the whole file takes about 8 s of CPU in a debug build
//! (`[profile.test] opt-level = 1` in the workspace would cut that further, if ever needed).
//! The price is useless shrinking, so a failure prints the input in hex instead; proptest
//! records the failing seed in `dmar_fuzz.proptest-regressions` and replays it first.
//!
//! Every input must parse without panicking, and the walk must take at most one step per 4
//! table bytes (so it terminates). An accepted table must be self-consistent (non-empty scope
//! paths, aligned registers and RMRRs, one INCLUDE_PCI_ALL unit per segment, a summary line per
//! structure), re-encode to an equal model, and survive scope resolution against a topology; a
//! rejected table's error must point inside the table.

mod dmar_support;

use moat_iommu::Bdf;
use moat_iommu::dmar::{
    Dmar, DmarError, PAGE_SIZE, ParseOptions, Structure, Structures, resolve_scope, unit_for_device,
};
use proptest::prelude::*;

use dmar_support::builder::{FIRST_STRUCTURE, LENGTH_OFFSET, fix_checksum, set_length};
use dmar_support::encode::encode;
use dmar_support::fuzzing::{
    HashTopology, Rng, corpus, corrupt_scope_length, corrupt_structure_length, maybe_fix_up,
    mutate, random_table, seed_table,
};

/// Per-test case counts; their sum is the number of inputs per run (at least 100,000).
const RANDOM_BYTES_CASES: u32 = 20_000;
const MUTATED_TABLES_CASES: u32 = 50_000;
const LENGTH_FIELD_CASES: u32 = 30_000;
const _: () = assert!(RANDOM_BYTES_CASES + MUTATED_TABLES_CASES + LENGTH_FIELD_CASES >= 100_000);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a PRNG seed does not simplify the input; fail fast instead.
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- the properties

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The error's offset, for the variants that carry one.
fn error_offset(error: &DmarError) -> Option<usize> {
    match *error {
        DmarError::TruncatedStructureHeader { offset, .. }
        | DmarError::ZeroLengthStructure { offset, .. }
        | DmarError::StructureTooShort { offset, .. }
        | DmarError::StructurePastEnd { offset, .. }
        | DmarError::TruncatedScopeHeader { offset, .. }
        | DmarError::ZeroLengthScope { offset }
        | DmarError::ScopeTooShort { offset, .. }
        | DmarError::ScopePastStructure { offset, .. }
        | DmarError::OddScopePath { offset, .. }
        | DmarError::InvalidPathElement { offset, .. }
        | DmarError::MisalignedRegisterBase { offset, .. }
        | DmarError::DuplicateIncludeAll { offset, .. }
        | DmarError::MisalignedReservedRegion { offset, .. }
        | DmarError::InvertedReservedRegion { offset, .. } => Some(offset),
        _ => None,
    }
}

/// Everything that must hold for `input`, whatever it is.
fn check(input: &[u8], topology_seed: u64) -> Result<(), TestCaseError> {
    let strict = Dmar::parse(input);
    let diagnostic = Dmar::parse_with(input, ParseOptions::DIAGNOSTIC);
    match (&strict, &diagnostic) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(DmarError::BadChecksum { .. }), _) => {}
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (a, b) => prop_assert!(false, "strict {:?} vs diagnostic {:?}", a, b),
    }

    // The walk takes at most one step per 4 bytes after the header, then stops for good.
    if let Ok(mut walk) = Structures::new(input, ParseOptions::DIAGNOSTIC) {
        let table_len = walk.header().length() as usize;
        let bound = (table_len - FIRST_STRUCTURE) / 4 + 1;
        let steps = walk.by_ref().take(bound + 1).count();
        prop_assert!(steps <= bound, "{} steps for {} bytes", steps, table_len);
        prop_assert!(walk.next().is_none());
    }

    match diagnostic {
        Ok(dmar) => check_model(&dmar, input, topology_seed),
        Err(error) => {
            let _ = error.to_string();
            if let Some(offset) = error_offset(&error) {
                let table_len =
                    u32::from_le_bytes(input[LENGTH_OFFSET..LENGTH_OFFSET + 4].try_into().unwrap());
                prop_assert!(offset < table_len as usize, "{:?} outside the table", error);
            }
            Ok(())
        }
    }
}

fn check_model(dmar: &Dmar, input: &[u8], topology_seed: u64) -> Result<(), TestCaseError> {
    let length = dmar.header().length() as usize;
    prop_assert!((FIRST_STRUCTURE..=input.len()).contains(&length));
    prop_assert!(dmar.host_address_width() <= 63);
    prop_assert_eq!(
        u32::from(dmar.address_width_bits()),
        u32::from(dmar.host_address_width()) + 1
    );

    let all_scopes = dmar
        .units()
        .iter()
        .flat_map(|u| u.scopes())
        .chain(dmar.reserved_memory().iter().flat_map(|r| r.scopes()))
        .chain(dmar.atsr().iter().flat_map(|a| a.scopes()))
        .chain(dmar.satc().iter().flat_map(|s| s.scopes()));
    for scope in all_scopes {
        prop_assert!(!scope.path().is_empty());
        for element in scope.path() {
            prop_assert!(element.device() < 32 && element.function() < 8);
        }
    }
    let mut include_all_segments = Vec::new();
    for unit in dmar.units() {
        prop_assert_eq!(unit.register_base() % PAGE_SIZE, 0);
        prop_assert!(unit.register_set_len() >= PAGE_SIZE);
        if unit.include_pci_all() {
            prop_assert!(!include_all_segments.contains(&unit.segment()));
            include_all_segments.push(unit.segment());
        }
    }
    for rmrr in dmar.reserved_memory() {
        prop_assert!(rmrr.base() <= rmrr.limit());
        prop_assert_eq!(rmrr.base() % PAGE_SIZE, 0);
        prop_assert_eq!(rmrr.end() % PAGE_SIZE, 0);
        prop_assert!(rmrr.len() >= PAGE_SIZE && !rmrr.is_empty());
    }
    for skipped in dmar.skipped() {
        prop_assert!(skipped.kind() > 5 && skipped.length() >= 4);
        prop_assert!(skipped.offset() + usize::from(skipped.length()) <= length);
    }

    let structures = dmar.structure_count();
    prop_assert!(structures <= (length - FIRST_STRUCTURE) / 4);
    prop_assert_eq!(dmar.to_string().lines().count(), 1 + structures);

    // The model re-encodes to a table that parses to the same model.
    let again =
        Dmar::parse(&encode(dmar)).map_err(|e| TestCaseError::fail(format!("re-encoded: {e}")))?;
    prop_assert_eq!(again.units(), dmar.units());
    prop_assert_eq!(again.reserved_memory(), dmar.reserved_memory());
    prop_assert_eq!(again.atsr(), dmar.atsr());
    prop_assert_eq!(again.rhsa(), dmar.rhsa());
    prop_assert_eq!(again.andd(), dmar.andd());
    prop_assert_eq!(again.satc(), dmar.satc());
    prop_assert_eq!(again.flags(), dmar.flags());
    let kinds = |d: &Dmar| {
        d.skipped()
            .iter()
            .map(|s| (s.kind(), s.length()))
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(kinds(&again), kinds(dmar));

    // Resolution never panics and only names units that exist.
    let topology = HashTopology(topology_seed);
    for unit in dmar.units() {
        for scope in unit.scopes() {
            let _ = resolve_scope(scope, unit.segment(), &topology);
        }
    }
    let mut rng = Rng(topology_seed);
    for _ in 0..4 {
        let segment = rng.below(2) as u16;
        let bdf = Bdf::from_devfn(segment, rng.byte(), rng.byte());
        if let Some(index) = unit_for_device(dmar, bdf, &topology) {
            prop_assert!(index < dmar.units().len());
            prop_assert_eq!(dmar.units()[index].segment(), segment);
        }
    }
    Ok(())
}

/// Runs `check` and attaches the input in hex to a failure.
fn check_reporting(input: &[u8], seed: u64) -> Result<(), TestCaseError> {
    check(input, seed).map_err(|e| TestCaseError::fail(format!("{e}\ninput: {}", hex(input))))
}

proptest! {
    #![proptest_config(config(RANDOM_BYTES_CASES))]
    #[test]
    fn random_bytes(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let max_len = if rng.chance(8) { 2048 } else { 256 };
        let len = rng.below(max_len);
        let mut input = rng.bytes(len);
        if rng.chance(2) && input.len() >= FIRST_STRUCTURE {
            // Behind a valid header, so the garbage reaches the structure walker.
            input[..4].copy_from_slice(b"DMAR");
            input[37] %= 64;
            maybe_fix_up(&mut rng, &mut input);
        }
        check_reporting(&input, seed)?;
    }
}

proptest! {
    #![proptest_config(config(MUTATED_TABLES_CASES))]
    #[test]
    fn mutated_tables(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let mut table = seed_table(&mut rng);
        if rng.chance(16) {
            // Unmutated: the seeds themselves must pass.
            check_reporting(&table, seed)?;
            prop_assert!(Dmar::parse(&table).is_ok());
        }
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut table);
        }
        maybe_fix_up(&mut rng, &mut table);
        check_reporting(&table, seed)?;
    }
}

proptest! {
    #![proptest_config(config(LENGTH_FIELD_CASES))]
    #[test]
    fn corrupted_length_fields(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let mut table = seed_table(&mut rng);
        if rng.chance(2) {
            corrupt_structure_length(&mut rng, &mut table);
        } else {
            corrupt_scope_length(&mut rng, &mut table);
        }
        fix_checksum(&mut table);
        check_reporting(&table, seed)?;
    }
}

/// Every prefix of every corpus table, with the header length fixed up to the prefix: the
/// walker meets a structure or scope cut off at every possible byte.
#[test]
fn every_truncation_of_the_corpus() {
    for table in corpus() {
        for len in FIRST_STRUCTURE..table.len() {
            let mut prefix = table[..len].to_vec();
            set_length(&mut prefix, len as u32);
            fix_checksum(&mut prefix);
            if let Err(e) = check(&prefix, len as u64) {
                panic!("{e}\ninput: {}", hex(&prefix));
            }
        }
    }
}

/// The structure kinds the random generator produces all appear (the generator is not
/// silently degenerate).
#[test]
fn generator_covers_every_structure_type() {
    let mut seen = [false; 7];
    let mut rng = Rng(1);
    for _ in 0..500 {
        let table = random_table(&mut rng);
        let Ok(walk) = Structures::new(&table, ParseOptions::STRICT) else {
            continue;
        };
        for structure in walk.flatten() {
            let index = match structure {
                Structure::Drhd(_) => 0,
                Structure::Rmrr(_) => 1,
                Structure::Atsr(_) => 2,
                Structure::Rhsa(_) => 3,
                Structure::Andd(_) => 4,
                Structure::Satc(_) => 5,
                Structure::Unknown(_) => 6,
            };
            seen[index] = true;
        }
    }
    assert_eq!(seen, [true; 7]);
}

/// The mutations are not degenerate: on a fixed set of seeds they produce every error the
/// parser has, and accepted tables too. The `match` is exhaustive, so a new error variant
/// must be reachable here before it compiles.
#[test]
fn mutations_reach_every_outcome() {
    let mut seen = [0usize; 21];
    for seed in 0..20_000u64 {
        let mut rng = Rng(seed);
        let mut table = seed_table(&mut rng);
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut table);
        }
        maybe_fix_up(&mut rng, &mut table);
        let index = match Dmar::parse(&table) {
            Ok(_) => 0,
            Err(DmarError::TruncatedHeader { .. }) => 1,
            Err(DmarError::BadSignature { .. }) => 2,
            Err(DmarError::LengthExceedsSlice { .. }) => 3,
            Err(DmarError::LengthBelowHeader { .. }) => 4,
            Err(DmarError::BadChecksum { .. }) => 5,
            Err(DmarError::InvalidHostAddressWidth { .. }) => 6,
            Err(DmarError::TruncatedStructureHeader { .. }) => 7,
            Err(DmarError::ZeroLengthStructure { .. }) => 8,
            Err(DmarError::StructureTooShort { .. }) => 9,
            Err(DmarError::StructurePastEnd { .. }) => 10,
            Err(DmarError::TruncatedScopeHeader { .. }) => 11,
            Err(DmarError::ZeroLengthScope { .. }) => 12,
            Err(DmarError::ScopeTooShort { .. }) => 13,
            Err(DmarError::ScopePastStructure { .. }) => 14,
            Err(DmarError::OddScopePath { .. }) => 15,
            Err(DmarError::InvalidPathElement { .. }) => 16,
            Err(DmarError::MisalignedRegisterBase { .. }) => 17,
            Err(DmarError::DuplicateIncludeAll { .. }) => 18,
            Err(DmarError::MisalignedReservedRegion { .. }) => 19,
            Err(DmarError::InvertedReservedRegion { .. }) => 20,
        };
        seen[index] += 1;
    }
    assert!(
        seen.iter().all(|&count| count > 0),
        "outcome counts: {seen:?}"
    );
    assert!(
        seen[0] > 1_000,
        "too few mutated tables are still valid: {seen:?}"
    );
}

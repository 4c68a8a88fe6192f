//! Shared support for the DMAR tests: a byte-level table builder, QEMU's q35 table rebuilt
//! with it, an in-memory PCI topology, and a re-encoder from the parsed model.
//!
//! Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

pub(crate) mod builder;
pub(crate) mod encode;
pub(crate) mod fuzzing;
pub(crate) mod qemu;
pub(crate) mod topology;

use std::path::PathBuf;

/// Where the binary DMAR fixtures live.
pub(crate) fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dmar")
}

/// Reads one fixture by file name.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

//! Builds DMAR tables structure by structure, filling in every length and the checksum, so
//! tests state only what they are about. Malformed tables start from a valid one and then
//! corrupt bytes with the helpers at the bottom.

/// Offset of the checksum byte in the ACPI header.
pub(crate) const CHECKSUM_OFFSET: usize = 9;
/// Offset of the length field in the ACPI header.
pub(crate) const LENGTH_OFFSET: usize = 4;
/// Where the first remapping structure starts.
pub(crate) const FIRST_STRUCTURE: usize = 48;

/// One device scope entry, serialized with [`Scope::bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) enumeration_id: u8,
    pub(crate) start_bus: u8,
    pub(crate) path: Vec<(u8, u8)>,
}

impl Scope {
    pub(crate) fn raw(kind: u8, enumeration_id: u8, start_bus: u8, path: &[(u8, u8)]) -> Scope {
        Scope {
            kind,
            flags: 0,
            enumeration_id,
            start_bus,
            path: path.to_vec(),
        }
    }

    /// Type 1.
    pub(crate) fn endpoint(start_bus: u8, path: &[(u8, u8)]) -> Scope {
        Scope::raw(1, 0, start_bus, path)
    }

    /// Type 2.
    pub(crate) fn bridge(start_bus: u8, path: &[(u8, u8)]) -> Scope {
        Scope::raw(2, 0, start_bus, path)
    }

    /// Type 3.
    pub(crate) fn ioapic(id: u8, start_bus: u8, path: &[(u8, u8)]) -> Scope {
        Scope::raw(3, id, start_bus, path)
    }

    /// Type 4.
    pub(crate) fn hpet(id: u8, start_bus: u8, path: &[(u8, u8)]) -> Scope {
        Scope::raw(4, id, start_bus, path)
    }

    /// Type 5.
    pub(crate) fn acpi(number: u8, start_bus: u8, path: &[(u8, u8)]) -> Scope {
        Scope::raw(5, number, start_bus, path)
    }

    /// The entry's bytes; the length byte is `6 + 2 * path.len()` (truncated to 8 bits).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let length = 6 + 2 * self.path.len();
        let mut out = vec![
            self.kind,
            length as u8,
            self.flags,
            0,
            self.enumeration_id,
            self.start_bus,
        ];
        for &(device, function) in &self.path {
            out.extend([device, function]);
        }
        out
    }
}

fn scopes_bytes(scopes: &[Scope]) -> Vec<u8> {
    scopes.iter().flat_map(Scope::bytes).collect()
}

/// A DMAR table under construction. Header fields default to QEMU's.
#[derive(Debug, Clone)]
pub(crate) struct TableBuilder {
    pub(crate) signature: [u8; 4],
    pub(crate) revision: u8,
    pub(crate) oem_id: [u8; 6],
    pub(crate) oem_table_id: [u8; 8],
    pub(crate) oem_revision: u32,
    pub(crate) creator_id: [u8; 4],
    pub(crate) creator_revision: u32,
    pub(crate) host_address_width: u8,
    pub(crate) flags: u8,
    pub(crate) reserved: [u8; 10],
    /// The remapping structures, already serialized.
    pub(crate) body: Vec<u8>,
}

impl TableBuilder {
    /// An empty table with QEMU's header (`BOCHS `, `BXPC    `, revision 1, creator `BXPC` 1).
    pub(crate) fn new(host_address_width: u8, flags: u8) -> TableBuilder {
        TableBuilder {
            signature: *b"DMAR",
            revision: 1,
            oem_id: *b"BOCHS ",
            oem_table_id: *b"BXPC    ",
            oem_revision: 1,
            creator_id: *b"BXPC",
            creator_revision: 1,
            host_address_width,
            flags,
            reserved: [0; 10],
            body: Vec::new(),
        }
    }

    pub(crate) fn oem(mut self, id: &[u8; 6], table_id: &[u8; 8], revision: u32) -> TableBuilder {
        self.oem_id = *id;
        self.oem_table_id = *table_id;
        self.oem_revision = revision;
        self
    }

    pub(crate) fn creator(mut self, id: &[u8; 4], revision: u32) -> TableBuilder {
        self.creator_id = *id;
        self.creator_revision = revision;
        self
    }

    pub(crate) fn revision(mut self, revision: u8) -> TableBuilder {
        self.revision = revision;
        self
    }

    /// Appends a structure of `kind` with the given body; the length is 4 + body.
    pub(crate) fn structure(mut self, kind: u16, body: &[u8]) -> TableBuilder {
        let length = 4 + body.len();
        self.body.extend(kind.to_le_bytes());
        self.body.extend((length as u16).to_le_bytes());
        self.body.extend(body);
        self
    }

    /// Appends bytes verbatim (for malformed structures).
    pub(crate) fn raw(mut self, bytes: &[u8]) -> TableBuilder {
        self.body.extend(bytes);
        self
    }

    /// Type 0. `size` is the register-set size byte (2^N pages in bits 3:0).
    pub(crate) fn drhd(
        self,
        flags: u8,
        size: u8,
        segment: u16,
        base: u64,
        scopes: &[Scope],
    ) -> TableBuilder {
        let mut body = vec![flags, size];
        body.extend(segment.to_le_bytes());
        body.extend(base.to_le_bytes());
        body.extend(scopes_bytes(scopes));
        self.structure(0, &body)
    }

    /// Type 1; `limit` is the last byte (inclusive).
    pub(crate) fn rmrr(
        self,
        segment: u16,
        base: u64,
        limit: u64,
        scopes: &[Scope],
    ) -> TableBuilder {
        let mut body = vec![0, 0];
        body.extend(segment.to_le_bytes());
        body.extend(base.to_le_bytes());
        body.extend(limit.to_le_bytes());
        body.extend(scopes_bytes(scopes));
        self.structure(1, &body)
    }

    /// Type 2.
    pub(crate) fn atsr(self, flags: u8, segment: u16, scopes: &[Scope]) -> TableBuilder {
        let mut body = vec![flags, 0];
        body.extend(segment.to_le_bytes());
        body.extend(scopes_bytes(scopes));
        self.structure(2, &body)
    }

    /// Type 3.
    pub(crate) fn rhsa(self, base: u64, proximity_domain: u32) -> TableBuilder {
        let mut body = vec![0; 4];
        body.extend(base.to_le_bytes());
        body.extend(proximity_domain.to_le_bytes());
        self.structure(3, &body)
    }

    /// Type 4: the name, a NUL, then zero padding up to `name_field_len` bytes in all.
    pub(crate) fn andd(
        self,
        device_number: u8,
        name: &[u8],
        name_field_len: usize,
    ) -> TableBuilder {
        let mut body = vec![0, 0, 0, device_number];
        body.extend(name);
        body.push(0);
        while body.len() < 4 + name_field_len {
            body.push(0);
        }
        self.structure(4, &body)
    }

    /// Type 5.
    pub(crate) fn satc(self, flags: u8, segment: u16, scopes: &[Scope]) -> TableBuilder {
        let mut body = vec![flags, 0];
        body.extend(segment.to_le_bytes());
        body.extend(scopes_bytes(scopes));
        self.structure(5, &body)
    }

    /// The table with a correct length field and checksum.
    pub(crate) fn build(&self) -> Vec<u8> {
        let length = (FIRST_STRUCTURE + self.body.len()) as u32;
        let mut out = Vec::with_capacity(length as usize);
        out.extend(self.signature);
        out.extend(length.to_le_bytes());
        out.push(self.revision);
        out.push(0);
        out.extend(self.oem_id);
        out.extend(self.oem_table_id);
        out.extend(self.oem_revision.to_le_bytes());
        out.extend(self.creator_id);
        out.extend(self.creator_revision.to_le_bytes());
        out.push(self.host_address_width);
        out.push(self.flags);
        out.extend(self.reserved);
        out.extend(&self.body);
        fix_checksum(&mut out);
        out
    }
}

/// The 8-bit sum of `bytes`.
pub(crate) fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// Rewrites the checksum byte so the table's first `length` bytes (per its length field,
/// clamped to the slice) sum to zero. Does nothing to a slice too short for a header.
pub(crate) fn fix_checksum(table: &mut [u8]) {
    if table.len() < FIRST_STRUCTURE {
        return;
    }
    let length = u32::from_le_bytes(table[LENGTH_OFFSET..LENGTH_OFFSET + 4].try_into().unwrap());
    let end = (length as usize).min(table.len());
    table[CHECKSUM_OFFSET] = 0;
    let total = sum(&table[..end.max(CHECKSUM_OFFSET + 1)]);
    table[CHECKSUM_OFFSET] = total.wrapping_neg();
}

/// Overwrites the header's length field.
pub(crate) fn set_length(table: &mut [u8], length: u32) {
    table[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_le_bytes());
}

/// Overwrites the 16-bit length field of the structure starting at `offset`.
pub(crate) fn set_structure_length(table: &mut [u8], offset: usize, length: u16) {
    table[offset + 2..offset + 4].copy_from_slice(&length.to_le_bytes());
}

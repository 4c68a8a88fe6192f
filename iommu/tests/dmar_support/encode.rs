//! Serializes a parsed [`Dmar`] back into table bytes, structures grouped by type. Parsing the
//! result must give the same model: the fuzzer's round-trip check.

use moat_iommu::dmar::{DeviceScope, Dmar};

use super::builder::{Scope, TableBuilder};

fn scope(scope: &DeviceScope) -> Scope {
    Scope {
        kind: scope.kind().raw(),
        flags: scope.flags(),
        enumeration_id: scope.enumeration_id(),
        start_bus: scope.start_bus(),
        path: scope
            .path()
            .iter()
            .map(|element| (element.device(), element.function()))
            .collect(),
    }
}

fn scopes(list: &[DeviceScope]) -> Vec<Scope> {
    list.iter().map(scope).collect()
}

/// The table bytes for `dmar`: header fields as parsed, reserved bytes zero, ANDD names
/// NUL-terminated without padding, skipped structures with zero bodies of their length.
pub(crate) fn encode(dmar: &Dmar) -> Vec<u8> {
    let header = dmar.header();
    let mut table = TableBuilder::new(dmar.host_address_width(), dmar.flags().bits())
        .revision(header.revision())
        .oem(
            header.oem_id(),
            header.oem_table_id(),
            header.oem_revision(),
        )
        .creator(header.creator_id(), header.creator_revision());
    for unit in dmar.units() {
        table = table.drhd(
            unit.flags().bits(),
            unit.size_field(),
            unit.segment(),
            unit.register_base(),
            &scopes(unit.scopes()),
        );
    }
    for rmrr in dmar.reserved_memory() {
        table = table.rmrr(
            rmrr.segment(),
            rmrr.base(),
            rmrr.limit(),
            &scopes(rmrr.scopes()),
        );
    }
    for atsr in dmar.atsr() {
        table = table.atsr(atsr.flags().bits(), atsr.segment(), &scopes(atsr.scopes()));
    }
    for rhsa in dmar.rhsa() {
        table = table.rhsa(rhsa.register_base(), rhsa.proximity_domain());
    }
    for andd in dmar.andd() {
        table = table.andd(andd.device_number(), andd.name_bytes(), 0);
    }
    for satc in dmar.satc() {
        table = table.satc(satc.flags().bits(), satc.segment(), &scopes(satc.scopes()));
    }
    for skipped in dmar.skipped() {
        let body = vec![0u8; usize::from(skipped.length()) - 4];
        table = table.structure(skipped.kind(), &body);
    }
    table.build()
}

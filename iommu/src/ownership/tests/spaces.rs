//! Address spaces: only their owner touches them; mappings belong to the space.

use super::*;

#[test]
fn ownership_only_the_owner_maps_and_unmaps() {
    let mut table = table();
    table.map(ALICE, SPACE_A).expect("map");
    assert_eq!(
        refused(&mut table, |t| t.map(BOB, SPACE_A)),
        OwnershipError::WrongOwner
    );
    assert_eq!(
        refused(&mut table, |t| t.unmap(BOB, SPACE_A)),
        OwnershipError::WrongOwner
    );
    let missing = AddressSpaceId::new(99);
    assert_eq!(
        refused(&mut table, |t| t.map(ALICE, missing)),
        OwnershipError::NoSuchAddressSpace
    );
    table.unmap(ALICE, SPACE_A).expect("unmap");
    assert_eq!(
        refused(&mut table, |t| t.unmap(ALICE, SPACE_A)),
        OwnershipError::NotMapped
    );
    assert_eq!(
        refused(&mut table, |t| t.create_address_space(SPACE_A, BOB)),
        OwnershipError::AddressSpaceExists
    );
}

#[test]
fn ownership_mappings_survive_detach_and_spaces_in_use_stay() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.attach(ALICE, first(), SPACE_A).expect("attach");
    table.map(ALICE, SPACE_A).expect("map");
    assert_eq!(
        table.address_space(SPACE_A),
        Some(SpaceView {
            owner: ALICE,
            mappings: 1,
            attached: 1
        })
    );
    assert_eq!(
        refused(&mut table, |t| t.destroy_address_space(ALICE, SPACE_A)),
        OwnershipError::Busy
    );
    assert_eq!(
        refused(&mut table, |t| t.destroy_address_space(BOB, SPACE_A)),
        OwnershipError::WrongOwner
    );
    table
        .detach(ALICE, first())
        .expect("detach with a mapping in place");
    assert_eq!(table.address_space(SPACE_A).map(|s| s.mappings), Some(1));
    table
        .destroy_address_space(ALICE, SPACE_A)
        .expect("destroy");
    assert_eq!(table.address_space(SPACE_A), None);
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, first(), SPACE_A)),
        OwnershipError::NoSuchAddressSpace
    );
}

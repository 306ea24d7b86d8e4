//! Fuzz proposal checking (`noodles2::proposal::check`), what an Upstream runs on every
//! `ProposedChangeTransaction` before it applies anything, over a small fixed world: canonical
//! entities 1 to 8, a mesh asset 1 and a buffer asset 2 (both created by a proposal, so
//! replaceable), and the Core components Name, ChildOf, Transform, Mesh and Skin.
//!
//! Whatever the input, checking must not panic; a plan may only name entities that exist or
//! that the proposal creates, and create at most `MAX_PLACEHOLDERS` of each kind.
#![no_main]

use std::collections::HashSet;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::codec::{
    BufferAsset, ChildOfComponent, ContentArray, MeshAsset, MeshComponent, NameComponent,
    SkinComponent, TransformComponent, Wire,
};
use noodles2::proposal::{
    AssetCheck, ComponentCheck, MAX_PLACEHOLDERS, PATCH_LOCAL_BIT, ProposalWorld, ProposedChange,
    ProposedEntity, Step, VisitAssetIds, VisitComponentIds, check, visit_asset_ids,
    visit_pair_ids,
};

const MESH: (u16, u16) = (0, 3);
const BUFFER: (u16, u16) = (0, 0);

struct Fixed;

impl ProposalWorld for Fixed {
    type Entity = u64;

    fn entity(&self, id: u64) -> Option<u64> {
        (1..=8).contains(&id).then_some(id)
    }

    fn known_asset(&self, asset_type: Option<(u16, u16)>, id: u64) -> bool {
        let ty = match id {
            1 => MESH,
            2 => BUFFER,
            _ => return false,
        };
        asset_type.is_none_or(|t| t == ty)
    }

    fn replaceable_asset(&self, key: (u16, u16, u64)) -> bool {
        self.known_asset(Some((key.0, key.1)), key.2)
    }

    fn component(&self, extension: u16, identifier: u16) -> Option<ComponentCheck<'_>> {
        let (name, visit): (&'static str, VisitComponentIds<'_>) = match (extension, identifier) {
            (0, 15) => ("Name", &visit_pair_ids::<NameComponent>),
            (0, 16) => ("ChildOf", &visit_pair_ids::<ChildOfComponent>),
            (0, 20) => ("Transform", &visit_pair_ids::<TransformComponent>),
            (0, 14) => ("Mesh", &visit_pair_ids::<MeshComponent>),
            (0, 23) => ("Skin", &visit_pair_ids::<SkinComponent>),
            _ => return None,
        };
        Some(ComponentCheck {
            rule: usize::from(identifier),
            name,
            visit,
        })
    }

    fn asset(&self, extension: u16, identifier: u16) -> Option<AssetCheck<'_>> {
        let (name, propose): (&'static str, VisitAssetIds<'_>) = match (extension, identifier) {
            (0, 0) => ("Buffer", &visit_asset_ids::<BufferAsset>),
            (0, 3) => ("Mesh", &visit_asset_ids::<MeshAsset>),
            _ => return None,
        };
        Some(AssetCheck {
            rule: usize::from(identifier),
            name,
            propose,
        })
    }

    fn asset_type_of_wrapper(&self, wrapper: &str) -> Option<(u16, u16)> {
        match wrapper {
            "MeshAssetID" => Some(MESH),
            "BufferAssetID" => Some(BUFFER),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(content) = ContentArray::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(plan) = check(&Fixed, &[0], &content) else {
        return;
    };
    assert!(plan.new_entities.len() as u64 <= MAX_PLACEHOLDERS);
    assert!(plan.new_assets.len() as u64 <= MAX_PLACEHOLDERS);
    let created: HashSet<u64> = plan.new_entities.iter().copied().collect();
    assert_eq!(created.len(), plan.new_entities.len(), "an entity created twice");
    assert!(created.iter().all(|id| id & PATCH_LOCAL_BIT != 0));
    let touched = |e: &ProposedEntity<u64>| match e {
        ProposedEntity::Existing { id, entity } => id == entity && (1..=8).contains(id),
        ProposedEntity::New(id) => created.contains(id),
    };
    for change in &plan.changes {
        match change {
            ProposedChange::SetComponent { entity, .. }
            | ProposedChange::RemoveComponent { entity, .. } => assert!(touched(entity)),
            ProposedChange::DeleteEntity { id, .. } => assert!((1..=8).contains(id)),
            ProposedChange::SetAsset(_) => {}
        }
    }
    for step in &plan.steps {
        if let Step::Delete { ids } = step {
            assert!(ids.iter().all(|id| (1..=8).contains(id)));
        }
    }
});

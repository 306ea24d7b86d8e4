//! NOODLES2 assets (buffers, images, meshes, materials, ...) and their Bevy counterparts.

pub mod convert;
pub mod environment;
pub mod remote;
pub mod skin;
pub mod sync;

pub use remote::{FetchConfig, OobConfig, OobProgress, OobServer};
pub use skin::{Skin, SkinError};
pub use sync::{AssetExport, AssetImport, AssetStats, EnvironmentExport, asset_type};

pub use convert::{
    AssetError, flags_to_sampler, image_from_wire, image_from_wire_with, image_to_wire,
    material_from_wire, material_to_wire, mesh_from_wire, mesh_to_wire, sampler_to_flags,
    view_bytes,
};

use bevy::prelude::*;

use crate::codec::{AnAsset, ContentModifyAsset};

/// Asset messages received on Downstream links, waiting to be turned into Bevy assets.
#[derive(Resource, Debug, Default)]
pub struct IncomingAssets {
    pub modified: Vec<(Entity, ContentModifyAsset)>,
    pub deleted: Vec<(Entity, AnAsset)>,
}

impl IncomingAssets {
    pub fn push(&mut self, link: Entity, m: ContentModifyAsset) {
        self.modified.push((link, m));
    }
    pub fn delete(&mut self, link: Entity, a: AnAsset) {
        self.deleted.push((link, a));
    }
}

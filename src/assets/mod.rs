//! NOODLES2 assets (buffers, images, meshes, materials, skins, environments) and their Bevy
//! counterparts, with out-of-band and URL fetching of large buffers: [`AssetsPlugin`].

pub mod convert;
mod core_assets;
pub(crate) use core_assets::{reserve, store};
pub mod environment;
pub mod export;
pub mod remote;
pub mod skin;
pub mod sync;
pub(crate) mod users;

pub use export::{AssetExport, AssetUser, ExportAppExt, ExportAsset, ExportCx, OFF_THREAD_BYTES};
pub use remote::{FetchConfig, OobConfig, OobProgress, OobServer};
pub use skin::{Skin, SkinError};
pub use sync::{AssetImport, AssetStats, BufferArrived, EnvironmentExport, RawAssets, asset_type};

pub use convert::{
    AssetError, flags_to_sampler, image_from_wire, image_from_wire_with, image_to_wire,
    mesh_from_wire, mesh_to_wire, sampler_to_flags, view_bytes,
};
#[cfg(feature = "render")]
pub use convert::{material_from_wire, material_to_wire};

use bevy::prelude::*;

/// Assets: meshes, materials and images used by shared entities are exported (Upstream) and
/// imported as Bevy assets (Downstream) when the app has Bevy's asset collections
/// (`Assets<Mesh>`, `Assets<StandardMaterial>`, `Assets<Image>`); skins when it has
/// `Assets<SkinnedMeshInverseBindposes>`. Large buffers go out of band; `BufferFromURL` buffers
/// are fetched. Needs [`MirrorPlugin`](crate::mirror::MirrorPlugin); added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
#[derive(Debug, Clone)]
pub struct AssetsPlugin {
    /// Large buffers out of band (Upstream): `None` sends every buffer inline.
    pub oob: Option<OobConfig>,
    /// Fetching OOB and URL buffers (Downstream): size limit, URL timeout.
    pub fetch: FetchConfig,
}

impl Default for AssetsPlugin {
    fn default() -> Self {
        AssetsPlugin {
            oob: Some(OobConfig::default()),
            fetch: FetchConfig::default(),
        }
    }
}

impl Plugin for AssetsPlugin {
    fn build(&self, app: &mut App) {
        crate::schedule::configure(app);
        if let Some(oob) = &self.oob {
            app.insert_resource(oob.clone());
        }
        app.insert_resource(self.fetch.clone());
        remote::build(app);
        sync::build_import(app);
    }

    fn finish(&self, app: &mut App) {
        // After every plugin is built: mirror assets if the app has Bevy's asset collections.
        sync::build(app);
    }
}

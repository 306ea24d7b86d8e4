//! Environment assets (`EnvironmentAsset`, `spec/core/assets/environment.jaw`) checked without
//! an engine: which images an environment refers to.

use super::AssetError;
use crate::codec as w;

/// What an environment asset refers to: the image asset id of its lighting map (the env map,
/// else the sky map) and of its visible sky (when `is_skybox_visible`).
pub fn environment_images(a: &w::EnvironmentAsset) -> Result<(u64, Option<u64>), AssetError> {
    let f = a.flags;
    let entry = |what: &'static str, index: u8| -> Result<u64, AssetError> {
        a.table
            .0
            .get(usize::from(index))
            .map(|i| i.id.id.get())
            .ok_or_else(|| {
                AssetError::UnsupportedImage(format!(
                    "environment: {what} refers to image table entry {index}, the table has {} entries",
                    a.table.0.len()
                ))
            })
    };
    let env = (f.has_env_map() != 0)
        .then(|| entry("env_map_index", a.env_map_index))
        .transpose()?;
    let sky = (f.has_sky_map() != 0)
        .then(|| entry("sky_map_index", a.sky_map_index))
        .transpose()?;
    let light = env.or(sky).ok_or_else(|| {
        AssetError::UnsupportedImage(
            "environment: has neither an env map nor a sky map (flags has_env_map = has_sky_map = 0)"
                .into(),
        )
    })?;
    let visible = (f.is_skybox_visible() != 0).then_some(sky.unwrap_or(light));
    Ok((light, visible))
}

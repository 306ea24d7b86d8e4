//! Fuzz the material converter (`noodles2::assets::decode_material`) on arbitrary
//! `PBRMaterialAsset` bodies. It must not panic; a decoded material has only UV channels 0 and 1,
//! textures whose images are in its table, and values in their documented ranges.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::assets::{MAX_MATERIAL_IMAGES, decode_material};
use noodles2::codec::{PBRMaterialAsset, Wire};

fuzz_target!(|data: &[u8]| {
    let Ok(asset) = PBRMaterialAsset::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(m) = decode_material(&asset) else {
        return;
    };
    let table: Vec<u64> = asset.table.0.iter().map(|e| e.id.id.get()).collect();
    assert!(table.len() <= MAX_MATERIAL_IMAGES);
    for t in [m.color_map, m.orm_map, m.normal_map, m.emission_map]
        .into_iter()
        .flatten()
    {
        assert!(t.channel <= 1);
        assert!(table.contains(&t.image_id));
    }
    assert!((0.0..=1.0).contains(&m.roughness) && (0.0..=1.0).contains(&m.metallic));
    assert!((1.0..=5.0).contains(&m.ior));
});

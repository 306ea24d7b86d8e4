//! Fuzz the environment check (`noodles2::assets::environment_images`) on arbitrary
//! `EnvironmentAsset` bodies. Nothing may panic; an accepted environment names images from its
//! own table only. (The equirectangular → cubemap conversion then runs on an image that
//! `check_image`, fuzzed by `image_header`, admitted, into faces of at most 512 texels a side.)
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::assets::environment_images;
use noodles2::codec::{EnvironmentAsset, Wire};

fuzz_target!(|data: &[u8]| {
    let Ok(env) = EnvironmentAsset::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok((light, sky)) = environment_images(&env) else {
        return;
    };
    let table: Vec<u64> = env.table.0.iter().map(|i| i.id.id.get()).collect();
    assert!(table.contains(&light));
    if let Some(sky) = sky {
        assert!(table.contains(&sky));
    }
});

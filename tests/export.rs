//! The Upstream's asset export following changes (issue 10): images counted per material that
//! uses them, large images encoded (Upstream) and decoded (Downstream) off the main thread,
//! asset changes between send ticks kept for the next one, and a newer body replacing a decoding
//! still in flight.

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_noodles2::assets::{AssetExport, OFF_THREAD_BYTES};
use bevy_noodles2::mirror::Outgoing;
use bevy_noodles2::prelude::*;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(30);

fn pair_with(up_plugin: NoodlesPlugin) -> (App, App) {
    let mut up = asset_app_with(up_plugin);
    let mut down = asset_app("export down");
    linked(&mut up, &mut down);
    (up, down)
}

fn pair() -> (App, App) {
    pair_with(NoodlesPlugin {
        session_name: "export up".into(),
        ..default()
    })
}

/// A `size`×`size` RGBA image of pseudo-random pixels (PNG cannot shrink it much).
fn noise_image(size: u32, seed: u32) -> Image {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let data: Vec<u8> = (0..size * size * 4)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    Image::new(
        Extent3d {
            width: size,
            height: size,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

fn count<A: Asset>(app: &App) -> usize {
    app.world().resource::<Assets<A>>().len()
}

/// A shared cube with a material whose base color texture is `image`.
fn spawn_textured(app: &mut App, image: Handle<Image>) -> Entity {
    let world = app.world_mut();
    let mesh = world
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::new(1.0, 1.0, 1.0));
    let material = world
        .resource_mut::<Assets<StandardMaterial>>()
        .add(StandardMaterial {
            base_color_texture: Some(image),
            ..default()
        });
    world
        .spawn((
            Mesh3d(mesh),
            MeshMaterial3d(material),
            Transform::default(),
            Shared,
        ))
        .id()
}

/// The pixels of the texture of the Downstream material mirroring `e`, once it is there.
fn mirrored_texture(up: &App, down: &mut App, e: Entity) -> Option<Vec<u8>> {
    let e = mirror_of(up, down, e)?;
    let material = down.world().get::<MeshMaterial3d<StandardMaterial>>(e)?;
    let material = down
        .world()
        .resource::<Assets<StandardMaterial>>()
        .get(&material.0)?;
    let texture = material.base_color_texture.as_ref()?;
    down.world()
        .resource::<Assets<Image>>()
        .get(texture)?
        .data
        .clone()
}

#[test]
fn an_image_two_materials_use_stays_until_neither_does() {
    let (mut up, mut down) = pair();
    let image = up
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(noise_image(8, 1));
    let a = spawn_textured(&mut up, image.clone());
    let b = spawn_textured(&mut up, image);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "both textured cubes",
        |x| {
            let [u, d] = x else { unreachable!() };
            mirrored_texture(u, d, a).is_some() && mirrored_texture(u, d, b).is_some()
        },
    );
    assert_eq!(count::<Image>(&down), 1, "one image for both materials");
    assert_eq!(count::<StandardMaterial>(&down), 2);

    up.world_mut().despawn(a);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "a's material deleted",
        |x| count::<StandardMaterial>(x[1]) == 1,
    );
    pump(&mut [&mut up, &mut down], 10);
    assert_eq!(
        count::<Image>(&down),
        1,
        "b's material still uses the image"
    );
    assert!(mirrored_texture(&up, &mut down, b).is_some());

    up.world_mut().despawn(b);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the image deleted with the last material that used it",
        |x| count::<Image>(x[1]) == 0 && count::<StandardMaterial>(x[1]) == 0,
    );
}

#[test]
fn a_large_texture_is_encoded_and_decoded_off_the_main_thread() {
    let (mut up, mut down) = pair();
    // 512 × 512 × 4 bytes of noise: above the threshold both as pixels and as PNG.
    let original = noise_image(512, 7);
    assert!(original.data.as_ref().unwrap().len() > OFF_THREAD_BYTES);
    let pixels = original.data.clone().unwrap();
    let image = up.world_mut().resource_mut::<Assets<Image>>().add(original);
    let cube = spawn_textured(&mut up, image);
    let (mut encoding_seen, mut decoding_seen) = (false, false);
    run_until(&mut [&mut up, &mut down], LIMIT, "the large texture", |x| {
        let [u, d] = x else { unreachable!() };
        encoding_seen |= u.world().resource::<AssetExport>().encoding() > 0;
        decoding_seen |= d.world().resource::<AssetStats>().decoding > 0;
        mirrored_texture(u, d, cube).is_some()
    });
    assert!(
        encoding_seen,
        "the PNG was never encoded off the main thread"
    );
    assert!(
        decoding_seen,
        "the PNG was never decoded off the main thread"
    );
    assert_eq!(
        mirrored_texture(&up, &mut down, cube).unwrap(),
        pixels,
        "the texture arrived changed"
    );
    let stats = down.world().resource::<AssetStats>().clone();
    assert_eq!((stats.refused, stats.decoding), (0, 0), "{stats:?}");
}

#[test]
fn large_textures_arriving_together_are_decoded_a_few_at_a_time() {
    use bevy_noodles2::assets::AssetImport;
    let (mut up, mut down) = pair();
    let budget = down
        .world()
        .resource::<bevy_noodles2::assets::FetchConfig>()
        .max_decodes_in_flight;
    let cubes: Vec<(Entity, Vec<u8>)> = (0..5)
        .map(|i| {
            let image = noise_image(512, 11 + i);
            let pixels = image.data.clone().unwrap();
            let h = up.world_mut().resource_mut::<Assets<Image>>().add(image);
            (spawn_textured(&mut up, h), pixels)
        })
        .collect();
    let (mut most, mut off_thread) = (0, false);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "five large textures",
        |x| {
            let [u, d] = x else { unreachable!() };
            most = most.max(d.world().resource::<AssetImport>().decodes_running());
            off_thread |= d.world().resource::<AssetStats>().decoding > 0;
            cubes
                .iter()
                .all(|(c, _)| mirrored_texture(u, d, *c).is_some())
        },
    );
    assert!(off_thread, "nothing was decoded off the main thread");
    assert!(
        most <= budget,
        "{most} decodes ran at once, the budget is {budget}"
    );
    for (c, pixels) in &cubes {
        assert_eq!(&mirrored_texture(&up, &mut down, *c).unwrap(), pixels);
    }
    assert_eq!(down.world().resource::<AssetStats>().refused, 0);
}

#[test]
fn a_mesh_changed_between_send_ticks_goes_out_on_the_next_one() {
    let (mut up, mut down) = pair_with(NoodlesPlugin {
        session_name: "export up (send interval)".into(),
        mirror: MirrorConfig {
            send_interval: Some(Duration::from_millis(300)),
            ..default()
        },
        ..default()
    });
    let mesh = up
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::new(1.0, 1.0, 1.0));
    let e = up
        .world_mut()
        .spawn((Mesh3d(mesh.clone()), Transform::default(), Shared))
        .id();
    let vertices = |up: &App, down: &mut App| {
        let e = mirror_of(up, down, e)?;
        let h = down.world().get::<Mesh3d>(e)?.0.clone();
        Some(
            down.world()
                .resource::<Assets<Mesh>>()
                .get(&h)?
                .count_vertices(),
        )
    };
    run_until(&mut [&mut up, &mut down], LIMIT, "the cube", |x| {
        let [u, d] = x else { unreachable!() };
        vertices(u, d) == Some(24)
    });
    // Right after a send tick, the mesh becomes a sphere; its modified event is read in a frame
    // that is not a send tick, and must not be lost before the next one.
    run_until(&mut [&mut up], LIMIT, "a send tick", |x| {
        x[0].world().resource::<Outgoing>().is_send_tick()
    });
    let sphere = Mesh::from(Sphere::new(1.0));
    let sphere_vertices = sphere.count_vertices();
    *up.world_mut()
        .resource_mut::<Assets<Mesh>>()
        .get_mut(&mesh)
        .unwrap() = sphere;
    pump(&mut [&mut up], 3);
    run_until(&mut [&mut up, &mut down], LIMIT, "the sphere", |x| {
        let [u, d] = x else { unreachable!() };
        vertices(u, d) == Some(sphere_vertices)
    });
}

#[test]
fn a_large_image_that_does_not_decode_is_refused_off_the_main_thread() {
    use bevy_noodles2::assets::asset_type;
    use bevy_noodles2::codec as w;
    use bevy_noodles2::codec::Wire;
    let (mut up, mut down) = pair();
    // A PNG signature, then 300 KB of nothing PNG: above the threshold, so it is decoded on the
    // async compute pool, where it fails.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(300_000, 0x55);
    assert!(bytes.len() > OFF_THREAD_BYTES);
    let len = bytes.len() as u64;
    let buffer = w::BufferAsset {
        flags: w::BufferAssetFlags::default(),
        source: w::BufferSource::InlineContent(w::InlineContent(bytes.into())),
    };
    let image = w::ImageAsset {
        view: w::BufferView::new(0, len, w::BufferAssetID::new(w::AssetID::new(900))),
        flags: w::ImageFlags::default(),
    };
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        out.modify_asset(
            (0, asset_type::BUFFER, 900),
            buffer.encode_bytes().expect("buffer encodes"),
        );
        out.modify_asset(
            (0, asset_type::IMAGE, 901),
            image.encode_bytes().expect("image encodes"),
        );
    }
    let mover = up.world_mut().spawn((Transform::default(), Shared)).id();
    let mut decoding_seen = false;
    run_until(&mut [&mut up, &mut down], LIMIT, "the refusal", |x| {
        let stats = x[1].world().resource::<AssetStats>();
        decoding_seen |= stats.decoding > 0;
        stats.refused > 0
    });
    assert!(
        decoding_seen,
        "the image was not decoded off the main thread"
    );
    let stats = down.world().resource::<AssetStats>().clone();
    assert_eq!((stats.refused, stats.decoding), (1, 0), "{stats:?}");
    let refusal = stats.last_refusal.expect("a refusal").to_string();
    assert!(
        refusal.contains("image") && refusal.contains("901"),
        "{refusal}"
    );
    // The rest of the world goes on: the link is open and transforms still arrive.
    up.world_mut()
        .get_mut::<Transform>(mover)
        .expect("mover")
        .translation
        .x = 5.0;
    run_until(&mut [&mut up, &mut down], LIMIT, "the moved entity", |x| {
        let [u, d] = x else { unreachable!() };
        mirror_of(u, d, mover)
            .and_then(|e| d.world().get::<Transform>(e))
            .is_some_and(|t| t.translation.x == 5.0)
    });
    assert_eq!(open_links(&mut down), 1);
}

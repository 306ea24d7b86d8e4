//! Environment lighting: Bevy cubemaps ↔ the equirectangular `EnvironmentAsset` image (pure
//! conversions), and `GeneratedEnvironmentMapLight` mirrored from an Upstream to a Downstream
//! over a loopback link.

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::image::Image;
use bevy::light::{GeneratedEnvironmentMapLight, Skybox};
use bevy::prelude::*;
use bevy::render::render_resource::{
    Extent3d, TextureDimension, TextureFormat, TextureViewDimension,
};
use bevy_noodles2::assets::environment::*;
use bevy_noodles2::assets::image_from_wire;
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::prelude::*;
use bytes::Bytes;

use crate::common::{asset_app, components, connect, core_asset, inline_buffer, listen, run_until};

/// One linear color per face, in wgpu order (+X, −X, +Y, −Y, +Z, −Z); HDR values above 1 too.
const FACES: [[f32; 3]; 6] = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 1.0],
    [0.0, 1.0, 0.0],
    [1.0, 0.0, 1.0],
    [0.0, 0.0, 4.0],
    [2.0, 2.0, 0.0],
];

/// A cubemap whose faces are flat colors.
fn face_cube(size: u32, format: TextureFormat) -> Image {
    let mut cube = Image::new_fill(
        Extent3d {
            width: size,
            height: size,
            depth_or_array_layers: 6,
        },
        TextureDimension::D2,
        &vec![0; format.block_copy_size(None).unwrap() as usize],
        format,
        RenderAssetUsages::default(),
    );
    for (layer, c) in FACES.iter().enumerate() {
        for y in 0..size {
            for x in 0..size {
                cube.set_color_at_3d(x, y, layer as u32, Color::linear_rgb(c[0], c[1], c[2]))
                    .unwrap();
            }
        }
    }
    cube
}

fn close(a: [f32; 3], b: [f32; 3], tol: f32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1.0))
}

fn face_center(cube: &Image, layer: u32) -> [f32; 3] {
    let s = cube.texture_descriptor.size.width;
    let c = cube
        .get_color_at_3d(s / 2, s / 2, layer)
        .unwrap()
        .to_linear();
    [c.red, c.green, c.blue]
}

#[test]
fn equirect_directions_round_trip() {
    for (u, v) in [(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (0.1, 0.3), (0.9, 0.8)] {
        let d = equirect_direction(u, v);
        let (u2, v2) = equirect_coords(d);
        assert!(
            (u - u2).abs() < 1e-4 && (v - v2).abs() < 1e-4,
            "{u},{v} → {d} → {u2},{v2}"
        );
    }
    // The center looks down −Z, the top is +Y, u = 0.75 is +X.
    assert!(equirect_direction(0.5, 0.5).abs_diff_eq(Vec3::NEG_Z, 1e-5));
    assert!(equirect_direction(0.5, 0.0).abs_diff_eq(Vec3::Y, 1e-5));
    assert!(equirect_direction(0.75, 0.5).abs_diff_eq(Vec3::X, 1e-5));
}

#[test]
fn cubemap_round_trips_through_the_equirect_hdr_image() {
    for format in [TextureFormat::Rgba16Float, TextureFormat::Rgba32Float] {
        let cube = face_cube(32, format);
        let (hdr, flags) = environment_to_wire(&cube).expect("environment_to_wire");
        assert!(hdr.starts_with(b"#?RADIANCE"), "Radiance HDR expected");
        assert_eq!(flags.semantic(), w::ImageSemantic::Linear);
        let equirect = image_from_wire(&hdr, flags).expect("decode the HDR image");
        assert_eq!(
            (
                equirect.texture_descriptor.size.width,
                equirect.texture_descriptor.size.height
            ),
            (128, 64)
        );
        let back = equirect_to_cubemap(&equirect).expect("equirect_to_cubemap");
        assert_eq!(back.texture_descriptor.size.width, 32);
        assert_eq!(back.texture_descriptor.size.height, 32);
        assert_eq!(back.texture_descriptor.size.depth_or_array_layers, 6);
        assert_eq!(back.texture_descriptor.format, TextureFormat::Rgba16Float);
        assert_eq!(
            back.texture_view_descriptor
                .as_ref()
                .and_then(|v| v.dimension),
            Some(TextureViewDimension::Cube)
        );
        for (layer, want) in FACES.iter().enumerate() {
            let got = face_center(&back, layer as u32);
            // Radiance HDR keeps 8 bits of mantissa per channel.
            assert!(
                close(got, *want, 0.03),
                "{format:?} face {layer}: {got:?}, expected {want:?}"
            );
        }
    }
}

#[test]
fn cubemap_faces_are_powers_of_two_and_bounded() {
    let img = |w: u32, h: u32| {
        Image::new_fill(
            Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            &[10, 20, 30, 255],
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::default(),
        )
    };
    for (w, h, face) in [
        (100, 50, 16),
        (4096, 2048, 512),
        (8, 4, 2),
        (1, 1, 1),
        (300, 10, 64),
    ] {
        let cube = equirect_to_cubemap(&img(w, h)).unwrap();
        assert_eq!(cube.texture_descriptor.size.width, face, "{w}x{h}");
        assert!(face.is_power_of_two());
    }
}

#[test]
fn bad_environments_are_refused() {
    let flat = Image::default();
    assert!(
        environment_to_wire(&flat)
            .unwrap_err()
            .to_string()
            .contains("cubemap")
    );
    let cube = face_cube(4, TextureFormat::R8Unorm);
    assert!(environment_to_wire(&cube).is_err());

    let mut a = environment_asset(7, true);
    assert_eq!(environment_images(&a).unwrap(), (7, Some(7)));
    a.env_map_index = 3;
    let msg = environment_images(&a).unwrap_err().to_string();
    assert!(
        msg.contains("env_map_index") && msg.contains("entry 3"),
        "{msg}"
    );
    a.flags = w::EnvironmentFlags::default();
    assert!(
        environment_images(&a)
            .unwrap_err()
            .to_string()
            .contains("neither")
    );
    // Through the codec.
    let a = environment_asset(9, false);
    let back = w::EnvironmentAsset::decode(Bytes::from(a.encode().unwrap())).unwrap();
    assert_eq!(back, a);
    assert_eq!(environment_images(&back).unwrap(), (9, None));
}

#[test]
fn environment_light_is_mirrored_with_its_cubemap() {
    let mut up = asset_app("env upstream");
    let mut down = asset_app("env downstream");
    let cube = up
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(face_cube(16, TextureFormat::Rgba16Float));
    let rotation = Quat::from_rotation_y(0.7);
    up.world_mut().spawn((
        Name::new("environment"),
        GeneratedEnvironmentMapLight {
            environment_map: cube,
            intensity: 1234.0,
            rotation,
            ..default()
        },
        Shared,
    ));
    let url = listen(&mut up);
    connect(&mut down, NoodlesConnect::new(url));

    let mut found: Option<GeneratedEnvironmentMapLight> = None;
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the environment light and its cubemap on the Downstream",
        |apps| {
            let down = &mut apps[1];
            let mut q = down
                .world_mut()
                .query_filtered::<&GeneratedEnvironmentMapLight, With<Mirrored>>();
            let Some(e) = q.iter(down.world()).next().cloned() else {
                return false;
            };
            let loaded = down
                .world()
                .resource::<Assets<Image>>()
                .contains(&e.environment_map);
            if loaded {
                found = Some(e);
            }
            loaded
        },
    );
    let e = found.unwrap();
    assert_eq!(e.intensity, 1234.0);
    assert!(e.rotation.abs_diff_eq(rotation, 1e-6));
    let images = down.world().resource::<Assets<Image>>();
    let back = images.get(&e.environment_map).unwrap();
    assert_eq!(back.texture_descriptor.size.depth_or_array_layers, 6);
    assert_eq!(back.texture_descriptor.size.width, 16);
    for (layer, want) in FACES.iter().enumerate() {
        let got = face_center(back, layer as u32);
        assert!(
            close(got, *want, 0.03),
            "face {layer}: {got:?}, expected {want:?}"
        );
    }
    let skies = down.world().resource::<ImportedEnvironments>();
    assert_eq!(skies.skies.get(&e.environment_map.id()), Some(&Sky::Hidden));

    // Unsharing deletes it on the Downstream.
    let mut q = up
        .world_mut()
        .query_filtered::<Entity, With<GeneratedEnvironmentMapLight>>();
    let src = q.single(up.world()).unwrap();
    up.world_mut().entity_mut(src).remove::<Shared>();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the environment light gone on the Downstream",
        |apps| {
            let down = &mut apps[1];
            let mut q = down
                .world_mut()
                .query_filtered::<(), (With<GeneratedEnvironmentMapLight>, With<Mirrored>)>();
            q.iter(down.world()).next().is_none()
        },
    );
}

fn camera_sky(down: &App, cam: Entity) -> Option<Skybox> {
    down.world().get::<Skybox>(cam).cloned()
}

#[test]
fn every_camera_is_lit_by_the_mirrored_environment_and_shows_its_sky() {
    let mut up = asset_app("env sky upstream");
    let mut down = asset_app("env sky downstream");
    let cube = up
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(face_cube(8, TextureFormat::Rgba16Float));
    let rotation = Quat::from_rotation_y(0.3);
    let source = up
        .world_mut()
        .spawn((
            GeneratedEnvironmentMapLight {
                environment_map: cube.clone(),
                intensity: 800.0,
                rotation,
                ..default()
            },
            // The Upstream shows it as its sky: `is_skybox_visible`.
            Skybox {
                image: Some(cube),
                brightness: 800.0,
                rotation,
            },
            Shared,
        ))
        .id();
    let cam = down.world_mut().spawn(Camera3d::default()).id();
    let own_light = GeneratedEnvironmentMapLight {
        intensity: 5.0,
        ..default()
    };
    let app_lit = down
        .world_mut()
        .spawn((Camera3d::default(), own_light.clone()))
        .id();
    let opted_out = down
        .world_mut()
        .spawn((Camera3d::default(), NoMirroredEnvironment))
        .id();
    let url = listen(&mut up);
    connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the camera lit, with the sky",
        |apps| camera_sky(apps[1], cam).is_some(),
    );
    let light = down
        .world()
        .get::<GeneratedEnvironmentMapLight>(cam)
        .unwrap()
        .clone();
    // The wire's intensity is Bevy's cd/m² scale, unchanged, for the light and the sky.
    assert_eq!(light.intensity, 800.0);
    assert!(light.rotation.abs_diff_eq(rotation, 1e-6));
    let sky = camera_sky(&down, cam).unwrap();
    assert_eq!(sky.brightness, 800.0);
    assert_eq!(sky.image.as_ref(), Some(&light.environment_map));
    assert!(sky.rotation.abs_diff_eq(rotation, 1e-6));
    assert_eq!(
        down.world()
            .get::<GeneratedEnvironmentMapLight>(app_lit)
            .map(|l| l.intensity),
        Some(own_light.intensity),
        "a camera the app lit itself is left alone"
    );
    assert!(
        down.world()
            .get::<EnvironmentFromUpstream>(app_lit)
            .is_none()
    );
    assert!(camera_sky(&down, app_lit).is_none());
    assert!(
        down.world()
            .get::<GeneratedEnvironmentMapLight>(opted_out)
            .is_none()
    );

    // The Upstream hides its sky: the flag is re-sent, the sky goes, the light stays.
    up.world_mut().entity_mut(source).remove::<Skybox>();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the sky hidden",
        |apps| camera_sky(apps[1], cam).is_none(),
    );
    assert!(
        down.world()
            .get::<GeneratedEnvironmentMapLight>(cam)
            .is_some()
    );
    // The environment goes: so does the camera's light.
    up.world_mut().entity_mut(source).remove::<Shared>();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the camera's light removed",
        |apps| {
            apps[1]
                .world()
                .get::<GeneratedEnvironmentMapLight>(cam)
                .is_none()
        },
    );
}

/// Buffer `id` holding an equirectangular HDR image of `cube`, and image `id + 1` on it.
fn equirect_assets(id: u64, cube: &Image) -> Vec<w::ContentMessage> {
    let (hdr, flags) = environment_to_wire(cube).unwrap();
    let len = hdr.len() as u64;
    vec![
        inline_buffer(id, hdr),
        core_asset(
            2,
            id + 1,
            w::ImageAsset {
                view: w::BufferView::new(0, len, w::BufferAssetID::new(w::AssetID::new(id))),
                flags,
            }
            .encode()
            .unwrap(),
        ),
    ]
}

#[test]
fn a_separate_sky_map_is_the_cameras_sky() {
    let (mut up, mut down) = crate::common::linked_asset_apps("sky map");
    let cam = down.world_mut().spawn(Camera3d::default()).id();
    let mut content = equirect_assets(10, &face_cube(8, TextureFormat::Rgba16Float));
    // The sky: a flat grey.
    let grey = Image::new_fill(
        Extent3d {
            width: 4,
            height: 4,
            depth_or_array_layers: 6,
        },
        TextureDimension::D2,
        &[128, 128, 128, 255],
        TextureFormat::Rgba8Unorm,
        RenderAssetUsages::default(),
    );
    content.extend(equirect_assets(20, &grey));
    let env = w::EnvironmentAsset {
        flags: w::EnvironmentFlags::default()
            .with_format(w::EnvironmentFormat::Equirect)
            .with_has_env_map(1)
            .with_has_sky_map(1)
            .with_is_skybox_visible(1),
        table: w::EnvImageTable(vec![
            w::ImageAssetID::new(w::AssetID::new(21)),
            w::ImageAssetID::new(w::AssetID::new(11)),
        ]),
        env_map_index: 1,
        sky_map_index: 0,
    };
    content.push(core_asset(1, 30, env.encode().unwrap()));
    let component = w::EnvironmentComponent::new(
        w::EnvironmentAssetID::new(w::AssetID::new(30)),
        2.5,
        w::UnitQuaternion::new(0.0, 0.0, 0.0, 1.0),
    );
    content.push(components(0, 3, &[(7, component.encode().unwrap())]));
    crate::common::send_transaction(&mut up, content);
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the sky map on the camera",
        |apps| {
            camera_sky(apps[1], cam)
                .and_then(|s| s.image)
                .is_some_and(|h| apps[1].world().resource::<Assets<Image>>().contains(&h))
        },
    );
    let light = down
        .world()
        .get::<GeneratedEnvironmentMapLight>(cam)
        .unwrap()
        .clone();
    assert_eq!(light.intensity, 2.5);
    let sky = camera_sky(&down, cam).unwrap().image.unwrap();
    assert_ne!(sky, light.environment_map, "the sky is its own cubemap");
    let images = down.world().resource::<Assets<Image>>();
    let sky = images.get(&sky).unwrap();
    assert_eq!(sky.texture_descriptor.size.depth_or_array_layers, 6);
    // Grey everywhere (128/255 in linear terms, as Rgba8Unorm stores it).
    let c = face_center(sky, 2);
    assert!(close(c, [128.0 / 255.0; 3], 0.03), "{c:?}");
    // The lighting map is the face cube, not the grey.
    let lit = images.get(&light.environment_map).unwrap();
    assert!(close(face_center(lit, 4), FACES[4], 0.03));
}

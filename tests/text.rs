//! Text: `Text3d` ↔ `TextComponent` over a loopback link, and bad text (not UTF-8, a height
//! that is not a finite number above zero) closing the link with a reason, the world intact.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::{self as w, Wire};
use bevy_noodles2::prelude::*;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn text_is_mirrored_both_ways() {
    let mut up = app("text up");
    let mut down = app("text down");
    linked(&mut up, &mut down);
    let label = Text3d {
        text: "Grüße, Welt\nline two".into(),
        color: Color::srgb_u8(250, 128, 3),
        height: 0.25,
    };
    let e = up
        .world_mut()
        .spawn((label.clone(), Transform::default(), Shared))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "the text", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, e).is_some_and(|m| d.world().get::<Text3d>(m).is_some())
    });
    let m = mirror_of(&up, &mut down, e).unwrap();
    assert_eq!(down.world().get::<Text3d>(m), Some(&label));

    up.world_mut().get_mut::<Text3d>(e).unwrap().text = "changed".into();
    run_until(&mut [&mut up, &mut down], LIMIT, "the change", |a| {
        a[1].world()
            .get::<Text3d>(m)
            .is_some_and(|t| t.text == "changed")
    });
    up.world_mut().entity_mut(e).remove::<Text3d>();
    run_until(&mut [&mut up, &mut down], LIMIT, "the removal", |a| {
        a[1].world().get::<Text3d>(m).is_none()
    });
}

fn bad_text_closes_the_link(value: Vec<u8>, expect: &[&str]) {
    let (mut up, mut down) = linked_keeping("bad text");
    let kept = up
        .world_mut()
        .spawn((Text3d::new("before"), Transform::default(), Shared))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "the first text", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, kept).is_some_and(|m| d.world().get::<Text3d>(m).is_some())
    });
    send_transaction(&mut up, vec![components(0, 19, &[(77, value)])]);
    run_until(&mut [&mut up, &mut down], LIMIT, "the link to close", |a| {
        open_links(a[1]) == 0
    });
    let reasons: Vec<String> = closed_reasons(&down)
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| expect.iter().all(|x| r.contains(x))),
        "{reasons:?}"
    );
    assert!(mirror_of_id(&mut down, 77).is_none());
    let m = mirror_of(&up, &mut down, kept).unwrap();
    assert_eq!(
        down.world().get::<Text3d>(m).map(|t| t.text.as_str()),
        Some("before")
    );
}

#[test]
fn text_that_is_not_utf8_closes_the_link_naming_it() {
    let mut bad = w::TextComponent::default().encode().unwrap();
    let n = bad.len();
    bad[n - 2] = 1; // one byte of text...
    bad.push(0xFF); // ...that is not UTF-8
    bad_text_closes_the_link(bad, &["Text3d", "text", "invalid UTF-8"]);
}

#[test]
fn a_height_that_is_not_a_positive_number_closes_the_link() {
    let bad = w::TextComponent {
        color: w::SRGB8::new(1, 2, 3),
        height: f32::NAN,
        text: "nan".into(),
    }
    .encode()
    .unwrap();
    bad_text_closes_the_link(bad, &["Text3d", "height", "NaN"]);
}

/// With Bevy's text pipeline (and no renderer): a `Text3d` becomes a child `TextMesh` of glyph
/// quads textured from Bevy's glyph atlas, in the text's color, one em `height` high, centred;
/// it follows changes and goes with the `Text3d`.
#[test]
fn text_is_laid_out_as_glyph_quads_from_the_atlas() {
    use bevy::mesh::Indices;
    use bevy_noodles2::text::TextMesh;

    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        bevy::transform::TransformPlugin,
        AssetPlugin::default(),
    ))
    .init_asset::<Mesh>()
    .init_asset::<StandardMaterial>()
    .init_asset::<Image>()
    .add_plugins(bevy::text::TextPlugin)
    .add_plugins(NoodlesPlugin {
        session_name: "text layout".into(),
        ..default()
    });
    app.finish();
    app.cleanup();
    let color = Color::srgb(0.2, 0.4, 0.9);
    let e = app
        .world_mut()
        .spawn((
            Text3d {
                text: "NO ODLES".into(),
                color,
                height: 0.5,
            },
            Transform::default(),
        ))
        .id();
    let quads = |app: &mut App| -> Option<(usize, Vec<[f32; 3]>, StandardMaterial)> {
        let children = app.world().get::<Children>(e)?;
        let child = children
            .iter()
            .find(|c| app.world().get::<TextMesh>(*c).is_some())?;
        let mesh = app.world().get::<Mesh3d>(child)?;
        let mesh = app.world().resource::<Assets<Mesh>>().get(&mesh.0)?;
        let material = app.world().get::<MeshMaterial3d<StandardMaterial>>(child)?;
        let material = app
            .world()
            .resource::<Assets<StandardMaterial>>()
            .get(&material.0)?
            .clone();
        let n = match mesh.indices()? {
            Indices::U16(i) => i.len(),
            Indices::U32(i) => i.len(),
        } / 6;
        let positions = mesh
            .attribute(Mesh::ATTRIBUTE_POSITION)?
            .as_float3()?
            .to_vec();
        Some((n, positions, material))
    };
    let mut found = None;
    for _ in 0..20 {
        app.update();
        found = quads(&mut app);
        if found.is_some() {
            break;
        }
    }
    let (n, positions, material) = found.expect("a TextMesh child with glyph quads");
    // Seven visible glyphs: the space draws nothing.
    assert_eq!(n, 7);
    let (min, max) = positions.iter().fold(
        (Vec3::splat(f32::MAX), Vec3::splat(f32::MIN)),
        |(a, b), p| (a.min(Vec3::from(*p)), b.max(Vec3::from(*p))),
    );
    // Centred on the origin, in the XY plane, capitals a little under one em (0.5) high.
    assert!((min.x + max.x).abs() < 0.1, "{min} {max}");
    assert!(min.z == 0.0 && max.z == 0.0);
    let h = max.y - min.y;
    assert!(h > 0.25 && h < 0.5, "glyph height {h}");
    assert!(
        max.x - min.x > 1.0,
        "eight monospace characters are wider than 1 unit"
    );
    assert_eq!(material.base_color, color);
    assert!(material.unlit && material.base_color_texture.is_some());
    assert_eq!(material.alpha_mode, AlphaMode::Blend);

    // A change is laid out again; the removal takes the mesh away.
    app.world_mut().get_mut::<Text3d>(e).unwrap().text = "N".into();
    app.update();
    app.update();
    assert_eq!(quads(&mut app).map(|q| q.0), Some(1));
    let meshes = |app: &mut App| {
        app.world_mut()
            .query_filtered::<(), With<TextMesh>>()
            .iter(app.world())
            .count()
    };
    assert_eq!(meshes(&mut app), 1, "the old mesh went");
    app.world_mut().entity_mut(e).remove::<Text3d>();
    app.update();
    app.update();
    assert_eq!(meshes(&mut app), 0);
}

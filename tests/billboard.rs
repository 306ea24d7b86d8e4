//! Billboards: `Billboard` ↔ `BillboardComponent` over a loopback link, and the entity (with its
//! children) turned to the camera after transform propagation, fully or around +Y only.

use std::time::Duration;

use bevy::prelude::*;
use bevy::transform::TransformPlugin;
use bevy_noodles2::prelude::*;

use crate::common::*;

/// A headless app with transform propagation (which `MinimalPlugins` lacks).
fn scene_app(name: &str) -> App {
    scene_app_with(NoodlesPlugin {
        session_name: name.into(),
        ..default()
    })
}

fn scene_app_with(plugin: NoodlesPlugin) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, TransformPlugin))
        .add_plugins(plugin);
    app.finish();
    app.cleanup();
    app
}

fn camera_at(app: &mut App, at: Vec3) -> Entity {
    app.world_mut()
        .spawn((
            Camera3d::default(),
            Transform::from_translation(at).looking_at(Vec3::ZERO, Vec3::Y),
        ))
        .id()
}

fn global(app: &App, e: Entity) -> GlobalTransform {
    *app.world().get::<GlobalTransform>(e).unwrap()
}

#[test]
fn a_billboard_and_its_children_face_the_camera() {
    let mut app = scene_app("billboards");
    let cam = camera_at(&mut app, Vec3::new(4.0, 3.0, 5.0));
    let full = app
        .world_mut()
        .spawn((
            Billboard::FaceCamera,
            // Its own rotation is ignored; translation and scale are kept.
            Transform::from_xyz(1.0, 0.5, -2.0)
                .with_rotation(Quat::from_rotation_x(1.0))
                .with_scale(Vec3::splat(2.0)),
        ))
        .id();
    let child = app
        .world_mut()
        .spawn((Transform::from_xyz(0.0, 1.0, 0.0), ChildOf(full)))
        .id();
    let upright = app
        .world_mut()
        .spawn((Billboard::YAxisOnly, Transform::from_xyz(-1.0, 0.0, 0.0)))
        .id();
    app.update();
    app.update();

    let cam_rotation = global(&app, cam).rotation();
    let g = global(&app, full);
    let (scale, rotation, translation) = g.to_scale_rotation_translation();
    assert!(rotation.abs_diff_eq(cam_rotation, 1e-5), "{rotation:?}");
    assert!(translation.abs_diff_eq(Vec3::new(1.0, 0.5, -2.0), 1e-5));
    assert!(scale.abs_diff_eq(Vec3::splat(2.0), 1e-5));
    // The child hangs off the turned parent: up along the camera's up, twice as far (scale 2).
    let c = global(&app, child).translation();
    let want = translation + cam_rotation * Vec3::Y * 2.0;
    assert!(c.abs_diff_eq(want, 1e-4), "{c} vs {want}");

    // Around +Y only: stays upright, +Z towards the camera on the ground plane.
    let r = global(&app, upright).rotation();
    assert!((r * Vec3::Y).abs_diff_eq(Vec3::Y, 1e-5));
    let facing = r * Vec3::Z;
    let back = cam_rotation * Vec3::Z;
    let want = Vec3::new(back.x, 0.0, back.z).normalize();
    assert!(facing.abs_diff_eq(want, 1e-5), "{facing} vs {want}");

    // The camera moves: so do the billboards, every frame.
    app.world_mut()
        .entity_mut(cam)
        .insert(Transform::from_xyz(-6.0, 1.0, 0.5).looking_at(Vec3::ZERO, Vec3::Y));
    app.update();
    let cam_rotation = global(&app, cam).rotation();
    assert!(
        global(&app, full)
            .rotation()
            .abs_diff_eq(cam_rotation, 1e-5)
    );
    // The Transform (what is mirrored) was never touched.
    assert_eq!(
        app.world().get::<Transform>(full).unwrap().rotation,
        Quat::from_rotation_x(1.0)
    );
}

#[test]
fn the_marked_camera_wins() {
    let mut app = scene_app("two cameras");
    let _front = camera_at(&mut app, Vec3::new(0.0, 0.0, 5.0));
    let side = camera_at(&mut app, Vec3::new(5.0, 0.0, 0.0));
    app.world_mut().entity_mut(side).insert(BillboardCamera);
    let b = app
        .world_mut()
        .spawn((Billboard::FaceCamera, Transform::default()))
        .id();
    app.update();
    app.update();
    assert!(
        global(&app, b)
            .rotation()
            .abs_diff_eq(global(&app, side).rotation(), 1e-5)
    );
}

#[test]
fn billboards_are_mirrored() {
    let mut up = scene_app("billboard up");
    let mut down = scene_app("billboard down");
    linked(&mut up, &mut down);
    let a = up
        .world_mut()
        .spawn((Billboard::YAxisOnly, Transform::default(), Shared))
        .id();
    let b = up
        .world_mut()
        .spawn((Billboard::FaceCamera, Transform::default(), Shared))
        .id();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the billboards",
        |apps| {
            [a, b].iter().all(|e| {
                let id = apps[0].world().get::<SharedId>(*e).unwrap().get();
                mirror_of_id(apps[1], id)
                    .is_some_and(|m| apps[1].world().get::<Billboard>(m).is_some())
            })
        },
    );
    let ma = mirror_of(&up, &mut down, a).unwrap();
    let mb = mirror_of(&up, &mut down, b).unwrap();
    assert_eq!(
        down.world().get::<Billboard>(ma),
        Some(&Billboard::YAxisOnly)
    );
    assert_eq!(
        down.world().get::<Billboard>(mb),
        Some(&Billboard::FaceCamera)
    );
    up.world_mut().entity_mut(a).remove::<Billboard>();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the removal",
        |apps| apps[1].world().get::<Billboard>(ma).is_none(),
    );
}

#[test]
fn an_unknown_billboard_mode_closes_the_link_naming_the_field() {
    let mut up = scene_app("bad billboard up");
    // Mirrored entities stay after the close, to show what was applied.
    let mut down = scene_app_with(keeping_on_close("bad billboard down"));
    log_closed(&mut down);
    linked(&mut up, &mut down);
    let kept = up
        .world_mut()
        .spawn((Name::new("before"), Transform::default(), Shared))
        .id();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the first entity",
        |apps| {
            let id = apps[0].world().get::<SharedId>(kept).unwrap().get();
            mirror_of_id(apps[1], id).is_some()
        },
    );
    // Mode 7 is neither FaceCamera (0) nor YAxisOnly (1).
    send_transaction(&mut up, vec![components(0, 2, &[(99, vec![7])])]);
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the link to close",
        |apps| open_links(apps[1]) == 0,
    );
    let reasons = closed_reasons(&down);
    assert!(
        reasons.iter().any(|r| {
            let r = r.to_string();
            r.contains("Billboard") && r.contains("mode") && r.contains('7')
        }),
        "{reasons:?}"
    );
    // Nothing of the bad transaction was applied, and what was mirrored before is intact.
    assert!(mirror_of_id(&mut down, 99).is_none());
    let id = up.world().get::<SharedId>(kept).unwrap().get();
    let before = mirror_of_id(&mut down, id).expect("kept");
    assert_eq!(
        down.world().get::<Name>(before).map(Name::as_str),
        Some("before")
    );
}

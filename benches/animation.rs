//! Animation benchmark (issue 12): CPU per frame to animate 1,000 skinned characters of 24
//! joints (a Fox-like rig: translation, rotation and scale curves per joint, 18 linear keys at
//! 24 Hz), each playing one clip from its own start time, on a Downstream with our evaluator
//! (`NoodlesAnimator`, the clip converted the way the plugin converts Bevy clips), against Bevy's
//! own `AnimationPlayer` playing the same `AnimationClip`s, in the same process and run.
//!
//! ```sh
//! cargo bench --bench animation
//! ```
//!
//! # Method
//!
//! Each side is one `App` on `MinimalPlugins` with single-threaded schedules and one thread per
//! task pool (Bevy's target evaluation is a `par_iter_mut`; with one thread both times are CPU
//! time on one core, not the scheduling of the second), updated 300 times after 30 warm-up
//! frames. The timed section is the work that animates: for Bevy, the `AnimationSystems` set
//! (advancing players and evaluating their graphs and curves into `Transform`s); for us, the
//! `NoodlesSystems::Animate` set (sampling every layer's channels at the authority time,
//! blending, writing `Transform`s). Marker systems before and after the set stamp the time. The
//! table prints medians and their ratio; both write 72,000 joint members per frame.

use std::time::Instant;

use bevy::animation::animated_field;
use bevy::animation::animation_curves::AnimatableCurve;
use bevy::animation::graph::{AnimationGraph, AnimationGraphHandle};
use bevy::animation::{AnimatedBy, AnimationClip, AnimationPlayer, AnimationTargetId};
use bevy::app::AnimationSystems;
use bevy::ecs::schedule::SingleThreadedExecutor;
use bevy::math::curve::UnevenSampleAutoCurve;
use bevy::mesh::skinning::SkinnedMeshInverseBindposes;
use bevy::prelude::*;
use bevy_noodles2::animation::bevy_clips::samplers_from_curve;
use bevy_noodles2::animation::{
    AnimSampler, ClipChannel, ClipTarget, Layer, NoodlesAnimator, NoodlesClip,
};
use bevy_noodles2::prelude::*;

const CHARACTERS: usize = 1_000;
const JOINTS: usize = 24;
const KEYS: usize = 18;
const WARMUP: usize = 30;
const FRAMES: usize = 300;

/// Start and end stamps of the timed section in the last update.
#[derive(Resource, Default)]
struct Stamps(Option<Instant>, Option<Instant>);

fn start(mut s: ResMut<Stamps>) {
    s.0 = Some(Instant::now());
}

fn end(mut s: ResMut<Stamps>) {
    s.1 = Some(Instant::now());
}

/// `MinimalPlugins` with one thread in every task pool: Bevy evaluates its targets with
/// `par_iter_mut`, which would otherwise use the second core; one thread makes both sides' times
/// CPU time.
fn one_thread() -> impl PluginGroup {
    MinimalPlugins.set(TaskPoolPlugin {
        task_pool_options: TaskPoolOptions::with_num_threads(1),
    })
}

fn single_threaded(app: &mut App) {
    let mut schedules = app.world_mut().resource_mut::<Schedules>();
    for (_, schedule) in schedules.iter_mut() {
        schedule.set_executor(SingleThreadedExecutor::new());
    }
}

fn median(mut s: Vec<f64>) -> f64 {
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// A walk-like clip over `names` joints: every joint has translation, rotation and scale curves
/// with 18 keys at 1/24 s, each joint phase-shifted.
fn clip(targets: &[AnimationTargetId]) -> AnimationClip {
    let mut clip = AnimationClip::default();
    let times: Vec<f32> = (0..KEYS).map(|k| k as f32 / 24.0).collect();
    for (j, target) in targets.iter().enumerate() {
        let phase = j as f32 * 0.3;
        let wave = |k: usize| (k as f32 * 0.35 + phase).sin();
        let translation = UnevenSampleAutoCurve::new(
            times
                .iter()
                .enumerate()
                .map(|(k, t)| (*t, Vec3::new(wave(k), 1.0 + 0.1 * wave(k + 3), 0.0))),
        )
        .unwrap();
        let rotation = UnevenSampleAutoCurve::new(
            times
                .iter()
                .enumerate()
                .map(|(k, t)| (*t, Quat::from_rotation_z(0.6 * wave(k)))),
        )
        .unwrap();
        let scale = UnevenSampleAutoCurve::new(
            times
                .iter()
                .enumerate()
                .map(|(k, t)| (*t, Vec3::splat(1.0 + 0.05 * wave(k + 5)))),
        )
        .unwrap();
        clip.add_curve_to_target(
            *target,
            AnimatableCurve::new(animated_field!(Transform::translation), translation),
        );
        clip.add_curve_to_target(
            *target,
            AnimatableCurve::new(animated_field!(Transform::rotation), rotation),
        );
        clip.add_curve_to_target(
            *target,
            AnimatableCurve::new(animated_field!(Transform::scale), scale),
        );
    }
    clip
}

fn names() -> Vec<AnimationTargetId> {
    (0..JOINTS)
        .map(|j| AnimationTargetId::from_name(&Name::new(format!("joint {j}"))))
        .collect()
}

/// Run `app` and time the section between the stamps: median µs per frame.
fn run(app: &mut App) -> f64 {
    for _ in 0..WARMUP {
        app.update();
    }
    let mut samples = Vec::with_capacity(FRAMES);
    for _ in 0..FRAMES {
        app.update();
        let s = app.world().resource::<Stamps>();
        let (Some(a), Some(b)) = (s.0, s.1) else {
            panic!("the timed section did not run");
        };
        samples.push(b.duration_since(a).as_secs_f64() * 1e6);
    }
    median(samples)
}

/// Bevy: 1,000 `AnimationPlayer`s, each playing the clip from its own time.
fn bevy_side() -> (f64, Vec<Transform>) {
    let mut app = App::new();
    app.add_plugins(one_thread())
        .add_plugins(AssetPlugin::default())
        .add_plugins(bevy::animation::AnimationPlugin)
        .init_resource::<Stamps>()
        .add_systems(
            PostUpdate,
            (start.before(AnimationSystems), end.after(AnimationSystems)),
        );
    app.finish();
    app.cleanup();
    single_threaded(&mut app);
    let targets = names();
    let clip = app
        .world_mut()
        .resource_mut::<Assets<AnimationClip>>()
        .add(clip(&targets));
    let (graph, node) = AnimationGraph::from_clip(clip);
    let graph = app
        .world_mut()
        .resource_mut::<Assets<AnimationGraph>>()
        .add(graph);
    let mut first_joints = Vec::new();
    for c in 0..CHARACTERS {
        let mut player = AnimationPlayer::default();
        player.play(node).repeat().seek_to(c as f32 * 0.013 % 0.7);
        let p = app
            .world_mut()
            .spawn((
                player,
                AnimationGraphHandle(graph.clone()),
                Transform::default(),
            ))
            .id();
        for t in &targets {
            let j = app
                .world_mut()
                .spawn((*t, AnimatedBy(p), Transform::default(), ChildOf(p)))
                .id();
            if c == 0 {
                first_joints.push(j);
            }
        }
    }
    let us = run(&mut app);
    let pose = first_joints
        .iter()
        .map(|j| *app.world().get::<Transform>(*j).unwrap())
        .collect();
    (us, pose)
}

/// Ours: 1,000 `NoodlesAnimator`s with their own clips (channels to their joints) sharing the
/// samplers converted from the same Bevy clip.
fn our_side() -> (f64, Vec<Transform>) {
    let mut app = App::new();
    app.add_plugins(one_thread())
        .add_plugins(AssetPlugin::default())
        .init_asset::<Mesh>()
        .init_asset::<StandardMaterial>()
        .init_asset::<Image>()
        .init_asset::<SkinnedMeshInverseBindposes>()
        .add_plugins(NoodlesPlugin::default())
        .init_resource::<Stamps>()
        .add_systems(
            PostUpdate,
            (
                start.before(NoodlesSystems::Animate),
                end.after(NoodlesSystems::Animate)
                    .before(NoodlesSystems::ExportAssets),
            ),
        );
    app.finish();
    app.cleanup();
    single_threaded(&mut app);
    let targets = names();
    let source = clip(&targets);
    // target → its samplers, converted once and shared by every character.
    let mut converted = Vec::new();
    for t in &targets {
        for curve in &source.curves()[t] {
            for (target, s) in samplers_from_curve(curve.0.as_ref(), source.duration()) {
                let h = app
                    .world_mut()
                    .resource_mut::<Assets<AnimSampler>>()
                    .add(AnimSampler(s));
                converted.push((t, target, h));
            }
        }
    }
    let mut first_joints = Vec::new();
    for c in 0..CHARACTERS {
        let joints: Vec<(AnimationTargetId, Entity)> = targets
            .iter()
            .map(|t| (*t, app.world_mut().spawn(Transform::default()).id()))
            .collect();
        if c == 0 {
            first_joints = joints.iter().map(|(_, e)| *e).collect();
        }
        let channels = converted
            .iter()
            .map(|(t, target, h)| {
                let e = joints.iter().find(|(id, _)| id == *t).unwrap().1;
                ClipChannel {
                    sampler: h.clone(),
                    target: ClipTarget::Entity(e, *target),
                }
            })
            .collect();
        let clip = app
            .world_mut()
            .resource_mut::<Assets<NoodlesClip>>()
            .add(NoodlesClip {
                duration: f64::from(source.duration()),
                channels,
            });
        let layer = Layer {
            clip_time_offset: f64::from(c as f32 * 0.013 % 0.7),
            ..Layer::default()
        };
        app.world_mut().spawn(NoodlesAnimator {
            layers: vec![bevy_noodles2::animation::AnimatorLayer { clip, layer }],
        });
    }
    let us = run(&mut app);
    let pose = first_joints
        .iter()
        .map(|j| *app.world().get::<Transform>(*j).unwrap())
        .collect();
    (us, pose)
}

fn main() {
    // Cargo passes `--bench`; nothing to parse.
    let (bevy_us, bevy_pose) = bevy_side();
    let (ours_us, our_pose) = our_side();
    // Both animate: the first character's joints moved away from the identity.
    let moved = |pose: &[Transform]| pose.iter().filter(|t| **t != Transform::default()).count();
    assert!(moved(&bevy_pose) == JOINTS && moved(&our_pose) == JOINTS);
    println!();
    println!(
        "animation: {CHARACTERS} characters x {JOINTS} joints x 3 curves ({KEYS} keys), median of {FRAMES} frames"
    );
    println!("| evaluator | µs per frame | µs per character | ratio to Bevy |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| Bevy AnimationPlayer (AnimationSystems) | {bevy_us:.0} | {:.2} | 1.00 |",
        bevy_us / CHARACTERS as f64
    );
    println!(
        "| bevy_noodles2 NoodlesAnimator (NoodlesSystems::Animate) | {ours_us:.0} | {:.2} | {:.2} |",
        ours_us / CHARACTERS as f64,
        ours_us / bevy_us
    );
}

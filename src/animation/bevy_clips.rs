//! Upstream: Bevy's own animation shared as NOODLES2 clips (feature `render`, which brings
//! `bevy_animation`).
//!
//! A shared entity with an `AnimationPlayer` and an `AnimationGraphHandle` (as glTF scenes are
//! played) gets a [`NoodlesAnimator`] derived from what the player plays: one override layer per
//! playing clip node, at the clip node's weight × the animation's weight, speed 0 while paused,
//! `Loop` for `RepeatAnimation::Forever` and `Clamp` otherwise. Its clips are converted once per
//! (clip, player) into [`NoodlesClip`]s whose channels target the player's `AnimatedBy` entities;
//! samplers are shared by every player of the same clip. The animator is written again only when
//! the playback departs from what it predicts (another clip, a new weight or speed, a seek, or a
//! drift of [`RESYNC_SECONDS`]), so a clip playing on costs the wire nothing. Bevy keeps playing
//! it on the Upstream; Downstreams evaluate the clips.
//!
//! Bevy's curves are type-erased, so they are converted by sampling: [`SAMPLE_RATE`] samples per
//! second over each curve's domain (`Transform` translation, rotation and scale curves; other
//! properties, including morph weights, are not converted yet and are logged), and samples that
//! linear interpolation of their neighbours reproduces within [`TOLERANCE`] are dropped. A linear
//! glTF curve whose keys lie on a 1/24, 1/30, 1/60 or 1/120 s grid is therefore reproduced
//! exactly; a cubic one is approximated within the tolerance between samples.

use std::any::TypeId;
use std::collections::HashMap;

use bevy::animation::animation_curves::{AnimationCurve, EvaluatorId, WeightsCurveSample};
use bevy::animation::graph::{AnimationGraph, AnimationGraphHandle, AnimationNodeType};
use bevy::animation::{
    AnimatedBy, AnimationClip, AnimationPlayer, AnimationTargetId, RepeatAnimation,
};
use bevy::app::AnimationSystems;
use bevy::mesh::morph::MeshMorphWeights;
use bevy::prelude::*;
use bevy::reflect::{TypeInfo, Typed};
use noodles2::animation::{Interpolation, Layer, LoopMode, Sampler, Target, ValueType, slerp};

use super::{AnimSampler, AnimatorLayer, ClipChannel, ClipTarget, NoodlesAnimator, NoodlesClip};
use crate::mirror::{Mirrored, Shared};
use crate::schedule::NoodlesSystems;

/// Samples per second taken from a Bevy curve (a multiple of the common authoring rates 24, 30
/// and 60).
pub const SAMPLE_RATE: f32 = 120.0;

/// A sample that linear interpolation of the samples kept around it reproduces within this (per
/// component) is dropped.
pub const TOLERANCE: f32 = 1e-5;

/// How far (seconds of clip time) Bevy's playback may drift from what the shared animator
/// predicts before the animator is written again.
pub const RESYNC_SECONDS: f64 = 0.05;

/// A curve of a Bevy clip: (clip, target, index among the target's curves).
type CurveKey = (AssetId<AnimationClip>, AnimationTargetId, usize);

/// Clips converted so far.
#[derive(Resource, Default)]
struct Converted {
    /// (Bevy clip, player) → its NOODLES2 clip.
    clips: HashMap<(AssetId<AnimationClip>, Entity), Handle<NoodlesClip>>,
    /// (Bevy clip, target, curve index) → its sampler, shared by every player of the clip.
    samplers: HashMap<CurveKey, Vec<(Target, Handle<AnimSampler>)>>,
}

/// Only in apps that play Bevy animations (Bevy's `AnimationPlugin`).
pub(super) fn register(app: &mut App) {
    let world = app.world();
    if !world.contains_resource::<Assets<AnimationClip>>()
        || !world.contains_resource::<Assets<AnimationGraph>>()
    {
        return;
    }
    app.init_resource::<Converted>()
        .add_observer(forget_player)
        .add_systems(
            PostUpdate,
            derive_animators
                .after(AnimationSystems)
                .in_set(NoodlesSystems::Animate),
        );
}

/// What a Bevy curve animates, if it is one this conversion handles.
#[derive(Clone, Copy, PartialEq)]
enum Property {
    Transform(Target),
    MorphWeights,
}

fn property_of(curve: &dyn AnimationCurve) -> Option<Property> {
    match curve.evaluator_id() {
        EvaluatorId::ComponentField(field) => {
            let (ty, index) = **field;
            if ty != TypeId::of::<Transform>() {
                return None;
            }
            let TypeInfo::Struct(info) = Transform::type_info() else {
                return None;
            };
            match info.field_at(index)?.name() {
                "translation" => Some(Property::Transform(Target::Translation)),
                "rotation" => Some(Property::Transform(Target::Rotation)),
                "scale" => Some(Property::Transform(Target::Scale)),
                _ => None,
            }
        }
        // Morph weight curves are the one kind whose samples are `WeightsCurveSample`s.
        EvaluatorId::Type(_) => curve
            .sample_clamped(0.0)
            .is::<WeightsCurveSample>()
            .then_some(Property::MorphWeights),
    }
}

/// A Bevy animation curve as linear [`Sampler`]s over its domain (see the [module docs](self)):
/// one for a `Transform` curve, one per weight (as [`Target::MorphWeight`]) for a morph weight
/// curve; empty for a property this conversion does not handle.
pub fn samplers_from_curve(curve: &dyn AnimationCurve, duration: f32) -> Vec<(Target, Sampler)> {
    let Some(property) = property_of(curve) else {
        return Vec::new();
    };
    let domain = curve.domain();
    let start = if domain.start().is_finite() {
        domain.start()
    } else {
        0.0
    };
    let end = if domain.end().is_finite() {
        domain.end()
    } else {
        duration.max(start)
    };
    let steps = (((end - start) * SAMPLE_RATE).ceil() as usize).max(1);
    let mut times: Vec<f32> = (0..steps)
        .map(|i| start + i as f32 / SAMPLE_RATE)
        .filter(|t| *t < end)
        .collect();
    times.push(end);
    // Per output: its target and its values, sample after sample.
    let mut outputs: Vec<(Target, Vec<f32>)> = match property {
        Property::Transform(t) => vec![(t, Vec::with_capacity(times.len() * 4))],
        Property::MorphWeights => Vec::new(),
    };
    for t in &times {
        let v = curve.sample_clamped(*t);
        if let Some(q) = v.downcast_ref::<Quat>() {
            outputs[0].1.extend(q.to_array());
        } else if let Some(x) = v.downcast_ref::<Vec3>() {
            outputs[0].1.extend(x.to_array());
        } else if let Some(WeightsCurveSample(w)) = v.downcast_ref::<WeightsCurveSample>() {
            if outputs.is_empty() {
                outputs = (0..w.len().min(usize::from(u16::MAX)))
                    .map(|i| {
                        (
                            Target::MorphWeight(i as u16),
                            Vec::with_capacity(times.len()),
                        )
                    })
                    .collect();
            }
            for (i, (_, values)) in outputs.iter_mut().enumerate() {
                values.push(w.get(i).copied().unwrap_or(0.0));
            }
        } else {
            return Vec::new();
        }
    }
    outputs
        .into_iter()
        .filter_map(|(target, values)| {
            let ty = target.value_type();
            let (times, values) = simplify(&times, &values, ty.components(), ty);
            Sampler::new(Interpolation::Linear, ty, times, values)
                .ok()
                .map(|s| (target, s))
        })
        .collect()
}

/// Drop samples that linear interpolation (slerp for rotations) between the kept ones
/// reproduces within [`TOLERANCE`].
fn simplify(times: &[f32], values: &[f32], c: usize, ty: ValueType) -> (Vec<f32>, Vec<f32>) {
    let n = times.len();
    if n <= 2 {
        return (times.to_vec(), values.to_vec());
    }
    let at = |i: usize| &values[i * c..(i + 1) * c];
    let fits = |a: usize, b: usize| {
        (a + 1..b).all(|k| {
            let u = (times[k] - times[a]) / (times[b] - times[a]).max(f32::MIN_POSITIVE);
            let (va, vb, vk) = (at(a), at(b), at(k));
            if ty == ValueType::Rotation {
                let q = slerp(
                    [va[0], va[1], va[2], va[3]],
                    [vb[0], vb[1], vb[2], vb[3]],
                    u,
                );
                let d: f32 = (0..4).map(|i| q[i] * vk[i]).sum();
                let s = if d < 0.0 { -1.0 } else { 1.0 };
                (0..4).all(|i| (q[i] * s - vk[i]).abs() <= TOLERANCE)
            } else {
                (0..c).all(|i| (va[i] + (vb[i] - va[i]) * u - vk[i]).abs() <= TOLERANCE)
            }
        })
    };
    let mut kept = vec![0];
    let mut anchor = 0;
    for j in 2..n {
        if !fits(anchor, j) {
            anchor = j - 1;
            kept.push(anchor);
        }
    }
    kept.push(n - 1);
    let t = kept.iter().map(|&i| times[i]).collect();
    let v = kept.iter().flat_map(|&i| at(i).iter().copied()).collect();
    (t, v)
}

/// The queries a conversion looks entities up with.
type SceneQueries<'w, 's> = (
    Query<'w, 's, (Entity, &'static AnimationTargetId, &'static AnimatedBy)>,
    Query<'w, 's, (Entity, &'static MeshMorphWeights)>,
);

/// Entities a conversion needs, indexed once per frame that converts something.
struct SceneIndex {
    /// Player → its animation targets.
    targets: HashMap<Entity, HashMap<AnimationTargetId, Entity>>,
    /// Entity whose morph weights a clip animates → the meshes rendered with them.
    morph_users: HashMap<Entity, Vec<Entity>>,
}

impl SceneIndex {
    fn new((targets, morphs): &SceneQueries) -> Self {
        let mut index = SceneIndex {
            targets: HashMap::new(),
            morph_users: HashMap::new(),
        };
        for (e, id, by) in targets {
            index.targets.entry(by.0).or_default().insert(*id, e);
        }
        for (e, w) in morphs {
            let of = match w {
                MeshMorphWeights::Reference(of) => *of,
                MeshMorphWeights::Value { .. } => e,
            };
            index.morph_users.entry(of).or_default().push(e);
        }
        index
    }
}

/// What a player plays now, as animator layers (clips converted on first sight).
#[expect(clippy::too_many_arguments, reason = "conversion context")]
fn wanted_layers(
    player_entity: Entity,
    player: &AnimationPlayer,
    graph: &AnimationGraph,
    bevy_clips: &Assets<AnimationClip>,
    converted: &mut Converted,
    clips: &mut Assets<NoodlesClip>,
    samplers: &mut Assets<AnimSampler>,
    index: &mut Option<SceneIndex>,
    scene: &SceneQueries,
) -> Vec<(AnimatorLayer, f64)> {
    let mut layers = Vec::new();
    for (node_index, active) in player.playing_animations() {
        let Some(node) = graph.get(*node_index) else {
            continue;
        };
        let AnimationNodeType::Clip(bevy_clip) = &node.node_type else {
            continue;
        };
        let Some(source) = bevy_clips.get(bevy_clip) else {
            continue;
        };
        let key = (bevy_clip.id(), player_entity);
        let clip = match converted.clips.get(&key) {
            Some(h) => h.clone(),
            None => {
                let index = index.get_or_insert_with(|| SceneIndex::new(scene));
                let mine = index.targets.get(&player_entity);
                let morph_users = &index.morph_users;
                let mut channels = Vec::new();
                for (target_id, curves) in source.curves() {
                    let Some(entity) = mine.and_then(|m| m.get(target_id)) else {
                        continue;
                    };
                    for (i, curve) in curves.iter().enumerate() {
                        let made = converted
                            .samplers
                            .entry((bevy_clip.id(), *target_id, i))
                            .or_insert_with(|| {
                                let made = samplers_from_curve(curve.0.as_ref(), source.duration());
                                if made.is_empty() {
                                    debug!(
                                        "a curve of {bevy_clip:?} animates a property that is not shared (Transform and morph weight curves are converted)"
                                    );
                                }
                                made.into_iter()
                                    .map(|(t, s)| (t, samplers.add(AnimSampler(s))))
                                    .collect()
                            });
                        for (target, sampler) in made.iter() {
                            // Morph weights live on the meshes that use the animated node's
                            // weights (as glTF scenes load them).
                            let on: Vec<Entity> = match target {
                                Target::MorphWeight(_) => {
                                    morph_users.get(entity).cloned().unwrap_or_default()
                                }
                                _ => vec![*entity],
                            };
                            for e in on {
                                channels.push(ClipChannel {
                                    sampler: sampler.clone(),
                                    target: ClipTarget::Entity(e, *target),
                                });
                            }
                        }
                    }
                }
                let h = clips.add(NoodlesClip {
                    duration: f64::from(source.duration()),
                    channels,
                });
                converted.clips.insert(key, h.clone());
                h
            }
        };
        let speed = if active.is_paused() {
            0.0
        } else {
            active.speed()
        };
        layers.push((
            AnimatorLayer {
                clip,
                layer: Layer {
                    start_time: 0.0,
                    clip_time_offset: f64::from(active.seek_time()),
                    speed,
                    weight: active.weight() * node.weight,
                    loop_mode: match active.repeat_mode() {
                        RepeatAnimation::Forever => LoopMode::Loop,
                        _ => LoopMode::Clamp,
                    },
                    additive: false,
                },
            },
            f64::from(source.duration()),
        ));
    }
    layers
}

/// Every frame on the Upstream: keep the [`NoodlesAnimator`] of shared entities with a Bevy
/// `AnimationPlayer` in step with what it plays (written only when it departs from the
/// prediction).
#[expect(clippy::too_many_arguments, reason = "conversion context")]
#[expect(clippy::type_complexity, reason = "query filters")]
fn derive_animators(
    time: Res<Time<Real>>,
    mut players: Query<
        (
            Entity,
            &AnimationPlayer,
            &AnimationGraphHandle,
            Option<&mut NoodlesAnimator>,
        ),
        (With<Shared>, Without<Mirrored>),
    >,
    graphs: Res<Assets<AnimationGraph>>,
    bevy_clips: Res<Assets<AnimationClip>>,
    scene: SceneQueries,
    mut converted: ResMut<Converted>,
    mut clips: ResMut<Assets<NoodlesClip>>,
    mut samplers: ResMut<Assets<AnimSampler>>,
    mut commands: Commands,
) {
    let now = time.elapsed_secs_f64();
    let mut index = None;
    for (e, player, graph, animator) in &mut players {
        let Some(graph) = graphs.get(&graph.0) else {
            continue;
        };
        let wanted = wanted_layers(
            e,
            player,
            graph,
            &bevy_clips,
            &mut converted,
            &mut clips,
            &mut samplers,
            &mut index,
            &scene,
        );
        let Some(mut animator) = animator else {
            let layers = wanted
                .into_iter()
                .map(|(mut l, _)| {
                    l.layer.start_time = now;
                    l
                })
                .collect();
            commands
                .entity(e)
                .insert((NoodlesAnimator { layers }, FromPlayer));
            continue;
        };
        if !in_step(&animator, &wanted, now) {
            animator.layers = wanted
                .into_iter()
                .map(|(mut l, _)| {
                    l.layer.start_time = now;
                    l
                })
                .collect();
        }
    }
}

/// Marks a [`NoodlesAnimator`] derived from the entity's `AnimationPlayer`.
#[derive(Component)]
struct FromPlayer;

/// An entity that stops having its `AnimationPlayer` stops having the animator derived from it.
fn forget_player(
    remove: On<Remove, AnimationPlayer>,
    derived: Query<(), With<FromPlayer>>,
    mut commands: Commands,
) {
    if derived.contains(remove.entity) {
        commands
            .entity(remove.entity)
            .try_remove::<(NoodlesAnimator, FromPlayer)>();
    }
}

/// Whether `animator` already predicts the playback `wanted` describes at `now`.
fn in_step(animator: &NoodlesAnimator, wanted: &[(AnimatorLayer, f64)], now: f64) -> bool {
    animator.layers.len() == wanted.len()
        && animator
            .layers
            .iter()
            .zip(wanted)
            .all(|(have, (want, duration))| {
                let (h, w) = (&have.layer, &want.layer);
                if have.clip != want.clip
                    || h.speed != w.speed
                    || h.weight != w.weight
                    || h.loop_mode != w.loop_mode
                {
                    return false;
                }
                let Some(predicted) = noodles2::animation::clip_time(h, now, *duration) else {
                    return w.weight <= 0.0;
                };
                let mut drift = (predicted - w.clip_time_offset).abs();
                if h.loop_mode == LoopMode::Loop && *duration > 0.0 {
                    drift = drift.min(*duration - drift);
                }
                drift <= RESYNC_SECONDS
            })
}

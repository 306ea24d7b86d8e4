//! Animation as NOODLES2 assets: clips ([`NoodlesClip`], the `AnimationAsset`) made of samplers
//! ([`AnimSampler`], the `AnimSamplerAsset`), played by a [`NoodlesAnimator`] (the
//! `AnimatorComponent`) that every node evaluates against the authority's clock: [`AnimationPlugin`].
//!
//! - **Downstream**: received clips and samplers become Bevy assets; a mirrored
//!   [`NoodlesAnimator`] is evaluated every frame at the authority time the [`AuthorityClock`]
//!   estimates, so every Downstream shows the same pose at the same authority time and a late
//!   joiner lands in the right place of a running clip. Nothing streams per frame.
//! - **Upstream**: a shared entity with a [`NoodlesAnimator`] has its clips and their samplers
//!   exported (once, whatever the number of animators using them; deleted when none does), and
//!   is evaluated locally the same way. With Bevy's renderer (feature `render`), a shared
//!   `AnimationPlayer` is turned into a [`NoodlesAnimator`] automatically, its Bevy clips
//!   converted (see [`bevy_clips`]). The members a clip animates are [`LocallyDriven`]: their
//!   changes are not sent (every node computes them), only their value when an entity is shared.
//!
//! The evaluation is the spec's reference evaluation (`noodles2::animation`): loop modes, override
//! layers averaged by weight, additive layers after them, the coercion table. It is the project's
//! own rather than Bevy's `AnimationGraph`, because the spec's rules differ from Bevy's (ping-pong
//! looping, per-path weight normalization, additive rotations, material members as targets, time
//! given by the authority rather than advanced per frame).
//!
//! Targets written, by the spec's tables: `Transform` translation, rotation and scale;
//! `DirectionalLight` / `PointLight` / `SpotLight` color and intensity (illuminance for
//! directional lights); `GeneratedEnvironmentMapLight` intensity and rotation; morph weight `i`
//! (`MeshMorphWeights::Value` and [`MorphTargetWeights`]); with `render`, `StandardMaterial`
//! base color, perceptual roughness, metallic and ior (per material: every entity using it sees
//! it). A target the entity does not have, or a path the spec does not define, is skipped (the
//! latter with a `debug!` log when the clip is imported).

#[cfg(feature = "render")]
pub mod bevy_clips;
mod export;
mod wire;

use std::collections::HashMap;

use bevy::light::GeneratedEnvironmentMapLight;
use bevy::mesh::morph::MeshMorphWeights;
use bevy::prelude::*;
pub use noodles2::animation::{
    Interpolation, Layer, LoopMode, Sampler, Target, Value, ValueType, blend, clip_time,
};
use noodles2::animation::Contribution;

use crate::mirror::{AuthorityClock, MirrorAppExt, MorphTargetWeights};
use crate::schedule::NoodlesSystems;

pub use crate::mirror::LocallyDriven;

/// A NOODLES2 `AnimSamplerAsset` as a Bevy asset: key times and values
/// ([`noodles2::animation::Sampler`]). Clips refer to it; several clips (say, the same clip on a
/// thousand characters) share one.
#[derive(Asset, TypePath, Debug, Clone, PartialEq)]
pub struct AnimSampler(pub Sampler);

/// A NOODLES2 `AnimationAsset` as a Bevy asset: channels, each playing a sampler into one target
/// path of an entity's component or of a material.
#[derive(Asset, TypePath, Debug, Clone, Default)]
pub struct NoodlesClip {
    /// Clip length in seconds (at least the last key time of its samplers).
    pub duration: f64,
    /// Its channels.
    pub channels: Vec<ClipChannel>,
}

/// One channel of a [`NoodlesClip`].
#[derive(Debug, Clone)]
pub struct ClipChannel {
    /// The keys.
    pub sampler: Handle<AnimSampler>,
    /// What they animate.
    pub target: ClipTarget,
}

/// What a channel animates.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipTarget {
    /// A member of a component of an entity (a path of [`Target`] with
    /// [`Target::is_asset`] false).
    Entity(Entity, Target),
    /// A member of an asset: a material (`StandardMaterial`) and a material path.
    Asset(UntypedHandle, Target),
}

/// Layered playback of clips (the NOODLES2 `AnimatorComponent`): evaluated every frame by every
/// node at the authority's time. Change it to play, stop, cross-fade (two layers whose weights
/// the app changes) or layer clips; each change is one component change on the wire.
///
/// ```
/// use bevy::prelude::*;
/// use bevy_noodles2::animation::{LoopMode, NoodlesAnimator, NoodlesClip};
///
/// fn play(clip: Handle<NoodlesClip>, now: f64) -> NoodlesAnimator {
///     // `now`: the authority time, `AuthorityTime::now` in a system.
///     NoodlesAnimator::playing(clip, now).with_loop_mode(LoopMode::PingPong)
/// }
/// ```
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct NoodlesAnimator {
    /// Evaluated in order: override layers are averaged by weight per target path, additive
    /// layers are added after them.
    pub layers: Vec<AnimatorLayer>,
}

/// One layer of a [`NoodlesAnimator`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnimatorLayer {
    /// The clip it plays.
    pub clip: Handle<NoodlesClip>,
    /// Timing, weight, loop mode, additive or not.
    pub layer: Layer,
}

impl NoodlesAnimator {
    /// One clip, looping at speed 1 from `now` (authority seconds).
    pub fn playing(clip: Handle<NoodlesClip>, now: f64) -> Self {
        NoodlesAnimator {
            layers: vec![AnimatorLayer {
                clip,
                layer: Layer {
                    start_time: now,
                    ..Layer::default()
                },
            }],
        }
    }

    /// Every layer with loop mode `mode`.
    pub fn with_loop_mode(mut self, mode: LoopMode) -> Self {
        for l in &mut self.layers {
            l.layer.loop_mode = mode;
        }
        self
    }

    /// Add a layer playing `clip` from `now` at `weight` (override, looping).
    pub fn add_layer(&mut self, clip: Handle<NoodlesClip>, now: f64, weight: f32) -> &mut Self {
        self.layers.push(AnimatorLayer {
            clip,
            layer: Layer {
                start_time: now,
                weight,
                ..Layer::default()
            },
        });
        self
    }

    /// Stop everything (the animated members keep their last value).
    pub fn stop(&mut self) {
        self.layers.clear();
    }
}

/// The authority's monotonic time in seconds, the timebase of [`NoodlesAnimator`] layers: this
/// node's own clock ([`Time<Real>`]) while it has no Upstream, the [`AuthorityClock`] estimate
/// once a Downstream has one.
#[derive(bevy::ecs::system::SystemParam)]
pub struct AuthorityTime<'w> {
    time: Res<'w, Time<Real>>,
    clock: Option<Res<'w, AuthorityClock>>,
}

impl AuthorityTime<'_> {
    /// Seconds on the authority's clock now.
    pub fn now(&self) -> f64 {
        let local = self.time.elapsed_secs_f64();
        self.clock
            .as_ref()
            .and_then(|c| c.authority_now(local))
            .unwrap_or(local)
    }
}

/// Animation: clips and samplers mirrored both ways, [`NoodlesAnimator`] mirrored and evaluated
/// on every node. Needs [`MirrorPlugin`](crate::mirror::MirrorPlugin) and
/// [`AssetsPlugin`](crate::assets::AssetsPlugin) (buffers); added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
#[derive(Debug, Default, Clone)]
pub struct AnimationPlugin;

impl Plugin for AnimationPlugin {
    fn build(&self, app: &mut App) {
        crate::schedule::configure(app);
        app.init_asset::<AnimSampler>()
            .init_asset::<NoodlesClip>()
            .mirror_component::<NoodlesAnimator>();
        wire::register(app);
        export::register(app);
        #[cfg(feature = "render")]
        bevy_clips::register(app);
        app.add_systems(
            PostUpdate,
            evaluate_animators
                .before(bevy::transform::TransformSystems::Propagate)
                .before(NoodlesSystems::ExportAssets),
        );
    }
}

/// Where one blended value goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Entity(Entity, Target),
    Asset(bevy::asset::UntypedAssetId, Target),
}

/// Contributions gathered per target path this frame (kept between frames for its allocations).
#[derive(Default)]
struct Gathered {
    slots: HashMap<Slot, Vec<Contribution>>,
}

#[cfg(feature = "render")]
type NotPlayedByBevy = Without<bevy::animation::AnimationPlayer>;
#[cfg(not(feature = "render"))]
type NotPlayedByBevy = ();

/// Components an animation may write.
type Animated<'a> = (
    Option<&'a mut Transform>,
    Option<&'a mut DirectionalLight>,
    Option<&'a mut PointLight>,
    Option<&'a mut SpotLight>,
    Option<&'a mut GeneratedEnvironmentMapLight>,
    Option<&'a mut MeshMorphWeights>,
    Option<&'a mut MorphTargetWeights>,
);

/// Every frame, on every node: evaluate each [`NoodlesAnimator`] at the authority time and write
/// the results (a Bevy `AnimationPlayer` on the same entity plays instead: Bevy evaluates it).
#[expect(clippy::too_many_arguments, reason = "the targets an animation may write")]
fn evaluate_animators(
    time: AuthorityTime,
    animators: Query<&NoodlesAnimator, NotPlayedByBevy>,
    clips: Res<Assets<NoodlesClip>>,
    samplers: Res<Assets<AnimSampler>>,
    mut targets: Query<Animated<'_>>,
    #[cfg(feature = "render")] mut materials: Option<ResMut<Assets<StandardMaterial>>>,
    #[cfg(not(feature = "render"))] _materials: (),
    mut gathered: Local<Gathered>,
) {
    if animators.is_empty() {
        return;
    }
    let now = time.now();
    let slots = &mut gathered.slots;
    for list in slots.values_mut() {
        list.clear();
    }
    for animator in &animators {
        for l in &animator.layers {
            let Some(clip) = clips.get(&l.clip) else {
                continue;
            };
            let Some(t) = clip_time(&l.layer, now, clip.duration) else {
                continue;
            };
            for ch in &clip.channels {
                let Some(s) = samplers.get(&ch.sampler) else {
                    continue;
                };
                let (slot, target) = match &ch.target {
                    ClipTarget::Entity(e, t) => (Slot::Entity(*e, *t), *t),
                    ClipTarget::Asset(h, t) => (Slot::Asset(h.id(), *t), *t),
                };
                let Some(value) = s
                    .0
                    .sample(t as f32)
                    .and_then(|v| v.coerce(target.value_type()))
                else {
                    continue;
                };
                slots.entry(slot).or_default().push(Contribution {
                    value,
                    weight: l.layer.weight.max(0.0),
                    additive: l.layer.additive,
                });
            }
        }
    }
    slots.retain(|slot, list| {
        if list.is_empty() {
            return false;
        }
        match slot {
            Slot::Entity(e, target) => {
                if let Ok(components) = targets.get_mut(*e) {
                    write_entity(components, *target, list);
                }
            }
            #[cfg(feature = "render")]
            Slot::Asset(id, target) => {
                if let Some(m) = materials
                    .as_deref_mut()
                    .and_then(|m| m.get_mut(id.typed_debug_checked::<StandardMaterial>()))
                {
                    write_material(m.into_inner(), *target, list);
                }
            }
            #[cfg(not(feature = "render"))]
            Slot::Asset(..) => {}
        }
        true
    });
}

fn color_value(c: Color) -> Value {
    Value::Color(c.to_srgba().to_f32_array())
}

fn value_color(v: Value) -> Option<Color> {
    match v {
        Value::Color([r, g, b, a]) => Some(Color::srgba(r, g, b, a)),
        _ => None,
    }
}

fn vec3(v: Value) -> Option<Vec3> {
    match v {
        Value::Float3([x, y, z]) => Some(Vec3::new(x, y, z)),
        _ => None,
    }
}

fn quat(v: Value) -> Option<Quat> {
    match v {
        Value::Rotation([x, y, z, w]) => Some(Quat::from_xyzw(x, y, z, w)),
        _ => None,
    }
}

fn float(v: Value) -> Option<f32> {
    match v {
        Value::Float(x) => Some(x),
        _ => None,
    }
}

fn quat_value(q: Quat) -> Value {
    Value::Rotation(q.to_array())
}

fn vec3_value(v: Vec3) -> Value {
    Value::Float3(v.to_array())
}

/// Blend `list` over the member's current value and write it back (only if it changed, so
/// change detection sees real changes only).
fn write_entity(c: Animated<'_>, target: Target, list: &[Contribution]) {
    let (transform, directional, point, spot, environment, mesh_weights, weights) = c;
    fn set<T: PartialEq>(slot: &mut T, v: Option<T>) {
        if let Some(v) = v
            && *slot != v
        {
            *slot = v;
        }
    }
    match target {
        Target::Translation | Target::Rotation | Target::Scale => {
            let Some(mut t) = transform else { return };
            let t = t.as_mut();
            match target {
                Target::Translation => {
                    set(&mut t.translation, vec3(blend(vec3_value(t.translation), list)))
                }
                Target::Rotation => set(&mut t.rotation, quat(blend(quat_value(t.rotation), list))),
                _ => set(&mut t.scale, vec3(blend(vec3_value(t.scale), list))),
            }
        }
        Target::LightColor(id) => {
            let color = match id {
                10 => directional.map(|l| &mut l.into_inner().color),
                11 => point.map(|l| &mut l.into_inner().color),
                _ => spot.map(|l| &mut l.into_inner().color),
            };
            if let Some(c) = color {
                // sRGB8 targets: alpha is not the light's.
                let out = value_color(blend(color_value(*c), list)).map(|x| x.with_alpha(1.0));
                set(c, out);
            }
        }
        Target::LightIntensity(id) => {
            let v = match id {
                10 => directional.map(|l| &mut l.into_inner().illuminance),
                11 => point.map(|l| &mut l.into_inner().intensity),
                _ => spot.map(|l| &mut l.into_inner().intensity),
            };
            if let Some(v) = v {
                set(v, float(blend(Value::Float(*v), list)));
            }
        }
        Target::EnvironmentIntensity => {
            if let Some(mut env) = environment {
                let env = env.as_mut();
                set(&mut env.intensity, float(blend(Value::Float(env.intensity), list)));
            }
        }
        Target::EnvironmentRotation => {
            if let Some(mut env) = environment {
                let env = env.as_mut();
                set(&mut env.rotation, quat(blend(quat_value(env.rotation), list)));
            }
        }
        Target::MorphWeight(i) => {
            let i = usize::from(i);
            if let Some(mut mw) = mesh_weights
                && let MeshMorphWeights::Value { weights: w } = mw.as_mut()
                && let Some(x) = w.get_mut(i)
            {
                set(x, float(blend(Value::Float(*x), list)));
            }
            if let Some(mut w) = weights
                && let Some(x) = w.0.get_mut(i)
            {
                set(x, float(blend(Value::Float(*x), list)));
            }
        }
        Target::BaseColor | Target::Roughness | Target::Metallic | Target::Ior => {}
    }
}

#[cfg(feature = "render")]
fn write_material(m: &mut StandardMaterial, target: Target, list: &[Contribution]) {
    match target {
        Target::BaseColor => {
            if let Some(c) = value_color(blend(color_value(m.base_color), list)) {
                m.base_color = c;
            }
        }
        Target::Roughness => {
            if let Some(v) = float(blend(Value::Float(m.perceptual_roughness), list)) {
                m.perceptual_roughness = v;
            }
        }
        Target::Metallic => {
            if let Some(v) = float(blend(Value::Float(m.metallic), list)) {
                m.metallic = v;
            }
        }
        Target::Ior => {
            if let Some(v) = float(blend(Value::Float(m.ior), list)) {
                m.ior = v;
            }
        }
        _ => {}
    }
}

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

use bevy::light::GeneratedEnvironmentMapLight;
use bevy::mesh::morph::MeshMorphWeights;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
pub use noodles2::animation::{
    Contribution, Interpolation, Layer, LoopMode, Sampler, Target, Value, ValueType, blend,
    clip_time,
};

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
    }

    /// After every plugin is built: animation needs Bevy's assets and the asset mirroring
    /// (buffers), so an app without them (a bare headless node) does not map animation types
    /// (they are dropped like any type without a rule).
    fn finish(&self, app: &mut App) {
        let world = app.world();
        if !world.contains_resource::<AssetServer>()
            || !world.contains_resource::<crate::assets::AssetExport>()
        {
            debug!("no assets in this app: animation is not mirrored");
            return;
        }
        app.init_asset::<AnimSampler>()
            .init_asset::<NoodlesClip>()
            .init_resource::<Contested>()
            .mirror_component::<NoodlesAnimator>();
        wire::register(app);
        export::register(app);
        #[cfg(feature = "render")]
        bevy_clips::register(app);
        app.add_systems(
            PostUpdate,
            (note_contested, evaluate_animators)
                .chain()
                .in_set(NoodlesSystems::Animate),
        );
    }
}

/// Contributions gathered per target path this frame (kept between frames for their
/// allocations): entity members, and asset members (materials).
#[derive(Default)]
struct Gathered {
    entities: HashMap<(Entity, Target), Vec<Contribution>>,
    assets: HashMap<(bevy::asset::UntypedAssetId, Target), Vec<Contribution>>,
}

#[cfg(feature = "render")]
type NotPlayedByBevy = Without<bevy::animation::AnimationPlayer>;
#[cfg(not(feature = "render"))]
type NotPlayedByBevy = ();

/// Components an animation may write besides `Transform`.
type Animated = (
    Option<&'static mut DirectionalLight>,
    Option<&'static mut PointLight>,
    Option<&'static mut SpotLight>,
    Option<&'static mut GeneratedEnvironmentMapLight>,
    Option<&'static mut MeshMorphWeights>,
    Option<&'static mut MorphTargetWeights>,
);

/// One entity's [`Animated`] components.
type AnimatedItem<'a> = (
    Option<Mut<'a, DirectionalLight>>,
    Option<Mut<'a, PointLight>>,
    Option<Mut<'a, SpotLight>>,
    Option<Mut<'a, GeneratedEnvironmentMapLight>>,
    Option<Mut<'a, MeshMorphWeights>>,
    Option<Mut<'a, MorphTargetWeights>>,
);

/// Entity members that more than one layer animates, or an additive layer does: their
/// contributions are gathered and blended. Every other member has exactly one overriding layer,
/// whose value is written at once. Recomputed when an animator or a clip changes.
#[derive(Resource, Default)]
struct Contested(bevy::platform::collections::HashSet<(Entity, Target)>);

/// Keep [`Contested`] current (the work of a full pass over the animators, only when one of them
/// or a clip changed).
fn note_contested(
    mut contested: ResMut<Contested>,
    animators: Query<&NoodlesAnimator, NotPlayedByBevy>,
    changed: Query<(), Changed<NoodlesAnimator>>,
    mut removed: RemovedComponents<NoodlesAnimator>,
    mut clip_events: MessageReader<AssetEvent<NoodlesClip>>,
    clips: Res<Assets<NoodlesClip>>,
) {
    let clips_changed = clip_events.read().count() > 0;
    if changed.is_empty() && removed.read().count() == 0 && !clips_changed {
        return;
    }
    let mut seen = bevy::platform::collections::HashSet::new();
    contested.0.clear();
    for animator in &animators {
        for l in animator.layers.iter().filter(|l| l.layer.weight > 0.0) {
            let Some(clip) = clips.get(&l.clip) else {
                continue;
            };
            for ch in &clip.channels {
                if let ClipTarget::Entity(e, t) = ch.target {
                    let key = (e, t);
                    if l.layer.additive || !seen.insert(key) {
                        contested.0.insert(key);
                    }
                }
            }
        }
    }
}

/// Every frame, on every node: evaluate each [`NoodlesAnimator`] at the authority time and write
/// the results (a Bevy `AnimationPlayer` on the same entity plays instead: Bevy evaluates it).
#[expect(
    clippy::too_many_arguments,
    reason = "the targets an animation may write"
)]
fn evaluate_animators(
    time: AuthorityTime,
    contested: Res<Contested>,
    animators: Query<&NoodlesAnimator, NotPlayedByBevy>,
    clips: Res<Assets<NoodlesClip>>,
    samplers: Res<Assets<AnimSampler>>,
    mut transforms: Query<&mut Transform>,
    mut targets: Query<Animated>,
    #[cfg(feature = "render")] mut materials: Option<ResMut<Assets<StandardMaterial>>>,
    #[cfg(not(feature = "render"))] _materials: (),
    mut gathered: Local<Gathered>,
) {
    if animators.is_empty() {
        return;
    }
    let now = time.now();
    let Gathered { entities, assets } = &mut *gathered;
    for list in entities.values_mut().chain(assets.values_mut()) {
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
                let target = match &ch.target {
                    ClipTarget::Entity(_, t) | ClipTarget::Asset(_, t) => *t,
                };
                let Some(value) =
                    s.0.sample(t as f32)
                        .and_then(|v| v.coerce(target.value_type()))
                else {
                    continue;
                };
                let c = Contribution {
                    value,
                    weight: l.layer.weight.max(0.0),
                    additive: l.layer.additive,
                };
                match &ch.target {
                    // The one layer animating it: written now, nothing to blend.
                    ClipTarget::Entity(e, _)
                        if contested.0.is_empty() || !contested.0.contains(&(*e, target)) =>
                    {
                        write_one(&mut transforms, &mut targets, *e, target, &[c])
                    }
                    ClipTarget::Entity(e, _) => entities.entry((*e, target)).or_default().push(c),
                    ClipTarget::Asset(h, _) => assets.entry((h.id(), target)).or_default().push(c),
                }
            }
        }
    }
    entities.retain(|&(e, target), list| {
        if list.is_empty() {
            return false;
        }
        write_one(&mut transforms, &mut targets, e, target, list);
        true
    });
    assets.retain(|&(_id, _target), list| {
        if list.is_empty() {
            return false;
        }
        #[cfg(feature = "render")]
        if let Some(materials) = materials.as_deref_mut() {
            write_material(materials, _id.typed_debug_checked(), _target, list);
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

/// Blend `list` over the member `field` of `c` and write the result back if it differs (so change
/// detection sees real changes only).
fn apply<T: Component<Mutability = bevy::ecs::component::Mutable>, V: PartialEq>(
    c: Option<Mut<'_, T>>,
    field: impl Fn(&mut T) -> &mut V,
    new: impl FnOnce(&V) -> Option<V>,
) {
    let Some(mut c) = c else { return };
    let value = {
        let current = field(c.bypass_change_detection());
        match new(current) {
            Some(v) if *current != v => v,
            _ => return,
        }
    };
    *field(&mut c) = value;
}

/// Blend `list` over an entity member's current value and write it back.
fn write_entity(c: AnimatedItem<'_>, target: Target, list: &[Contribution]) {
    let (directional, point, spot, environment, mesh_weights, weights) = c;
    let q = |v: &Quat| quat(blend(quat_value(*v), list));
    let f = |v: &f32| float(blend(Value::Float(*v), list));
    // sRGB8 targets: the light has no alpha.
    let rgb = |c: &Color| value_color(blend(color_value(*c), list)).map(|x| x.with_alpha(1.0));
    match target {
        Target::LightColor(10) => apply(directional, |l| &mut l.color, rgb),
        Target::LightColor(11) => apply(point, |l| &mut l.color, rgb),
        Target::LightColor(_) => apply(spot, |l| &mut l.color, rgb),
        Target::LightIntensity(10) => apply(directional, |l| &mut l.illuminance, f),
        Target::LightIntensity(11) => apply(point, |l| &mut l.intensity, f),
        Target::LightIntensity(_) => apply(spot, |l| &mut l.intensity, f),
        Target::EnvironmentIntensity => apply(environment, |e| &mut e.intensity, f),
        Target::EnvironmentRotation => apply(environment, |e| &mut e.rotation, q),
        Target::MorphWeight(i) => {
            let i = usize::from(i);
            if let Some(mut mw) = mesh_weights {
                let new = match mw.bypass_change_detection() {
                    MeshMorphWeights::Value { weights: w } => {
                        w.get(i).and_then(f).filter(|n| *n != w[i])
                    }
                    MeshMorphWeights::Reference(_) => None,
                };
                if let Some(n) = new
                    && let MeshMorphWeights::Value { weights: w } = &mut *mw
                {
                    w[i] = n;
                }
            }
            if let Some(mut w) = weights
                && let Some(new) = w.0.get(i).and_then(f)
                && w.0[i] != new
            {
                w.0[i] = new;
            }
        }
        Target::Translation
        | Target::Rotation
        | Target::Scale
        | Target::BaseColor
        | Target::Roughness
        | Target::Metallic
        | Target::Ior => {}
    }
}

/// Blend `list` over member `target` of entity `e` and write it back.
fn write_one(
    transforms: &mut Query<&mut Transform>,
    targets: &mut Query<Animated>,
    e: Entity,
    target: Target,
    list: &[Contribution],
) {
    match target {
        Target::Translation | Target::Rotation | Target::Scale => {
            if let Ok(t) = transforms.get_mut(e) {
                write_transform(t, target, list);
            }
        }
        _ => {
            if let Ok(components) = targets.get_mut(e) {
                write_entity(components, target, list);
            }
        }
    }
}

/// Blend `list` over a `Transform` member and write it back if it differs.
fn write_transform(t: Mut<'_, Transform>, target: Target, list: &[Contribution]) {
    let v3 = |v: &Vec3| vec3(blend(vec3_value(*v), list));
    match target {
        Target::Translation => apply(Some(t), |t| &mut t.translation, v3),
        Target::Rotation => apply(
            Some(t),
            |t| &mut t.rotation,
            |v: &Quat| quat(blend(quat_value(*v), list)),
        ),
        _ => apply(Some(t), |t| &mut t.scale, v3),
    }
}

/// Blend `list` over a material member and write it back if it differs (a write marks the
/// material modified, and Bevy prepares it again).
#[cfg(feature = "render")]
fn write_material(
    materials: &mut Assets<StandardMaterial>,
    id: AssetId<StandardMaterial>,
    target: Target,
    list: &[Contribution],
) {
    let Some(m) = materials.get(id) else {
        return;
    };
    let f = |v: f32| float(blend(Value::Float(v), list)).filter(|n| *n != v);
    match target {
        Target::BaseColor => {
            let c = m.base_color;
            if let Some(new) = value_color(blend(color_value(c), list)).filter(|n| *n != c)
                && let Some(mut m) = materials.get_mut(id)
            {
                m.base_color = new;
            }
        }
        Target::Roughness => {
            if let Some(new) = f(m.perceptual_roughness)
                && let Some(mut m) = materials.get_mut(id)
            {
                m.perceptual_roughness = new;
            }
        }
        Target::Metallic => {
            if let Some(new) = f(m.metallic)
                && let Some(mut m) = materials.get_mut(id)
            {
                m.metallic = new;
            }
        }
        Target::Ior => {
            if let Some(new) = f(m.ior)
                && let Some(mut m) = materials.get_mut(id)
            {
                m.ior = new;
            }
        }
        _ => {}
    }
}

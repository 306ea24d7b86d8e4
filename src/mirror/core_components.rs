//! Core components (extension 0x0000) on Bevy's own types.
//!
//! | NOODLES2 | Bevy | notes |
//! | --- | --- | --- |
//! | `TransformComponent` (20) | [`Transform`] | exact (f32) |
//! | `NameComponent` (15) | [`Name`] | UTF-8, at most 65,535 bytes (longer names are cut at a character boundary) |
//! | `ChildOfComponent` (16) | [`ChildOf`] | only sent when the parent is shared too |
//! | `VisibilityComponent` (21) | [`Visibility`] | Inherited / Visible / Invisible ↔ Hidden |
//! | `DirectionalLightComponent` (10) | [`DirectionalLight`] | lux = `illuminance`; color as sRGB8 |
//! | `PointLightComponent` (11) | [`PointLight`] | lumens = `intensity`; color as sRGB8 |
//! | `SpotLightComponent` (12) | [`SpotLight`] | lumens, angles in radians; color as sRGB8 |
//! | `GlobalComponent` (0) | [`Global`] | marker |
//! | `TimeSyncComponent` (25) | [`TimeSync`] | see [`AuthorityClock`] |
//! | `MorphWeightsComponent` (24) | [`MorphTargetWeights`] | from Bevy's `MeshMorphWeights` (its values, or the `MorphWeights` it refers to) on the Upstream; `MeshMorphWeights::Value` on the Downstream; at most 256 |
//!
//! Colors are quantized to sRGB8 on the wire (each channel rounds to the nearest 1/255 in sRGB
//! space; alpha and HDR values above 1 are lost). `casts_shadows` ↔ `shadow_maps_enabled`.

use bevy::mesh::morph::{MAX_MORPH_WEIGHTS, MeshMorphWeights, MorphWeights};
use bevy::prelude::*;

use super::registry::{EntityIds, EntityResolver, MirrorAppExt, MirrorComponent, Store};
use super::{MirrorConfig, Mirrored, Shared};
use crate::codec::{
    ChildOfComponent, DirectionalLightComponent, EntityID, GlobalComponent, LightFlags,
    MorphWeightsComponent, NameComponent, PointLightComponent, SRGB8, SpotLightComponent,
    TimeSyncComponent, TransformComponent, UnitQuaternion, Vec3 as WVec3, VisibilityComponent,
};
use crate::link::Role;
use crate::net::NoodlesLink;
use crate::schedule::NoodlesSystems;

use super::MirrorError;

impl MirrorComponent for Transform {
    type Wire = TransformComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 20;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<TransformComponent> {
        let (t, r, s) = (self.translation, self.rotation, self.scale);
        Some(TransformComponent::new(
            WVec3::new(t.x, t.y, t.z),
            UnitQuaternion::new(r.x, r.y, r.z, r.w),
            WVec3::new(s.x, s.y, s.z),
        ))
    }
    fn from_wire(w: TransformComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        let (p, r, s) = (w.position, w.rotation, w.scale);
        Ok(Transform {
            translation: Vec3::new(p.x.get(), p.y.get(), p.z.get()),
            rotation: Quat::from_xyzw(r.x.get(), r.y.get(), r.z.get(), r.w.get()),
            scale: Vec3::new(s.x.get(), s.y.get(), s.z.get()),
        })
    }
}

impl MirrorComponent for Name {
    type Wire = NameComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 15;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<NameComponent> {
        Some(NameComponent(super::cut_str(
            self.as_str(),
            u16::MAX as usize,
        )))
    }
    fn from_wire(w: NameComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Name::new(w.0))
    }
}

impl MirrorComponent for ChildOf {
    type Wire = ChildOfComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 16;
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<ChildOfComponent> {
        ids.id_of(self.parent())
            .map(|id| ChildOfComponent::new(EntityID::new(id)))
    }
    fn from_wire(w: ChildOfComponent, ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(ChildOf(ids.entity(w.parent.id.get())))
    }
}

impl MirrorComponent for Visibility {
    type Wire = VisibilityComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 21;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<VisibilityComponent> {
        Some(match self {
            Visibility::Inherited => VisibilityComponent::Inherited,
            Visibility::Visible => VisibilityComponent::Visible,
            Visibility::Hidden => VisibilityComponent::Invisible,
        })
    }
    fn from_wire(w: VisibilityComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(match w {
            VisibilityComponent::Inherited => Visibility::Inherited,
            VisibilityComponent::Visible => Visibility::Visible,
            VisibilityComponent::Invisible => Visibility::Hidden,
        })
    }
    /// No `VisibilityComponent` means "inherit" (spec), which Bevy spells `Visibility::Inherited`.
    fn remove(entity: &mut EntityWorldMut<'_>) {
        entity.insert(Visibility::Inherited);
    }
}

/// A Bevy color as sRGB8 (rounded per channel; alpha dropped).
pub fn color_to_srgb8(c: Color) -> SRGB8 {
    let [r, g, b, _] = c.to_srgba().to_u8_array();
    SRGB8::new(r, g, b)
}

/// An sRGB8 color as a Bevy color.
pub fn srgb8_to_color(c: SRGB8) -> Color {
    Color::srgb_u8(c.r, c.g, c.b)
}

fn flags(shadows: bool) -> LightFlags {
    LightFlags::default().with_casts_shadows(shadows as u8)
}

impl MirrorComponent for DirectionalLight {
    type Wire = DirectionalLightComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 10;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<DirectionalLightComponent> {
        Some(DirectionalLightComponent::new(
            color_to_srgb8(self.color),
            self.illuminance,
            flags(self.shadow_maps_enabled),
        ))
    }
    fn from_wire(
        w: DirectionalLightComponent,
        _: &mut dyn EntityResolver,
    ) -> Result<Self, MirrorError> {
        Ok(DirectionalLight {
            color: srgb8_to_color(w.color),
            illuminance: w.intensity.get(),
            shadow_maps_enabled: w.flags.casts_shadows() != 0,
            ..default()
        })
    }
}

impl MirrorComponent for PointLight {
    type Wire = PointLightComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 11;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<PointLightComponent> {
        Some(PointLightComponent::new(
            color_to_srgb8(self.color),
            self.intensity,
            self.range,
            flags(self.shadow_maps_enabled),
        ))
    }
    fn from_wire(w: PointLightComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(PointLight {
            color: srgb8_to_color(w.color),
            intensity: w.intensity.get(),
            range: w.range.get(),
            shadow_maps_enabled: w.flags.casts_shadows() != 0,
            ..default()
        })
    }
}

impl MirrorComponent for SpotLight {
    type Wire = SpotLightComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 12;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<SpotLightComponent> {
        Some(SpotLightComponent::new(
            color_to_srgb8(self.color),
            self.intensity,
            self.range,
            self.inner_angle,
            self.outer_angle,
            flags(self.shadow_maps_enabled),
        ))
    }
    fn from_wire(w: SpotLightComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(SpotLight {
            color: srgb8_to_color(w.color),
            intensity: w.intensity.get(),
            range: w.range.get(),
            inner_angle: w.inner_angle_rads.get(),
            outer_angle: w.outer_angle_rads.get(),
            shadow_maps_enabled: w.flags.casts_shadows() != 0,
            ..default()
        })
    }
}

/// Marks an entity with scene-wide effects (`GlobalComponent`).
#[derive(Component, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Global;

impl MirrorComponent for Global {
    type Wire = GlobalComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 0;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<GlobalComponent> {
        Some(GlobalComponent)
    }
    fn from_wire(_: GlobalComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Global)
    }
}

/// The Upstream's monotonic clock in seconds at send time (`TimeSyncComponent`). The plugin
/// publishes it on a shared [`Global`] entity about once a second while it is Upstream.
#[derive(Component, Debug, Default, Clone, Copy, PartialEq)]
pub struct TimeSync {
    /// The Upstream's clock in seconds when it sent this.
    pub last: f64,
}

impl MirrorComponent for TimeSync {
    type Wire = TimeSyncComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 25;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<TimeSyncComponent> {
        Some(TimeSyncComponent::new(self.last))
    }
    fn from_wire(w: TimeSyncComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(TimeSync { last: w.last.get() })
    }
}

/// The Downstream's estimate of the Upstream's clock (spec: `time.jaw`).
///
/// On every `TimeSyncComponent` update: `offset_est = last - local_now`; the offset is smoothed as
/// `offset = lerp(offset, offset_est, alpha)` (the first sample is taken as is). The authority's
/// time now is `local_now + offset`, where `local_now` is [`Time<Real>`]'s elapsed seconds.
#[derive(Resource, Debug, Clone, Default)]
pub struct AuthorityClock {
    /// Smoothed offset (authority − local), seconds; `None` until the first sample.
    pub offset: Option<f64>,
    /// Smoothing factor (the spec suggests 0.02–0.1 for ~1 Hz updates).
    pub alpha: f64,
    /// Samples taken.
    pub samples: u64,
}

impl AuthorityClock {
    /// Take one sample: `authority` seconds were read at `local_now`.
    pub fn sample(&mut self, authority: f64, local_now: f64) {
        let est = authority - local_now;
        let alpha = if self.alpha > 0.0 { self.alpha } else { 0.1 };
        self.offset = Some(match self.offset {
            None => est,
            Some(o) => o + (est - o) * alpha,
        });
        self.samples += 1;
    }

    /// The estimated authority time at `local_now`, once a sample arrived.
    pub fn authority_now(&self, local_now: f64) -> Option<f64> {
        self.offset.map(|o| local_now + o)
    }
}

/// Marks the entity this node uses to publish its clock.
#[derive(Component)]
pub(crate) struct TimeSyncSource;

/// Upstream: keep a shared [`TimeSync`] entity current, about once per `time_sync_interval`.
pub(crate) fn publish_time_sync(
    time: Res<Time<Real>>,
    config: Res<MirrorConfig>,
    links: Query<&NoodlesLink>,
    mut source: Query<&mut TimeSync, With<TimeSyncSource>>,
    mut last: Local<Option<f64>>,
    mut commands: Commands,
) {
    if !links.iter().any(|l| l.role == Some(Role::Upstream)) {
        return;
    }
    let now = time.elapsed_secs_f64();
    match source.single_mut() {
        Ok(mut ts) => {
            if last.is_none_or(|l| now - l >= config.time_sync_interval.as_secs_f64()) {
                ts.last = now;
                *last = Some(now);
            }
        }
        Err(_) => {
            commands.spawn((
                Name::new("time sync"),
                TimeSync { last: now },
                Global,
                Shared,
                TimeSyncSource,
            ));
            *last = Some(now);
        }
    }
}

/// Downstream: feed received [`TimeSync`] updates to the [`AuthorityClock`].
pub(crate) fn sample_time_sync(
    time: Res<Time<Real>>,
    q: Query<&TimeSync, (With<Mirrored>, Changed<TimeSync>)>,
    mut clock: ResMut<AuthorityClock>,
) {
    for ts in &q {
        clock.sample(ts.last, time.elapsed_secs_f64());
    }
}

/// The morph target weights NOODLES2 carries for an entity's mesh (`MorphWeightsComponent`,
/// Core (0, 24)), in the order of the mesh's morph targets.
///
/// Apps keep using Bevy's components: on the Upstream this is derived every frame from the
/// shared entity's `MeshMorphWeights` (its values, or the weights of the `MorphWeights` entity it
/// refers to, as glTF scenes load them, animated or not), and on the Downstream it comes with a
/// `MeshMorphWeights::Value` that Bevy renders. At most Bevy's `MAX_MORPH_WEIGHTS` (256).
#[derive(Component, Debug, Clone, PartialEq, Default)]
pub struct MorphTargetWeights(pub Vec<f32>);

impl MirrorComponent for MorphTargetWeights {
    type Wire = MorphWeightsComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 24;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<MorphWeightsComponent> {
        Some(MorphWeightsComponent(self.0.clone()))
    }
    fn check(w: &MorphWeightsComponent) -> Result<(), String> {
        if w.0.len() > MAX_MORPH_WEIGHTS {
            return Err(format!(
                "{} weights, more than the {MAX_MORPH_WEIGHTS} Bevy renders",
                w.0.len()
            ));
        }
        if let Some(bad) = w.0.iter().find(|x| !x.is_finite()) {
            return Err(format!("weight {bad} is not finite"));
        }
        Ok(())
    }
    fn from_wire(
        w: MorphWeightsComponent,
        _: &mut dyn EntityResolver,
    ) -> Result<Self, MirrorError> {
        Ok(MorphTargetWeights(w.0))
    }
    // Bevy renders the weights of `MeshMorphWeights`: both go on together.
    const STORE: Store<Self> = Store::With(|weights, entity| {
        entity.insert((
            MeshMorphWeights::Value {
                weights: weights.0.clone(),
            },
            weights,
        ));
    });
    fn remove(entity: &mut EntityWorldMut<'_>) {
        entity.remove::<(MorphTargetWeights, MeshMorphWeights)>();
    }
}

/// Entities this node shares itself (not mirrored ones it passes on).
type OwnShared = (With<Shared>, Without<Mirrored>);

/// Upstream: keep [`MorphTargetWeights`] of shared entities equal to the weights Bevy renders
/// them with (written only when they differ, so unchanged weights send nothing).
fn derive_morph_weights(
    mut commands: Commands,
    mut shared: Query<(Entity, &MeshMorphWeights, Option<&mut MorphTargetWeights>), OwnShared>,
    weights: Query<&MorphWeights>,
) {
    for (e, mesh_weights, derived) in &mut shared {
        let now: &[f32] = match mesh_weights {
            MeshMorphWeights::Value { weights } => weights,
            MeshMorphWeights::Reference(of) => match weights.get(*of) {
                Ok(w) => w.weights(),
                Err(_) => continue,
            },
        };
        match derived {
            Some(mut d) => {
                if d.0 != now {
                    d.0 = now.to_vec();
                }
            }
            None => {
                commands.entity(e).insert(MorphTargetWeights(now.to_vec()));
            }
        }
    }
}

/// Upstream: a shared entity that stops having morph weights stops sending them.
fn forget_morph_weights(
    remove: On<Remove, MeshMorphWeights>,
    q: Query<Has<MorphTargetWeights>, OwnShared>,
    mut commands: Commands,
) {
    if q.get(remove.entity).unwrap_or(false) {
        commands
            .entity(remove.entity)
            .try_remove::<MorphTargetWeights>();
    }
}

pub(crate) fn register(app: &mut App) {
    app.mirror_component::<Global>()
        .mirror_component::<Name>()
        .mirror_component::<ChildOf>()
        .mirror_component::<Transform>()
        .mirror_component::<Visibility>()
        .mirror_component::<DirectionalLight>()
        .mirror_component::<PointLight>()
        .mirror_component::<SpotLight>()
        .mirror_component::<TimeSync>()
        .mirror_component::<MorphTargetWeights>()
        .add_observer(forget_morph_weights)
        .add_systems(
            PreUpdate,
            sample_time_sync.after(NoodlesSystems::ApplyTransactions),
        )
        .add_systems(
            PostUpdate,
            derive_morph_weights.before(NoodlesSystems::ExportAssets),
        );
}

//! Interaction and selection: what a Downstream's user may do to an entity, as native Bevy
//! components (spec: `spec/core/components/interaction.jaw`, `selection.jaw`).
//!
//! | NOODLES2 (Core) | Bevy | notes |
//! | --- | --- | --- |
//! | `InteractiveComponent` (5) | [`Interactive`] | marker |
//! | `CanTranslateComponent` (6) | [`CanTranslate`] | per-axis hard limits in scene units |
//! | `CanRotateComponent` (7) | [`CanRotate`] | per-axis hard limits in radians, as XYZ Euler angles |
//! | `CanScaleComponent` (8) | [`CanScale`] | per-axis hard limits on the absolute scale |
//! | `ActivateComponent` (9) | [`Activate`] | endpoint entities; the first is the primary action |
//! | `CanSelectComponent` (17) | [`CanSelect`] | marker |
//! | `IsSelectedComponent` (18) | [`IsSelected`] | outline color as sRGB8 |
//!
//! Each axis carries two optional bounds ([`AxisLimit`]): on the wire a bound is a value and an
//! enable flag. An axis whose two bounds are set and equal is *locked*: a user cannot move along
//! it, and a client shows no handle for it. Bounds with `min > max` are invalid: the axis is
//! treated as locked and [`AxisLimits::problems`] names it, so a UI can say why.
//!
//! A client never changes the world itself: it proposes the new `Transform` to the Upstream
//! ([`Proposal`](crate::proposals::Proposal)), limited by [`constrain`] first, and the canonical
//! transaction moves the entity. An Upstream can hold proposals to the same limits with
//! [`within_limits`]. Activation invokes an endpoint of [`Activate`] ([`activate`]).

use bevy::prelude::*;

use crate::codec::{
    ActivateComponent, AllowedAxis, AllowedAxisFlags, AxisRange, CanRotateComponent,
    CanScaleComponent, CanSelectComponent, CanTranslateComponent, EntityID, InteractiveComponent,
    IsSelectedComponent,
};
use crate::mirror::core_components::{color_to_srgb8, srgb8_to_color};
use crate::mirror::{EntityIds, EntityResolver, MirrorAppExt, MirrorComponent, MirrorError};
use crate::rpc::{RpcClient, RpcInvokeError, RpcTarget};

/// Marks an entity as interactive (`InteractiveComponent`, Core (0, 5)).
#[derive(Component, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Interactive;

/// Marks an entity a user may select (`CanSelectComponent`, Core (0, 17)).
#[derive(Component, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CanSelect;

/// The entity is selected; clients outline it in `color` (`IsSelectedComponent`, Core (0, 18)).
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct IsSelected {
    /// The outline color (sRGB8 on the wire).
    pub color: Color,
}

impl Default for IsSelected {
    /// An orange outline.
    fn default() -> Self {
        IsSelected {
            color: DEFAULT_SELECTION_COLOR,
        }
    }
}

/// The outline color of a selection that names none.
pub const DEFAULT_SELECTION_COLOR: Color = Color::srgb(1.0, 0.6, 0.1);

/// The hard limits along one axis: each bound is optional (`None`: unbounded on that side).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AxisLimit {
    /// The lowest value allowed.
    pub min: Option<f32>,
    /// The highest value allowed.
    pub max: Option<f32>,
}

impl AxisLimit {
    /// No limits.
    pub const FREE: AxisLimit = AxisLimit {
        min: None,
        max: None,
    };

    /// Both bounds.
    pub fn range(min: f32, max: f32) -> Self {
        AxisLimit {
            min: Some(min),
            max: Some(max),
        }
    }

    /// Fixed at `value`: no movement along this axis.
    pub fn locked(value: f32) -> Self {
        AxisLimit::range(value, value)
    }

    /// Are the bounds usable (finite, and `min <= max` when both are set)?
    pub fn is_valid(&self) -> bool {
        let finite = self.min.is_none_or(f32::is_finite) && self.max.is_none_or(f32::is_finite);
        finite
            && match (self.min, self.max) {
                (Some(a), Some(b)) => a <= b,
                _ => true,
            }
    }

    /// May a user move along this axis? Not when it is locked (`min == max`) or its bounds are
    /// invalid.
    pub fn is_free(&self) -> bool {
        self.is_valid()
            && match (self.min, self.max) {
                (Some(a), Some(b)) => a < b,
                _ => true,
            }
    }

    /// `v` within the bounds. Invalid bounds leave `v` as it is (the axis is not free, so a
    /// client keeps the current value instead; see [`constrain`]). NaN stays NaN.
    pub fn clamp(&self, v: f32) -> f32 {
        if !self.is_valid() {
            return v;
        }
        let v = self.min.map_or(v, |m| v.max(m));
        self.max.map_or(v, |m| v.min(m))
    }

    /// Is `v` within the bounds (a small tolerance for values that went through `f32` math)?
    pub fn contains(&self, v: f32) -> bool {
        const EPS: f32 = 1e-4;
        v.is_finite()
            && self.min.is_none_or(|m| v >= m - EPS * m.abs().max(1.0))
            && self.max.is_none_or(|m| v <= m + EPS * m.abs().max(1.0))
    }
}

/// Per-axis hard limits (`AllowedAxis` on the wire).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AxisLimits {
    /// Along X.
    pub x: AxisLimit,
    /// Along Y.
    pub y: AxisLimit,
    /// Along Z.
    pub z: AxisLimit,
}

/// Why limits cannot be used as they are (a client locks the axis and says this).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitProblem {
    /// `min > max`, or a bound that is not a finite number.
    #[error("the {axis} limits are invalid (min {min:?}, max {max:?}): the axis is locked")]
    Invalid {
        /// `"x"`, `"y"` or `"z"`.
        axis: &'static str,
        /// The lower bound.
        min: Option<f32>,
        /// The upper bound.
        max: Option<f32>,
    },
}

impl AxisLimits {
    /// Every axis free, without bounds.
    pub const FREE: AxisLimits = AxisLimits {
        x: AxisLimit::FREE,
        y: AxisLimit::FREE,
        z: AxisLimit::FREE,
    };

    /// The same limit on every axis.
    pub fn splat(limit: AxisLimit) -> Self {
        AxisLimits {
            x: limit,
            y: limit,
            z: limit,
        }
    }

    /// The three axes in order.
    pub fn axes(&self) -> [AxisLimit; 3] {
        [self.x, self.y, self.z]
    }

    /// Which axes a user may move along.
    pub fn free(&self) -> BVec3 {
        BVec3::new(self.x.is_free(), self.y.is_free(), self.z.is_free())
    }

    /// `wanted` on the free axes, clamped to their bounds; `current` on the others.
    pub fn constrain(&self, current: Vec3, wanted: Vec3) -> Vec3 {
        let pick = |l: AxisLimit, c: f32, w: f32| if l.is_free() { l.clamp(w) } else { c };
        Vec3::new(
            pick(self.x, current.x, wanted.x),
            pick(self.y, current.y, wanted.y),
            pick(self.z, current.z, wanted.z),
        )
    }

    /// Does `v` respect every bound?
    pub fn contains(&self, v: Vec3) -> bool {
        self.x.contains(v.x) && self.y.contains(v.y) && self.z.contains(v.z)
    }

    /// What is wrong with these limits, axis by axis.
    pub fn problems(&self) -> Vec<LimitProblem> {
        ["x", "y", "z"]
            .into_iter()
            .zip(self.axes())
            .filter(|(_, l)| !l.is_valid())
            .map(|(axis, l)| LimitProblem::Invalid {
                axis,
                min: l.min,
                max: l.max,
            })
            .collect()
    }

    fn to_wire(self) -> AllowedAxis {
        let range = |l: AxisLimit| AxisRange::new(l.min.unwrap_or(0.0), l.max.unwrap_or(0.0));
        let flags = AllowedAxisFlags::default()
            .with_x_min_enable(self.x.min.is_some() as u8)
            .with_x_max_enable(self.x.max.is_some() as u8)
            .with_y_min_enable(self.y.min.is_some() as u8)
            .with_y_max_enable(self.y.max.is_some() as u8)
            .with_z_min_enable(self.z.min.is_some() as u8)
            .with_z_max_enable(self.z.max.is_some() as u8);
        AllowedAxis::new(range(self.x), range(self.y), range(self.z), flags)
    }

    fn from_wire(w: AllowedAxis) -> Self {
        let f = w.flags;
        let limit = |r: AxisRange, min: u8, max: u8| AxisLimit {
            min: (min != 0).then(|| r.min.get()),
            max: (max != 0).then(|| r.max.get()),
        };
        AxisLimits {
            x: limit(w.x, f.x_min_enable(), f.x_max_enable()),
            y: limit(w.y, f.y_min_enable(), f.y_max_enable()),
            z: limit(w.z, f.z_min_enable(), f.z_max_enable()),
        }
    }
}

/// Users may move the entity (`CanTranslateComponent`, Core (0, 6)); limits on its local
/// translation, in scene units.
#[derive(Component, Debug, Default, Clone, Copy, PartialEq)]
pub struct CanTranslate(pub AxisLimits);

/// Users may rotate the entity (`CanRotateComponent`, Core (0, 7)); limits on its local rotation
/// as XYZ Euler angles ([`EulerRot::XYZ`]), in radians.
#[derive(Component, Debug, Default, Clone, Copy, PartialEq)]
pub struct CanRotate(pub AxisLimits);

/// Users may scale the entity (`CanScaleComponent`, Core (0, 8)); limits on its local scale.
#[derive(Component, Debug, Default, Clone, Copy, PartialEq)]
pub struct CanScale(pub AxisLimits);

/// What activating the entity does (`ActivateComponent`, Core (0, 9)): endpoint entities (each
/// with an [`RpcEndpoint`](crate::rpc::RpcEndpoint)) to invoke; the first is the primary action
/// (a click), the others are alternatives a client lists. At most 255.
#[derive(Component, Debug, Default, Clone, PartialEq, Eq)]
pub struct Activate(pub Vec<Entity>);

macro_rules! marker {
    ($ty:ident, $wire:ident, $id:expr) => {
        impl MirrorComponent for $ty {
            type Wire = $wire;
            const EXTENSION: u16 = 0;
            const IDENTIFIER: u16 = $id;
            fn to_wire(&self, _: &dyn EntityIds) -> Option<$wire> {
                Some($wire)
            }
            fn from_wire(_: $wire, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
                Ok($ty)
            }
        }
    };
}

marker!(Interactive, InteractiveComponent, 5);
marker!(CanSelect, CanSelectComponent, 17);

macro_rules! affordance {
    ($ty:ident, $wire:ident, $id:expr) => {
        impl MirrorComponent for $ty {
            type Wire = $wire;
            const EXTENSION: u16 = 0;
            const IDENTIFIER: u16 = $id;
            fn to_wire(&self, _: &dyn EntityIds) -> Option<$wire> {
                Some($wire::new(self.0.to_wire()))
            }
            fn from_wire(w: $wire, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
                Ok($ty(AxisLimits::from_wire(w.axes)))
            }
        }
    };
}

affordance!(CanTranslate, CanTranslateComponent, 6);
affordance!(CanRotate, CanRotateComponent, 7);
affordance!(CanScale, CanScaleComponent, 8);

impl MirrorComponent for Activate {
    type Wire = ActivateComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 9;
    /// Targets that are not shared are left out (their ids mean nothing to the peer).
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<ActivateComponent> {
        Some(ActivateComponent(
            self.0
                .iter()
                .filter_map(|e| ids.id_of(*e).map(EntityID::new))
                .take(u8::MAX as usize)
                .collect(),
        ))
    }
    fn from_wire(w: ActivateComponent, ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Activate(
            w.0.iter().map(|id| ids.entity(id.id.get())).collect(),
        ))
    }
}

impl MirrorComponent for IsSelected {
    type Wire = IsSelectedComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 18;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<IsSelectedComponent> {
        Some(IsSelectedComponent::new(color_to_srgb8(self.color)))
    }
    fn from_wire(w: IsSelectedComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(IsSelected {
            color: srgb8_to_color(w.color),
        })
    }
}

/// The pose a user may propose for an entity now at `current` when they asked for `wanted`:
/// translation, rotation and scale each change only if the entity has the matching affordance,
/// only along its free axes, and within its bounds (rotation as XYZ Euler angles).
pub fn constrain(
    current: &Transform,
    wanted: &Transform,
    translate: Option<&CanTranslate>,
    rotate: Option<&CanRotate>,
    scale: Option<&CanScale>,
) -> Transform {
    let mut out = *current;
    if let Some(t) = translate {
        out.translation = t.0.constrain(current.translation, wanted.translation);
    }
    if let Some(r) = rotate {
        let euler = |q: Quat| Vec3::from(q.to_euler(EulerRot::XYZ));
        let w = euler(wanted.rotation);
        let e = r.0.constrain(euler(current.rotation), w);
        // Within the limits, the wanted rotation stays exactly as it was (no Euler round trip).
        out.rotation = if e == w {
            wanted.rotation
        } else {
            Quat::from_euler(EulerRot::XYZ, e.x, e.y, e.z)
        };
    }
    if let Some(s) = scale {
        out.scale = s.0.constrain(current.scale, wanted.scale);
    }
    out
}

/// May a user move an entity from `current` to `proposed`? For an Upstream's
/// [`ProposalPolicy`](crate::proposals::ProposalPolicy): each part of the pose that changed
/// needs its affordance, may change only along free axes, and must end within the bounds.
pub fn within_limits(
    current: &Transform,
    proposed: &Transform,
    translate: Option<&CanTranslate>,
    rotate: Option<&CanRotate>,
    scale: Option<&CanScale>,
) -> bool {
    const EPS: f32 = 1e-4;
    let part = |limits: Option<&AxisLimits>, c: Vec3, p: Vec3| {
        if c.abs_diff_eq(p, EPS) {
            return true;
        }
        let Some(l) = limits else { return false };
        let moved = BVec3::new(
            (c.x - p.x).abs() > EPS,
            (c.y - p.y).abs() > EPS,
            (c.z - p.z).abs() > EPS,
        );
        !(moved & !l.free()).any() && l.contains(p)
    };
    let rotation_same = current.rotation.angle_between(proposed.rotation) < EPS;
    let euler = |q: Quat| Vec3::from(q.to_euler(EulerRot::XYZ));
    part(
        translate.map(|t| &t.0),
        current.translation,
        proposed.translation,
    ) && (rotation_same
        || part(
            rotate.map(|r| &r.0),
            euler(current.rotation),
            euler(proposed.rotation),
        ))
        && part(scale.map(|s| &s.0), current.scale, proposed.scale)
}

/// Why an activation could not be sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActivateError {
    /// `Activate` names fewer targets.
    #[error("the entity's Activate names {count} targets; there is no target {index}")]
    NoSuchTarget {
        /// The target asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// The invocation failed.
    #[error("invoking the activation target: {0}")]
    Invoke(#[from] RpcInvokeError),
}

/// Activate (Downstream): invoke target `index` of `activate` (0 is the primary action) on `link`
/// without arguments; returns the invoke id its replies carry.
pub fn activate(
    rpc: &mut RpcClient,
    link: Entity,
    activate: &Activate,
    index: usize,
) -> Result<u32, ActivateError> {
    let target = *activate.0.get(index).ok_or(ActivateError::NoSuchTarget {
        index,
        count: activate.0.len(),
    })?;
    Ok(rpc.invoke(link, RpcTarget::Entity(target), [])?)
}

/// Mirrors the interaction and selection components. Added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
pub struct InteractionPlugin;

impl Plugin for InteractionPlugin {
    fn build(&self, app: &mut App) {
        app.mirror_component::<Interactive>()
            .mirror_component::<CanTranslate>()
            .mirror_component::<CanRotate>()
            .mirror_component::<CanScale>()
            .mirror_component::<Activate>()
            .mirror_component::<CanSelect>()
            .mirror_component::<IsSelected>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip_through_the_wire_with_their_enable_flags() {
        let l = AxisLimits {
            x: AxisLimit::range(-1.0, 2.0),
            y: AxisLimit {
                min: Some(0.5),
                max: None,
            },
            z: AxisLimit::FREE,
        };
        let w = l.to_wire();
        assert_eq!(w.flags.x_min_enable(), 1);
        assert_eq!(w.flags.y_max_enable(), 0);
        assert_eq!(w.flags.z_min_enable(), 0);
        assert_eq!(AxisLimits::from_wire(w), l);
    }

    #[test]
    fn clamping_respects_bounds_and_locked_axes() {
        let l = AxisLimits {
            x: AxisLimit::range(-1.0, 1.0),
            y: AxisLimit::locked(3.0),
            z: AxisLimit {
                min: None,
                max: Some(0.0),
            },
        };
        assert_eq!(l.free(), BVec3::new(true, false, true));
        let got = l.constrain(Vec3::new(0.0, 3.0, -1.0), Vec3::new(5.0, 9.0, 4.0));
        assert_eq!(got, Vec3::new(1.0, 3.0, 0.0));
        let got = l.constrain(Vec3::ZERO, Vec3::new(-5.0, 1.0, -7.0));
        assert_eq!(got, Vec3::new(-1.0, 0.0, -7.0));
    }

    #[test]
    fn invalid_limits_lock_the_axis_and_are_reported_without_panicking() {
        let l = AxisLimits {
            x: AxisLimit::range(2.0, -2.0),
            y: AxisLimit {
                min: Some(f32::NAN),
                max: None,
            },
            z: AxisLimit::FREE,
        };
        assert_eq!(l.free(), BVec3::new(false, false, true));
        assert_eq!(l.x.clamp(7.0), 7.0);
        assert_eq!(
            l.constrain(Vec3::ONE, Vec3::splat(9.0)),
            Vec3::new(1.0, 1.0, 9.0)
        );
        let p = l.problems();
        assert_eq!(p.len(), 2);
        assert!(
            p[0].to_string().contains("x limits are invalid"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn constrain_keeps_parts_without_an_affordance() {
        let current = Transform::from_xyz(1.0, 2.0, 3.0);
        let wanted = Transform {
            translation: Vec3::new(10.0, 20.0, 30.0),
            rotation: Quat::from_rotation_y(1.0),
            scale: Vec3::splat(2.0),
        };
        let t = CanTranslate(AxisLimits {
            x: AxisLimit::range(0.0, 5.0),
            ..AxisLimits::FREE
        });
        let got = constrain(&current, &wanted, Some(&t), None, None);
        assert_eq!(got.translation, Vec3::new(5.0, 20.0, 30.0));
        assert_eq!(got.rotation, Quat::IDENTITY);
        assert_eq!(got.scale, Vec3::ONE);

        let r = CanRotate(AxisLimits {
            x: AxisLimit::locked(0.0),
            y: AxisLimit::range(-0.5, 0.5),
            z: AxisLimit::locked(0.0),
        });
        let got = constrain(&current, &wanted, None, Some(&r), None);
        let (x, y, z) = got.rotation.to_euler(EulerRot::XYZ);
        assert!(x.abs() < 1e-5 && z.abs() < 1e-5 && (y - 0.5).abs() < 1e-5);

        // A rotation within the limits is kept bit for bit (an Upstream that holds poses to the
        // limits every frame must not change them by rounding).
        let free = CanRotate(AxisLimits::FREE);
        let q = Quat::from_euler(EulerRot::YXZ, 0.3, 1.2, -2.0);
        let wanted = Transform::from_rotation(q);
        assert_eq!(
            constrain(&current, &wanted, None, Some(&free), None).rotation,
            q
        );
    }

    #[test]
    fn within_limits_refuses_moves_the_entity_does_not_allow() {
        let current = Transform::from_xyz(0.0, 0.0, 0.0);
        let t = CanTranslate(AxisLimits {
            x: AxisLimit::range(-1.0, 1.0),
            y: AxisLimit::locked(0.0),
            z: AxisLimit::FREE,
        });
        // May the entity be moved to (x, y, z), with or without its `CanTranslate`?
        let may = |x, y, z, t: Option<&CanTranslate>| {
            within_limits(&current, &Transform::from_xyz(x, y, z), t, None, None)
        };
        assert!(within_limits(&current, &current, None, None, None));
        assert!(may(0.5, 0.0, 9.0, Some(&t)));
        assert!(!may(1.5, 0.0, 0.0, Some(&t)), "past the x limit");
        assert!(!may(0.0, 0.5, 0.0, Some(&t)), "along the locked y");
        assert!(!may(0.5, 0.0, 0.0, None), "without the affordance");
        let turned = Transform::from_rotation(Quat::from_rotation_z(0.3));
        assert!(!within_limits(&current, &turned, Some(&t), None, None));
        let r = CanRotate(AxisLimits::FREE);
        assert!(within_limits(&current, &turned, None, Some(&r), None));
    }
}

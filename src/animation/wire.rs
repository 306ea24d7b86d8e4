//! The animation types on the wire: `AnimSamplerAsset` (0, 6) and `AnimationAsset` (0, 5) as
//! registry rules ([`MirrorAsset`]), `AnimatorComponent` (0, 22) ↔ [`NoodlesAnimator`].

use bevy::prelude::*;
use noodles2::animation::{AnimationError, Layer, Sampler, Target};

use super::{AnimSampler, AnimatorLayer, ClipChannel, ClipTarget, NoodlesAnimator, NoodlesClip};
use crate::assets::{AssetImport, asset_type, reserve, store};
use crate::codec as w;
use crate::mirror::{
    AssetImported, EntityIds, EntityIndex, EntityResolver, MirrorAppExt, MirrorAsset,
    MirrorComponent, MirrorError, asset_handle,
};

struct SamplerRule;

impl MirrorAsset for SamplerRule {
    type Wire = w::AnimSamplerAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::ANIM_SAMPLER;
    const NAME: &'static str = "animation sampler";
    const ID_WRAPPER: Option<&'static str> = Some("AnimSamplerAssetID");

    fn import(
        s: w::AnimSamplerAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        let import = world.resource::<AssetImport>();
        let (Some(input), Some(output)) = (
            crate::assets::sync::buffer_of(import, link, &s.input)?,
            crate::assets::sync::buffer_of(import, link, &s.output)?,
        ) else {
            return Ok(AssetImported::Waiting);
        };
        let view = |name, v: &w::BufferView, buf: &[u8]| {
            noodles2::assets::view_bytes(name, v, buf)
                .map(<[u8]>::to_vec)
                .map_err(|e| e.to_string())
        };
        let (input, output) = (
            view("anim sampler input", &s.input, &input)?,
            view("anim sampler output", &s.output, &output)?,
        );
        let sampler =
            Sampler::from_wire(&s, &input, &output).map_err(|e: AnimationError| e.to_string())?;
        store(
            world,
            link,
            asset_type::ANIM_SAMPLER,
            id,
            AnimSampler(sampler),
        )
    }

    fn reserve(world: &World) -> Option<UntypedHandle> {
        reserve::<AnimSampler>(world)
    }
}

struct ClipRule;

impl MirrorAsset for ClipRule {
    type Wire = w::AnimationAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::ANIMATION;
    const NAME: &'static str = "animation";
    const ID_WRAPPER: Option<&'static str> = Some("AnimationAssetID");

    /// Samplers are referred to by handle (they may arrive later; a channel whose sampler is
    /// missing contributes nothing until it arrives). Entities must be known; channels with a
    /// path the spec does not define are dropped (logged at debug level).
    fn import(
        a: w::AnimationAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        let duration = a.duration_seconds;
        if !duration.is_finite() || duration < 0.0 {
            return Err(format!(
                "duration_seconds is {duration}, not a finite number >= 0"
            ));
        }
        let samplers = a
            .samplers
            .iter()
            .map(|s| {
                let sid = s.id.id.get();
                asset_handle(world, link, (0, asset_type::ANIM_SAMPLER), sid)
                    .map(|h| h.typed::<AnimSampler>())
                    .ok_or_else(|| format!("sampler asset {sid} cannot be referred to"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let sampler = |i: u16, channel: &str| {
            samplers.get(usize::from(i)).cloned().ok_or_else(|| {
                format!(
                    "{channel} uses sampler {i}, but the animation has {} samplers",
                    samplers.len()
                )
            })
        };
        let mut channels = Vec::new();
        for (n, c) in a.component_channels.iter().enumerate() {
            let name = format!("component channel {n}");
            let sampler = sampler(c.sampler.get(), &name)?;
            let t = &c.target;
            let eid = t.entity.id.get();
            let entity = world
                .resource::<EntityIndex>()
                .mirrored(link, eid)
                .ok_or_else(|| format!("{name} targets entity {eid}, which does not exist"))?;
            let component = (
                t.component_id.extension.id.get(),
                t.component_id.identifier.get(),
            );
            let (member, sub) = (t.member_index.get(), t.sub_index.get());
            match Target::of_component(component, member, sub) {
                Some(target) => channels.push(ClipChannel {
                    sampler,
                    target: ClipTarget::Entity(entity, target),
                }),
                None => debug!(
                    "animation {id}: {name} targets member {member} of component {component:?}, which is not an animatable Core path; ignored"
                ),
            }
        }
        for (n, c) in a.asset_channels.iter().enumerate() {
            let name = format!("asset channel {n}");
            let sampler = sampler(c.sampler.get(), &name)?;
            let t = &c.target;
            let ty = (
                t.asset.asset_type.extension.id.get(),
                t.asset.asset_type.identifier.get(),
            );
            let aid = t.asset.asset_id.id.get();
            let member = t.member_index.get();
            let Some(target) = Target::of_asset(ty, member) else {
                debug!(
                    "animation {id}: {name} targets member {member} of asset type {ty:?}, which is not an animatable Core path; ignored"
                );
                continue;
            };
            match asset_handle(world, link, ty, aid) {
                Some(h) => channels.push(ClipChannel {
                    sampler,
                    target: ClipTarget::Asset(h, target),
                }),
                // A node without materials (headless) has nothing to animate there.
                None => debug!(
                    "animation {id}: {name}: asset {aid} of type {ty:?} is not kept here; ignored"
                ),
            }
        }
        store(
            world,
            link,
            asset_type::ANIMATION,
            id,
            NoodlesClip { duration, channels },
        )
    }

    fn reserve(world: &World) -> Option<UntypedHandle> {
        reserve::<NoodlesClip>(world)
    }

    fn check_proposed(a: &w::AnimationAsset) -> Result<(), String> {
        if !a.duration_seconds.is_finite() || a.duration_seconds < 0.0 {
            return Err(format!(
                "duration_seconds is {}, not a finite number >= 0",
                a.duration_seconds
            ));
        }
        Ok(())
    }
}

impl MirrorComponent for NoodlesAnimator {
    type Wire = w::AnimatorComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 22;

    /// Layers whose clip has no id yet are left out (the exporter marks the animator changed
    /// once it has one); more than 255 layers are cut to 255.
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<w::AnimatorComponent> {
        let layers = self
            .layers
            .iter()
            .filter_map(|l| {
                let id = ids.asset_id(l.clip.id().untyped())?;
                let x = &l.layer;
                Some(w::AnimLayer::new(
                    w::AnimationAssetID::new(w::AssetID::new(id)),
                    x.start_time,
                    x.clip_time_offset,
                    x.speed,
                    x.weight,
                    x.loop_mode.into(),
                    u8::from(x.additive),
                ))
            })
            .take(usize::from(u8::MAX))
            .collect();
        Some(w::AnimatorComponent {
            layers: w::AnimLayerList(layers),
        })
    }

    fn check(a: &w::AnimatorComponent) -> Result<(), String> {
        for (i, l) in a.layers.iter().enumerate() {
            let layer = Layer::from(l);
            let fields = [
                ("start_time", layer.start_time),
                ("clip_time_offset", layer.clip_time_offset),
                ("speed", f64::from(layer.speed)),
                ("weight", f64::from(layer.weight)),
            ];
            if let Some((name, v)) = fields.iter().find(|(_, v)| !v.is_finite()) {
                return Err(format!("layer {i}: {name} is {v}, not finite"));
            }
        }
        Ok(())
    }

    fn from_wire(
        a: w::AnimatorComponent,
        ids: &mut dyn EntityResolver,
    ) -> Result<Self, MirrorError> {
        let mut layers = Vec::with_capacity(a.layers.len());
        for l in a.layers.iter() {
            let layer = Layer::from(l);
            let id = l.animation.id.id.get();
            let clip = ids
                .asset_handle((0, asset_type::ANIMATION), id)
                .ok_or_else(|| MirrorError::no_asset::<Self>((0, asset_type::ANIMATION), id))?;
            layers.push(AnimatorLayer {
                clip: clip.typed::<NoodlesClip>(),
                layer,
            });
        }
        Ok(NoodlesAnimator { layers })
    }
}

pub(super) fn register(app: &mut App) {
    app.mirror_asset::<SamplerRule>().mirror_asset::<ClipRule>();
}

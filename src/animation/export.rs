//! Upstream: the clips shared animators play, exported with their samplers.
//!
//! A clip is exported when the first shared [`NoodlesAnimator`] starts playing it and deleted
//! when the last one stops; its samplers are exported once (each with one buffer holding its
//! times and values) whatever the number of clips using them, and deleted with the last. A clip
//! modified in Bevy's collection is sent again under the same id. The entity members a clip
//! animates are marked [`LocallyDriven`] while it is exported, so their per-frame changes are not
//! sent. Work follows changes: only animators that changed (or were just shared) are looked at.

use std::collections::{HashMap, HashSet};

use bevy::prelude::*;

use super::{AnimSampler, ClipTarget, NoodlesAnimator, NoodlesClip};
use crate::assets::sync::{buffer_body, delete_buffer};
use crate::assets::{AssetExport, AssetStats, OobServer, asset_type};
use crate::codec as w;
use crate::codec::Wire;
use crate::mirror::{
    AssetIdMap, LocallyDriven, Mirrored, Outgoing, Shared, SharedId, send_tick, upgrade,
};
use crate::schedule::NoodlesSystems;
use noodles2::animation::{Sampler, Target};

/// What the Upstream exported for animation.
#[derive(Resource, Default)]
struct ClipExport {
    /// Shared entity → the clips its animator plays.
    users: HashMap<Entity, Vec<AssetId<NoodlesClip>>>,
    /// Clip → how many shared animators play it.
    plays: HashMap<AssetId<NoodlesClip>, u32>,
    clips: HashMap<AssetId<NoodlesClip>, ExportedClip>,
    /// Sampler → (its asset id, its buffer's, how many exported clips use it).
    samplers: HashMap<AssetId<AnimSampler>, (u64, u64, u32)>,
    /// Clips played but not exported yet (not loaded, or a sampler not loaded).
    waiting: HashSet<AssetId<NoodlesClip>>,
    /// Clips Bevy modified since the last send tick.
    modified: HashSet<AssetId<NoodlesClip>>,
    /// Entities that stopped animating (or being shared) since the last send tick.
    stopped: Vec<Entity>,
}

struct ExportedClip {
    id: u64,
    samplers: Vec<AssetId<AnimSampler>>,
    /// Entity members it animates, as component types.
    driven: Vec<(Entity, (u16, u16))>,
}

/// The component type a target path lives in.
fn component_of(t: Target) -> (u16, u16) {
    t.to_wire().0
}

pub(super) fn register(app: &mut App) {
    app.world_mut()
        .get_resource_or_init::<AssetIdMap>()
        .set_upgrade((0, asset_type::ANIMATION), upgrade::<NoodlesClip>);
    app.init_resource::<ClipExport>()
        .add_observer(
            |remove: On<Remove, NoodlesAnimator>, mut state: ResMut<ClipExport>| {
                state.stopped.push(remove.entity)
            },
        )
        .add_observer(
            |remove: On<Remove, Shared>, mut state: ResMut<ClipExport>| {
                state.stopped.push(remove.entity)
            },
        )
        .add_systems(
            PostUpdate,
            (note_modified, export_clips.run_if(send_tick))
                .chain()
                .in_set(NoodlesSystems::ExportAssets),
        );
}

fn note_modified(
    mut events: MessageReader<AssetEvent<NoodlesClip>>,
    mut state: ResMut<ClipExport>,
) {
    state
        .modified
        .extend(crate::assets::users::modified(&mut events));
}

/// Changes to [`LocallyDriven`] markers: (entity, component type, added or removed).
type DrivenChanges = Vec<(Entity, (u16, u16), bool)>;

/// What exporting needs, borrowed from the system's parameters.
struct Cx<'a, 'w, 's> {
    export: &'a mut AssetExport,
    ids: &'a mut AssetIdMap,
    out: &'a mut Outgoing,
    oob: Option<&'a OobServer>,
    stats: &'a mut AssetStats,
    clips: &'a Assets<NoodlesClip>,
    samplers: &'a Assets<AnimSampler>,
    shared: &'a Query<'w, 's, &'static SharedId>,
    driven: DrivenChanges,
}

#[expect(clippy::too_many_arguments, reason = "the animation exporter")]
#[expect(clippy::type_complexity, reason = "change-detection filters")]
fn export_clips(
    mut state: ResMut<ClipExport>,
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    clips: Res<Assets<NoodlesClip>>,
    samplers: Res<Assets<AnimSampler>>,
    oob: Option<Res<OobServer>>,
    shared: Query<&'static SharedId>,
    mut animators: ParamSet<(
        Query<
            (Entity, &NoodlesAnimator),
            (
                With<Shared>,
                Without<Mirrored>,
                Or<(Changed<NoodlesAnimator>, Added<SharedId>)>,
            ),
        >,
        Query<&mut NoodlesAnimator>,
    )>,
    mut commands: Commands,
) {
    let state = &mut *state;
    let mut cx = Cx {
        export: &mut export,
        ids: &mut ids,
        out: &mut out,
        oob: oob.as_deref(),
        stats: &mut stats,
        clips: &clips,
        samplers: &samplers,
        shared: &shared,
        driven: Vec::new(),
    };
    let mut unused = Vec::new();
    let mut want = HashSet::new();
    for e in std::mem::take(&mut state.stopped) {
        unused.extend(state.users.remove(&e).unwrap_or_default());
    }
    for (e, animator) in animators.p0().iter() {
        let mut now: Vec<AssetId<NoodlesClip>> =
            animator.layers.iter().map(|l| l.clip.id()).collect();
        now.sort();
        now.dedup();
        let before = state.users.insert(e, now.clone()).unwrap_or_default();
        for c in &now {
            if !before.contains(c) {
                let n = state.plays.entry(*c).or_default();
                *n += 1;
                want.insert(*c);
            }
        }
        unused.extend(before.into_iter().filter(|c| !now.contains(c)));
    }
    for c in unused {
        if let Some(n) = state.plays.get_mut(&c) {
            *n -= 1;
            if *n == 0 {
                state.plays.remove(&c);
                state.waiting.remove(&c);
                if let Some(old) = state.clips.remove(&c) {
                    unexport(state, &mut cx, c, old, true);
                }
            }
        }
    }
    for c in std::mem::take(&mut state.modified) {
        if let Some(old) = state.clips.remove(&c) {
            unexport(state, &mut cx, c, old, false);
            want.insert(c);
        }
    }
    let late = std::mem::take(&mut state.waiting);
    want.extend(late.iter().copied());
    let mut exported_late = false;
    for c in want {
        if state.clips.contains_key(&c) || !state.plays.contains_key(&c) {
            continue;
        }
        match export_clip(state, &mut cx, c) {
            Some(clip) => {
                state.clips.insert(c, clip);
                exported_late |= late.contains(&c);
            }
            None => {
                state.waiting.insert(c);
            }
        }
    }
    // Animators whose clip went out late send their layers now.
    if exported_late {
        let mut all = animators.p1();
        for (e, played) in &state.users {
            if played
                .iter()
                .any(|c| late.contains(c) && state.clips.contains_key(c))
                && let Ok(mut a) = all.get_mut(*e)
            {
                a.set_changed();
            }
        }
    }
    let driven = std::mem::take(&mut cx.driven);
    if !driven.is_empty() {
        commands.queue(move |world: &mut World| apply_driven(world, driven));
    }
}

/// Export clip `c` with the samplers it needs; `None` while it or a sampler is not loaded.
fn export_clip(
    state: &mut ClipExport,
    cx: &mut Cx<'_, '_, '_>,
    c: AssetId<NoodlesClip>,
) -> Option<ExportedClip> {
    let clip = cx.clips.get(c)?;
    let samplers = cx.samplers;
    // Every sampler, once, and loaded.
    let mut used: Vec<(AssetId<AnimSampler>, &Sampler)> = Vec::new();
    for ch in &clip.channels {
        let s = ch.sampler.id();
        if !used.iter().any(|(u, _)| *u == s) {
            used.push((s, &samplers.get(s)?.0));
        }
    }
    if used.len() > usize::from(u16::MAX) {
        warn!(
            "clip {c:?} cannot be shared: it has {} samplers, at most 65,535",
            used.len()
        );
        return None;
    }
    let sampler_ids: Vec<u64> = used
        .iter()
        .map(|(s, sampler)| export_sampler(state, cx, *s, sampler))
        .collect();
    let used: Vec<AssetId<AnimSampler>> = used.into_iter().map(|(s, _)| s).collect();
    let mut component_channels = Vec::new();
    let mut asset_channels = Vec::new();
    let mut driven = Vec::new();
    for ch in &clip.channels {
        let index = used.iter().position(|s| *s == ch.sampler.id()).unwrap_or(0) as u16;
        match &ch.target {
            ClipTarget::Entity(e, t) => {
                let Ok(id) = cx.shared.get(*e) else {
                    debug!("clip {c:?}: channel target {e} is not shared; the channel is not sent");
                    continue;
                };
                let (ty, member, sub) = t.to_wire();
                component_channels.push(w::ComponentAnimChannel::new(
                    index,
                    w::ComponentAnimTarget::new(
                        w::EntityID::new(id.get()),
                        w::ComponentTypeID::new(w::ExtensionID::new(ty.0), ty.1),
                        member,
                        sub,
                    ),
                ));
                driven.push((*e, component_of(*t)));
            }
            ClipTarget::Asset(h, t) => {
                let Some(id) = cx.ids.exported_id(h.id()) else {
                    debug!("clip {c:?}: its material is not shared; the channel is not sent");
                    continue;
                };
                let (ty, member, sub) = t.to_wire();
                asset_channels.push(w::AssetAnimChannel::new(
                    index,
                    w::AssetAnimTarget::new(
                        w::AnAsset::new(
                            w::AssetTypeID::new(w::ExtensionID::new(ty.0), ty.1),
                            w::AssetID::new(id),
                        ),
                        member,
                        sub,
                    ),
                ));
            }
        }
    }
    let body = w::AnimationAsset {
        samplers: w::AnimSamplerList(
            sampler_ids
                .iter()
                .map(|id| w::AnimSamplerAssetID::new(w::AssetID::new(*id)))
                .collect(),
        ),
        component_channels: w::AnimCChannelList(component_channels),
        asset_channels: w::AnimAChannelList(asset_channels),
        duration_seconds: clip.duration,
    };
    let body = match body.encode_bytes() {
        Ok(b) => b,
        Err(e) => {
            warn!("clip {c:?} cannot be shared: {e}");
            return None;
        }
    };
    let key = c.untyped();
    let id = cx
        .ids
        .exported_id(key)
        .unwrap_or_else(|| cx.export.allocate());
    cx.out.modify_asset((0, asset_type::ANIMATION, id), body);
    cx.ids.export((0, asset_type::ANIMATION), key, id);
    cx.stats.exported += 1;
    for (e, ty) in &driven {
        cx.driven.push((*e, *ty, true));
    }
    Some(ExportedClip {
        id,
        samplers: used,
        driven,
    })
}

/// The asset id of sampler `s` (whose keys are `sampler`), exported with its buffer on first use.
fn export_sampler(
    state: &mut ClipExport,
    cx: &mut Cx<'_, '_, '_>,
    s: AssetId<AnimSampler>,
    sampler: &Sampler,
) -> u64 {
    if let Some((id, _, n)) = state.samplers.get_mut(&s) {
        *n += 1;
        return *id;
    }
    let (input, output) = sampler.to_bytes();
    let (buffer, id) = (cx.export.allocate(), cx.export.allocate());
    let view = |offset: usize, len: usize| {
        w::BufferView::new(
            offset as u64,
            len as u64,
            w::BufferAssetID::new(w::AssetID::new(buffer)),
        )
    };
    let body = w::AnimSamplerAsset::new(
        view(0, input.len()),
        view(input.len(), output.len()),
        sampler.interpolation().into(),
        sampler.value_type().into(),
        sampler.times().len() as u32,
    );
    let mut bytes = input;
    bytes.extend_from_slice(&output);
    if let Some(b) = buffer_body(bytes, buffer, cx.oob) {
        cx.out.modify_asset((0, asset_type::BUFFER, buffer), b);
    }
    match body.encode_bytes() {
        Ok(b) => cx.out.modify_asset((0, asset_type::ANIM_SAMPLER, id), b),
        Err(e) => warn!("animation sampler {s:?} cannot be encoded: {e}"),
    }
    cx.stats.exported += 1;
    state.samplers.insert(s, (id, buffer, 1));
    id
}

/// Take back an exported clip: its samplers' uses (deleting those no clip uses), its driven
/// markers, and, when `delete`, the clip itself on every Downstream (otherwise it is about to be
/// sent again under the same id).
fn unexport(
    state: &mut ClipExport,
    cx: &mut Cx<'_, '_, '_>,
    c: AssetId<NoodlesClip>,
    old: ExportedClip,
    delete: bool,
) {
    for s in old.samplers {
        if let Some((id, buffer, n)) = state.samplers.get_mut(&s) {
            *n -= 1;
            if *n == 0 {
                cx.out.delete_asset((0, asset_type::ANIM_SAMPLER, *id));
                delete_buffer(cx.out, cx.oob, *buffer);
                state.samplers.remove(&s);
            }
        }
    }
    for (e, ty) in old.driven {
        cx.driven.push((e, ty, false));
    }
    if delete {
        cx.out.delete_asset((0, asset_type::ANIMATION, old.id));
        cx.ids.unexport(c.untyped());
    }
}

fn apply_driven(world: &mut World, changes: DrivenChanges) {
    for (e, ty, add) in changes {
        let Ok(mut em) = world.get_entity_mut(e) else {
            continue;
        };
        match em.get_mut::<LocallyDriven>() {
            Some(mut d) => {
                let empty = if add {
                    d.add(ty);
                    false
                } else {
                    d.remove(ty)
                };
                if empty {
                    em.remove::<LocallyDriven>();
                }
            }
            None if add => {
                let mut d = LocallyDriven::default();
                d.add(ty);
                em.insert(d);
            }
            None => {}
        }
    }
}

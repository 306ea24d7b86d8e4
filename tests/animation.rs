//! Animation as assets over loopback links: clips and samplers exported by the Upstream, an
//! Animator evaluated by every Downstream at the authority time (no per-frame stream), a late
//! joiner landing in the same place, and hostile samplers and clips refused with a reason.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::animation::{
    AnimSampler, ClipChannel, ClipTarget, Interpolation, LoopMode, NoodlesAnimator, NoodlesClip,
    Sampler, Target, ValueType, clip_time,
};
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::mirror::{AuthorityClock, LocallyDriven, Mirrored, Shared};
use bevy_noodles2::prelude::*;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// A 2 s clip moving `target` along x (0 → 2 → 0) and turning it 90° about y, on the Upstream.
fn clip(up: &mut App, target: Entity) -> (Handle<NoodlesClip>, Sampler, Sampler) {
    let moving = Sampler::new(
        Interpolation::Linear,
        ValueType::Float3,
        vec![0.0, 1.0, 2.0],
        vec![0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2;
    let turning = Sampler::new(
        Interpolation::Linear,
        ValueType::Rotation,
        vec![0.0, 2.0],
        vec![0.0, 0.0, 0.0, 1.0, 0.0, h, 0.0, h],
    )
    .unwrap();
    let world = up.world_mut();
    let mut samplers = world.resource_mut::<Assets<AnimSampler>>();
    let (a, b) = (
        samplers.add(AnimSampler(moving.clone())),
        samplers.add(AnimSampler(turning.clone())),
    );
    let clip = world
        .resource_mut::<Assets<NoodlesClip>>()
        .add(NoodlesClip {
            duration: 2.0,
            channels: vec![
                ClipChannel {
                    sampler: a,
                    target: ClipTarget::Entity(target, Target::Translation),
                },
                ClipChannel {
                    sampler: b,
                    target: ClipTarget::Entity(target, Target::Rotation),
                },
            ],
        });
    (clip, moving, turning)
}

/// The authority time `app` evaluated its last frame at.
fn authority_now(app: &App) -> f64 {
    let local = app.world().resource::<Time<Real>>().elapsed_secs_f64();
    app.world()
        .get_resource::<AuthorityClock>()
        .and_then(|c| c.authority_now(local))
        .unwrap_or(local)
}

/// Update `up` and `down` until `down`'s authority time has moved on by `by` seconds: frames at
/// different times, waited for as a condition.
fn advance(up: &mut App, down: &mut App, by: f64) {
    let start = authority_now(down);
    run_until(
        &mut [up, down],
        LIMIT,
        "the authority time to move on",
        |a| authority_now(a[1]) >= start + by,
    );
}

/// The pose the animator of `animator_entity` gives at `app`'s last frame, by hand from the
/// samplers.
fn expected_pose(
    app: &App,
    animator: &NoodlesAnimator,
    moving: &Sampler,
    turning: &Sampler,
) -> (Vec3, Quat) {
    let t = clip_time(&animator.layers[0].layer, authority_now(app), 2.0).unwrap() as f32;
    let p = match moving.sample(t).unwrap() {
        bevy_noodles2::animation::Value::Float3(v) => Vec3::from_array(v),
        _ => unreachable!(),
    };
    let r = match turning.sample(t).unwrap() {
        bevy_noodles2::animation::Value::Rotation(q) => Quat::from_array(q),
        _ => unreachable!(),
    };
    (p, r)
}

/// Whether the Downstream's mirror of `cube` shows exactly the pose its mirrored animator gives
/// now (within 1e-4).
fn in_pose(up: &App, down: &mut App, cube: Entity, player: Entity, s: &(Sampler, Sampler)) -> bool {
    let (Some(m), Some(p)) = (mirror_of(up, down, cube), mirror_of(up, down, player)) else {
        return false;
    };
    let Some(animator) = down.world().get::<NoodlesAnimator>(p).cloned() else {
        return false;
    };
    let clip = &animator.layers[0].clip;
    let ready = down
        .world()
        .resource::<Assets<NoodlesClip>>()
        .get(clip)
        .is_some_and(|c| {
            c.channels.len() == 2
                && c.channels.iter().all(|ch| {
                    down.world()
                        .resource::<Assets<AnimSampler>>()
                        .contains(&ch.sampler)
                })
        });
    if !ready {
        return false;
    }
    let (want_p, want_r) = expected_pose(down, &animator, &s.0, &s.1);
    let t = down.world().get::<Transform>(m).unwrap();
    t.translation.distance(want_p) < 1e-4 && t.rotation.angle_between(want_r) < 1e-3
}

#[test]
fn clips_play_on_every_downstream_at_authority_time_without_a_stream() {
    let (mut up, mut down) = linked_asset_apps("anim");
    let cube = up.world_mut().spawn((Shared, Transform::default())).id();
    let (clip, moving, turning) = clip(&mut up, cube);
    up.update();
    let now = authority_now(&up);
    let player = up
        .world_mut()
        .spawn((Shared, NoodlesAnimator::playing(clip, now - 0.5)))
        .id();
    let samplers = (moving, turning);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the clip plays downstream",
        |a| {
            let (u, d) = a.split_at_mut(1);
            in_pose(u[0], d[0], cube, player, &samplers)
        },
    );
    // It keeps playing: a few frames later, at a different authority time, the pose still
    // matches (and differs from the first one).
    let m = mirror_of(&up, &mut down, cube).unwrap();
    let first = *down.world().get::<Transform>(m).unwrap();
    advance(&mut up, &mut down, 0.05);
    assert!(in_pose(&up, &mut down, cube, player, &samplers));
    let later = *down.world().get::<Transform>(m).unwrap();
    assert_ne!(first, later, "the pose moves with time");
    // The Upstream evaluates it too, and marks the member driven: its changes are not sent.
    assert!(
        up.world()
            .get::<LocallyDriven>(cube)
            .is_some_and(|d| d.drives((0, 20)))
    );
    let mut sent = 0;
    for _ in 0..30 {
        pump(&mut [&mut up, &mut down], 1);
        sent += up.world().resource::<MirrorStats>().last_delta_bytes;
    }
    // Only TimeSync (about once a second) may go out; a transform stream would be ~60 bytes a
    // frame.
    assert!(
        sent < 200,
        "{sent} bytes sent in 30 frames of a playing clip"
    );

    // A late joiner lands in the same place of the running clip.
    let mut late = asset_app("anim late");
    log_closed(&mut late);
    let url = up
        .world_mut()
        .query::<&NoodlesListener>()
        .iter(up.world())
        .next()
        .unwrap()
        .url()
        .unwrap();
    connect(&mut late, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down, &mut late],
        LIMIT,
        "the late joiner shows the pose",
        |a| {
            let (u, rest) = a.split_at_mut(1);
            in_pose(u[0], rest[1], cube, player, &samplers)
        },
    );

    // Another loop mode is one component change, and plays everywhere.
    up.world_mut()
        .get_mut::<NoodlesAnimator>(player)
        .unwrap()
        .layers[0]
        .layer
        .loop_mode = LoopMode::PingPong;
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "ping-pong downstream",
        |a| {
            let (u, d) = a.split_at_mut(1);
            let Some(p) = mirror_of(u[0], d[0], player) else {
                return false;
            };
            d[0].world()
                .get::<NoodlesAnimator>(p)
                .is_some_and(|a| a.layers[0].layer.loop_mode == LoopMode::PingPong)
                && in_pose(u[0], d[0], cube, player, &samplers)
        },
    );

    // Stopping the animator deletes the clip and its samplers downstream.
    up.world_mut()
        .entity_mut(player)
        .remove::<NoodlesAnimator>();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "clip deleted downstream",
        |a| {
            a[1].world().resource::<Assets<NoodlesClip>>().is_empty()
                && a[1].world().resource::<Assets<AnimSampler>>().is_empty()
        },
    );
    assert!(up.world().get::<LocallyDriven>(cube).is_none());
    assert!(closed_reasons(&down).is_empty());
    assert!(closed_reasons(&late).is_empty());
}

#[test]
fn a_downstream_proposes_another_clip_and_it_plays_everywhere() {
    let mut up = asset_app("anim propose up");
    let mut down = asset_app("anim propose down");
    log_closed(&mut down);
    let link = linked_with(&mut up, &mut down, granting_listener());
    // Two cubes with a clip each; the second clip is in an animator at weight 0, so it is exported
    // (a Downstream can name it) without moving anything.
    let a = up.world_mut().spawn((Shared, Transform::default())).id();
    let b = up.world_mut().spawn((Shared, Transform::default())).id();
    let (clip_a, moving, turning) = clip(&mut up, a);
    let (clip_b, ..) = clip(&mut up, b);
    up.update();
    let now = authority_now(&up);
    let pa = up
        .world_mut()
        .spawn((Shared, NoodlesAnimator::playing(clip_a, now)))
        .id();
    let mut idle = NoodlesAnimator::playing(clip_b.clone(), now);
    idle.layers[0].layer.weight = 0.0;
    up.world_mut().spawn((Shared, idle));
    let samplers = (moving, turning);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "both clips downstream",
        |x| {
            let (u, d) = x.split_at_mut(1);
            in_pose(u[0], d[0], a, pa, &samplers)
                && d[0].world().resource::<Assets<NoodlesClip>>().len() == 2
        },
    );
    // The Downstream asks the first animator to play the second clip (which moves cube b), at
    // half speed, from the start.
    let mirrored = mirror_of(&up, &mut down, pa).unwrap();
    let down_clip_b = {
        let a_mirror = mirror_of(&up, &mut down, a).unwrap();
        let clips = down.world().resource::<Assets<NoodlesClip>>();
        let (id, _) = clips
            .iter()
            .find(
                |(_, c)| !matches!(c.channels[0].target, ClipTarget::Entity(e, _) if e == a_mirror),
            )
            .unwrap();
        down.world_mut()
            .resource_mut::<Assets<NoodlesClip>>()
            .get_strong_handle(id)
            .unwrap()
    };
    let mut proposed = NoodlesAnimator::playing(down_clip_b, authority_now(&down));
    proposed.layers[0].layer.speed = 0.5;
    let mut p = Proposal::new();
    p.insert(mirrored, proposed);
    let tid = bevy_noodles2::proposals::send_proposal(down.world_mut(), link, p).unwrap();
    let mut code = None;
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the proposal answered",
        |x| {
            for r in x[1]
                .world_mut()
                .resource_mut::<Messages<ProposalReply>>()
                .drain()
            {
                if r.transaction_id == tid {
                    code = Some(r.code);
                }
            }
            code.is_some()
        },
    );
    assert_eq!(code, Some(0));
    // The Upstream's animator now plays clip b, and every node shows it.
    let now_playing = up.world().get::<NoodlesAnimator>(pa).unwrap().clone();
    assert_eq!(now_playing.layers[0].clip, clip_b);
    assert_eq!(now_playing.layers[0].layer.speed, 0.5);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the proposed clip plays",
        |x| {
            let (u, d) = x.split_at_mut(1);
            d[0].world()
                .get::<NoodlesAnimator>(mirrored)
                .is_some_and(|a| a.layers[0].layer.speed == 0.5)
                && in_pose(u[0], d[0], b, pa, &samplers)
        },
    );
    assert!(closed_reasons(&down).is_empty());
}

/// Every target path of the spec's tables is written, with the coercions, on the node that
/// evaluates (here an Upstream's own animator: no link is needed to evaluate).
#[test]
fn every_target_path_is_written_with_its_coercion() {
    use bevy::light::GeneratedEnvironmentMapLight;
    use bevy::mesh::morph::MeshMorphWeights;
    use bevy_noodles2::mirror::MorphTargetWeights;

    let mut app = asset_app("anim targets");
    let world = app.world_mut();
    let light = world
        .spawn((
            Transform::default(),
            PointLight::default(),
            DirectionalLight::default(),
            GeneratedEnvironmentMapLight {
                environment_map: Handle::default(),
                intensity: 1.0,
                rotation: Quat::IDENTITY,
                affects_lightmapped_mesh_diffuse: true,
            },
        ))
        .id();
    let morphed = world
        .spawn((
            MeshMorphWeights::Value {
                weights: vec![0.0, 0.0],
            },
            MorphTargetWeights(vec![0.0, 0.0]),
        ))
        .id();
    let material = world
        .resource_mut::<Assets<StandardMaterial>>()
        .add(StandardMaterial::default());
    // One-key samplers: every time reads that key.
    let key =
        |ty, values: Vec<f32>| Sampler::new(Interpolation::Step, ty, vec![0.0], values).unwrap();
    let blue = key(ValueType::Srgba8, vec![0.0, 0.0, 1.0, 0.5]);
    let turn = Quat::from_rotation_y(1.0).to_array().to_vec();
    let channels: Vec<(Sampler, ClipTarget)> = vec![
        (
            blue.clone(),
            ClipTarget::Entity(light, Target::LightColor(11)),
        ),
        (
            key(ValueType::Float, vec![500.0]),
            ClipTarget::Entity(light, Target::LightIntensity(11)),
        ),
        // Float3 → Float: x.
        (
            key(ValueType::Float3, vec![7.0, 8.0, 9.0]),
            ClipTarget::Entity(light, Target::LightIntensity(10)),
        ),
        // Float → Float3: [v, v, v].
        (
            key(ValueType::Float, vec![2.0]),
            ClipTarget::Entity(light, Target::Scale),
        ),
        (
            key(ValueType::Float, vec![3.5]),
            ClipTarget::Entity(light, Target::EnvironmentIntensity),
        ),
        (
            key(ValueType::Rotation, turn.clone()),
            ClipTarget::Entity(light, Target::EnvironmentRotation),
        ),
        (
            key(ValueType::Float, vec![0.6]),
            ClipTarget::Entity(morphed, Target::MorphWeight(1)),
        ),
        (
            blue,
            ClipTarget::Asset(material.clone().untyped(), Target::BaseColor),
        ),
        (
            key(ValueType::Float, vec![0.25]),
            ClipTarget::Asset(material.clone().untyped(), Target::Roughness),
        ),
        (
            key(ValueType::Float, vec![0.75]),
            ClipTarget::Asset(material.clone().untyped(), Target::Metallic),
        ),
        (
            key(ValueType::Float, vec![1.8]),
            ClipTarget::Asset(material.clone().untyped(), Target::Ior),
        ),
        // No coercion from a rotation to a scalar: ignored.
        (
            key(ValueType::Rotation, turn.clone()),
            ClipTarget::Entity(light, Target::LightIntensity(12)),
        ),
    ];
    let channels = channels
        .into_iter()
        .map(|(s, target)| ClipChannel {
            sampler: world
                .resource_mut::<Assets<AnimSampler>>()
                .add(AnimSampler(s)),
            target,
        })
        .collect();
    let clip = world
        .resource_mut::<Assets<NoodlesClip>>()
        .add(NoodlesClip {
            duration: 1.0,
            channels,
        });
    // An additive layer on top: + 0.5 × 100 on the point light's intensity.
    let bump = world
        .resource_mut::<Assets<AnimSampler>>()
        .add(AnimSampler(key(ValueType::Float, vec![100.0])));
    let additive = world
        .resource_mut::<Assets<NoodlesClip>>()
        .add(NoodlesClip {
            duration: 1.0,
            channels: vec![ClipChannel {
                sampler: bump,
                target: ClipTarget::Entity(light, Target::LightIntensity(11)),
            }],
        });
    let mut animator = NoodlesAnimator::playing(clip, 0.0);
    animator.add_layer(additive, 0.0, 0.5);
    animator.layers[1].layer.additive = true;
    world.spawn(animator);
    app.update();
    let w = app.world();
    let point = w.get::<PointLight>(light).unwrap();
    assert_eq!(
        point.color.to_srgba().to_u8_array(),
        [0, 0, 255, 255],
        "alpha is not the light's"
    );
    assert_eq!(point.intensity, 550.0);
    assert_eq!(w.get::<DirectionalLight>(light).unwrap().illuminance, 7.0);
    assert_eq!(w.get::<Transform>(light).unwrap().scale, Vec3::splat(2.0));
    let env = w.get::<GeneratedEnvironmentMapLight>(light).unwrap();
    assert_eq!(env.intensity, 3.5);
    assert!(env.rotation.angle_between(Quat::from_rotation_y(1.0)) < 1e-5);
    assert_eq!(
        w.get::<MorphTargetWeights>(morphed).unwrap().0,
        vec![0.0, 0.6]
    );
    assert!(matches!(
        w.get::<MeshMorphWeights>(morphed).unwrap(),
        MeshMorphWeights::Value { weights } if weights == &vec![0.0, 0.6]
    ));
    let m = w
        .resource::<Assets<StandardMaterial>>()
        .get(&material)
        .unwrap();
    assert_eq!(m.base_color.to_srgba().to_u8_array(), [0, 0, 255, 128]);
    assert_eq!(
        (m.perceptual_roughness, m.metallic, m.ior),
        (0.25, 0.75, 1.8)
    );
}

fn view(buffer: u64, offset: u64, length: u64) -> w::BufferView {
    w::BufferView::new(
        offset,
        length,
        w::BufferAssetID::new(w::AssetID::new(buffer)),
    )
}

fn sampler(id: u64, input: w::BufferView, output: w::BufferView, keys: u32) -> w::ContentMessage {
    let s = w::AnimSamplerAsset::new(
        input,
        output,
        w::AnimInterpolation::Linear,
        w::AnimationValueType::Float,
        keys,
    );
    core_asset(6, id, s.encode().unwrap())
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn animation(id: u64, samplers: &[u64], entity: u64, sampler_index: u16) -> w::ContentMessage {
    animation_lasting(id, samplers, entity, sampler_index, 1.0)
}

fn animation_lasting(
    id: u64,
    samplers: &[u64],
    entity: u64,
    sampler_index: u16,
    duration_seconds: f64,
) -> w::ContentMessage {
    let a = w::AnimationAsset {
        samplers: w::AnimSamplerList(
            samplers
                .iter()
                .map(|s| w::AnimSamplerAssetID::new(w::AssetID::new(*s)))
                .collect(),
        ),
        component_channels: w::AnimCChannelList(vec![w::ComponentAnimChannel::new(
            sampler_index,
            w::ComponentAnimTarget::new(
                w::EntityID::new(entity),
                w::ComponentTypeID::new(w::ExtensionID::new(0), 11),
                1,
                0,
            ),
        )]),
        asset_channels: w::AnimAChannelList(vec![]),
        duration_seconds,
    };
    core_asset(5, id, a.encode().unwrap())
}

#[test]
fn hostile_samplers_and_clips_are_refused_with_a_reason() {
    let (mut up, mut down) = linked_asset_apps("anim hostile");
    // One real entity (so clips have something to name), shared normally.
    let light = up
        .world_mut()
        .spawn((Shared, Transform::default(), PointLight::default()))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "light mirrored", |a| {
        let (u, d) = a.split_at_mut(1);
        mirror_of(u[0], d[0], light).is_some()
    });
    let light_id = up.world().get::<SharedId>(light).unwrap().get();
    // Times 0, 1, 0.5: not increasing. 8 keys of 4 bytes in 8 bytes: counts disagree. A view
    // past its buffer. A good sampler, then clips naming an unknown entity and a sampler index
    // past the list.
    let mut bytes = floats(&[0.0, 1.0, 0.5]);
    bytes.extend(floats(&[1.0, 2.0, 3.0]));
    send_transaction(
        &mut up,
        vec![
            inline_buffer(9000, bytes),
            sampler(9001, view(9000, 0, 12), view(9000, 12, 12), 3),
            sampler(9002, view(9000, 0, 8), view(9000, 12, 8), 8),
            sampler(9003, view(9000, 0, 12), view(9000, 20, 12), 3),
            sampler(9004, view(9000, 0, 8), view(9000, 12, 8), 2),
            animation(9005, &[9004], 777_777, 0),
            animation(9006, &[9004], light_id, 3),
            animation_lasting(9007, &[9004], light_id, 0, f64::NAN),
        ],
    );
    run_until(&mut [&mut up, &mut down], LIMIT, "six refusals", |a| {
        a[1].world().resource::<AssetStats>().refused >= 6
    });
    let stats = down.world().resource::<AssetStats>();
    let reasons: Vec<String> = stats
        .recent_refusals
        .iter()
        .map(|r| r.to_string())
        .collect();
    let has = |s: &str| reasons.iter().any(|r| r.contains(s));
    assert!(
        has("input time 2 is 0.5, smaller than the time before it"),
        "{reasons:#?}"
    );
    assert!(has("input is 8 bytes, but 8 keyframes"), "{reasons:#?}");
    assert!(
        has(
            "anim sampler output: buffer view (offset 20, length 12) escapes its buffer of 24 bytes"
        ),
        "{reasons:#?}"
    );
    assert!(
        has("targets entity 777777, which does not exist"),
        "{reasons:#?}"
    );
    assert!(
        has("uses sampler 3, but the animation has 1 samplers"),
        "{reasons:#?}"
    );
    assert!(
        has("duration_seconds is NaN, not a finite number >= 0"),
        "{reasons:#?}"
    );
    // The good sampler arrived; the link and the world are intact.
    assert_eq!(down.world().resource::<Assets<AnimSampler>>().len(), 1);
    assert!(closed_reasons(&down).is_empty());
    assert_eq!(open_links(&mut down), 1);
    let m = mirror_of(&up, &mut down, light).unwrap();
    assert!(down.world().get::<PointLight>(m).is_some());
    assert!(down.world().get::<Mirrored>(m).is_some());
}

/// An `AnimatorComponent` with a layer value that is not finite closes the link with a reason
/// naming the field, and no entity gets that animator.
#[test]
fn a_non_finite_animator_layer_closes_the_link_with_a_reason() {
    for (field, layer) in [
        (
            "start_time",
            w::AnimLayer::new(
                w::AnimationAssetID::new(w::AssetID::new(1)),
                f64::NAN,
                0.0,
                1.0,
                1.0,
                w::AnimLoopMode::Loop,
                0,
            ),
        ),
        (
            "speed",
            w::AnimLayer::new(
                w::AnimationAssetID::new(w::AssetID::new(1)),
                0.0,
                0.0,
                f32::INFINITY,
                1.0,
                w::AnimLoopMode::Loop,
                0,
            ),
        ),
        (
            "weight",
            w::AnimLayer::new(
                w::AnimationAssetID::new(w::AssetID::new(1)),
                0.0,
                0.0,
                1.0,
                f32::NAN,
                w::AnimLoopMode::Loop,
                0,
            ),
        ),
    ] {
        let (mut up, mut down) = linked_asset_apps("anim bad layer");
        let e = up.world_mut().spawn((Shared, Transform::default())).id();
        run_until(&mut [&mut up, &mut down], LIMIT, "entity mirrored", |a| {
            let (u, d) = a.split_at_mut(1);
            mirror_of(u[0], d[0], e).is_some()
        });
        let id = up.world().get::<SharedId>(e).unwrap().get();
        let mut pair = id.to_le_bytes().to_vec();
        pair.extend(
            w::AnimatorComponent {
                layers: w::AnimLayerList(vec![layer]),
            }
            .encode()
            .unwrap(),
        );
        send_transaction(
            &mut up,
            vec![w::ContentMessage::ContentModifyComponents(
                w::ContentModifyComponents {
                    component: w::ComponentTypeID::new(w::ExtensionID::new(0), 22),
                    count: 1,
                    content: w::Content(pair.into()),
                },
            )],
        );
        run_until(&mut [&mut up, &mut down], LIMIT, "link closed", |a| {
            !closed_reasons(a[1]).is_empty()
        });
        let text = closed_reasons(&down)[0].to_string();
        assert!(
            text.contains("NoodlesAnimator") && text.contains(&format!("layer 0: {field} is")),
            "{text}"
        );
        let mut q = down
            .world_mut()
            .query_filtered::<(), (With<Mirrored>, With<NoodlesAnimator>)>();
        assert_eq!(q.iter(down.world()).count(), 0);
    }
}

#[test]
fn an_animated_light_intensity_plays_from_a_raw_upstream() {
    // A clip from another implementation: a point light's intensity 0 → 1000 over 1 s, played
    // from authority time 0 with Clamp, so the Downstream settles on 1000.
    let (mut up, mut down) = linked_asset_apps("anim light");
    let light = up
        .world_mut()
        .spawn((Shared, Transform::default(), PointLight::default()))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "light mirrored", |a| {
        let (u, d) = a.split_at_mut(1);
        mirror_of(u[0], d[0], light).is_some()
    });
    let light_id = up.world().get::<SharedId>(light).unwrap().get();
    let mut bytes = floats(&[0.0, 1.0]);
    bytes.extend(floats(&[0.0, 1000.0]));
    let animator = w::AnimatorComponent {
        layers: w::AnimLayerList(vec![w::AnimLayer::new(
            w::AnimationAssetID::new(w::AssetID::new(8002)),
            0.0,
            0.0,
            1.0,
            1.0,
            w::AnimLoopMode::Clamp,
            0,
        )]),
    };
    let mut pair = light_id.to_le_bytes().to_vec();
    pair.extend(animator.encode().unwrap());
    send_transaction(
        &mut up,
        vec![
            inline_buffer(8000, bytes),
            sampler(8001, view(8000, 0, 8), view(8000, 8, 8), 2),
            animation(8002, &[8001], light_id, 0),
            w::ContentMessage::ContentModifyComponents(w::ContentModifyComponents {
                component: w::ComponentTypeID::new(w::ExtensionID::new(0), 22),
                count: 1,
                content: w::Content(pair.into()),
            }),
        ],
    );
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "intensity animated",
        |a| {
            let (u, d) = a.split_at_mut(1);
            mirror_of(u[0], d[0], light)
                .and_then(|m| d[0].world().get::<PointLight>(m))
                .is_some_and(|l| l.intensity == 1000.0)
        },
    );
    assert!(closed_reasons(&down).is_empty());
}

/// The Fox through Bevy's own glTF loader and `AnimationPlayer` on the Upstream (no GPU), its
/// clips shared by the plugin, evaluated by the Downstream.
#[cfg(feature = "gltf")]
mod fox {
    use std::collections::HashMap;

    use bevy::animation::graph::{AnimationGraph, AnimationGraphHandle, AnimationNodeIndex};
    use bevy::animation::{AnimationClip, AnimationPlayer, AnimationTargetId};
    use bevy::gltf::{Gltf, GltfPlugin};
    use bevy::mesh::skinning::SkinnedMeshInverseBindposes;
    use bevy::world_serialization::{WorldAssetRoot, WorldSerializationPlugin};
    use bevy_noodles2::animation::{Contribution, Value, blend};

    use super::*;

    /// A headless app that loads glTF files from the repository's `assets/` and plays them.
    fn gltf_host() -> App {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_plugins(AssetPlugin {
                file_path: concat!(env!("CARGO_MANIFEST_DIR"), "/assets").into(),
                ..default()
            })
            .add_plugins((
                bevy::transform::TransformPlugin,
                bevy::animation::AnimationPlugin,
                WorldSerializationPlugin,
            ))
            .init_asset::<Mesh>()
            .init_asset::<StandardMaterial>()
            .init_asset::<Image>()
            .init_asset::<SkinnedMeshInverseBindposes>()
            .add_plugins(GltfPlugin::default())
            .add_plugins(NoodlesPlugin {
                session_name: "fox up".into(),
                ..default()
            });
        app.finish();
        app.cleanup();
        app
    }

    struct Fox {
        up: App,
        down: App,
        player: Entity,
        clips: Vec<Handle<AnimationClip>>,
        nodes: Vec<AnimationNodeIndex>,
    }

    /// The Fox spawned, shared, linked to a Downstream; nothing playing yet.
    fn fox() -> Fox {
        hosted("Fox.glb", 3)
    }

    /// `file` (from `assets/`, with `clips` animations) spawned, shared, linked to a
    /// Downstream; nothing playing yet.
    fn hosted(file: &'static str, n_clips: usize) -> Fox {
        let mut up = gltf_host();
        let gltf: Handle<Gltf> = up.world().resource::<AssetServer>().load(file);
        // The scene is taken from the loaded file rather than loaded by its own path: a second
        // load of the same file modifies the scene asset, and a spawned instance is then spawned
        // again with new entities.
        run_until(&mut [&mut up], LIMIT, "the Fox loaded", |a| {
            a[0].world()
                .resource::<AssetServer>()
                .is_loaded_with_dependencies(&gltf)
        });
        let scene = up
            .world()
            .resource::<Assets<Gltf>>()
            .get(&gltf)
            .unwrap()
            .scenes[0]
            .clone();
        let root = up.world_mut().spawn(WorldAssetRoot(scene)).id();
        let mut player = None;
        run_until(&mut [&mut up], LIMIT, "the Fox spawned", |a| {
            let w = a[0].world_mut();
            player = w
                .query_filtered::<Entity, With<AnimationPlayer>>()
                .iter(w)
                .next();
            player.is_some()
        });
        let player = player.unwrap();
        let clips = up
            .world()
            .resource::<Assets<Gltf>>()
            .get(&gltf)
            .unwrap()
            .animations
            .clone();
        assert_eq!(clips.len(), n_clips, "animations of {file}");
        let (graph, nodes) = AnimationGraph::from_clips(clips.iter().cloned());
        let graph = up
            .world_mut()
            .resource_mut::<Assets<AnimationGraph>>()
            .add(graph);
        up.world_mut()
            .entity_mut(player)
            .insert(AnimationGraphHandle(graph));
        // Share the whole scene.
        let mut all = vec![root];
        let mut i = 0;
        while i < all.len() {
            if let Some(c) = up.world().get::<Children>(all[i]) {
                all.extend(c.iter());
            }
            i += 1;
        }
        for e in all {
            up.world_mut().entity_mut(e).insert(Shared);
        }
        let mut down = asset_app("fox down");
        log_closed(&mut down);
        linked(&mut up, &mut down);
        Fox {
            up,
            down,
            player,
            clips,
            nodes,
        }
    }

    /// Joint entity (Upstream) → the Bevy curves that animate it in `clip`.
    fn joints(up: &mut App) -> HashMap<AnimationTargetId, Entity> {
        let w = up.world_mut();
        w.query::<(Entity, &AnimationTargetId)>()
            .iter(w)
            .map(|(e, id)| (*id, e))
            .collect()
    }

    /// Largest difference between the Downstream's joint transforms and the blend (by the
    /// spec's rules) of Bevy's own evaluation of the clips its mirrored animator plays, at the
    /// Downstream's authority time; `None` while the animation has not arrived (or compares
    /// fewer than the Fox's 21 animated joint members).
    fn max_error(f: &mut Fox) -> Option<f32> {
        let animator = arrived(f)?;
        let now = authority_now(&f.down);
        let clips = f.down.world().resource::<Assets<NoodlesClip>>();
        let joints = joints(&mut f.up);
        let bevy_clips = f.up.world().resource::<Assets<AnimationClip>>();
        // Which Bevy clip each layer plays: the Fox's three clips have different durations.
        let sources: Vec<Handle<AnimationClip>> = animator
            .layers
            .iter()
            .map(|l| {
                let d = clips.get(&l.clip).map(|c| c.duration)?;
                f.clips
                    .iter()
                    .find(|c| {
                        bevy_clips
                            .get(*c)
                            .is_some_and(|b| f64::from(b.duration()) == d)
                    })
                    .cloned()
            })
            .collect::<Option<_>>()?;
        let mut worst = 0.0f32;
        // (joint, property) → contributions of the layers, in order.
        let mut wanted: HashMap<(Entity, usize), Vec<Contribution>> = HashMap::new();
        for (layer, source) in animator.layers.iter().zip(&sources) {
            let clip = bevy_clips.get(source)?;
            let t = clip_time(&layer.layer, now, f64::from(clip.duration()))? as f32;
            for (target, curves) in clip.curves() {
                let Some(e) = joints.get(target) else {
                    continue;
                };
                for (i, curve) in curves.iter().enumerate() {
                    let v = curve.0.sample_clamped(t);
                    let value = if let Some(q) = v.downcast_ref::<Quat>() {
                        Value::Rotation(q.to_array())
                    } else if let Some(x) = v.downcast_ref::<Vec3>() {
                        Value::Float3(x.to_array())
                    } else {
                        continue;
                    };
                    wanted.entry((*e, i)).or_default().push(Contribution {
                        value,
                        weight: layer.layer.weight,
                        additive: false,
                    });
                }
            }
        }
        if wanted.len() < 21 {
            return None;
        }
        for ((e, _), list) in &wanted {
            let m = mirror_of(&f.up, &mut f.down, *e)?;
            let t = *f.down.world().get::<Transform>(m)?;
            match blend(list[0].value, list) {
                Value::Rotation(q) => {
                    let q = Quat::from_array(q);
                    let d = if q.dot(t.rotation) < 0.0 { -q } else { q };
                    worst = worst.max((d - t.rotation).length());
                }
                Value::Float3(v) => {
                    let v = Vec3::from_array(v);
                    // Translation or scale: whichever the value is close to.
                    worst = worst.max(t.translation.distance(v).min(t.scale.distance(v)));
                }
                _ => {}
            }
        }
        Some(worst)
    }

    /// Largest difference between the Downstream's morph weights (on the mirrored meshes) and
    /// Bevy's own evaluation of the morph weight curves of the one clip playing, at the
    /// Downstream's authority time; `None` until it arrived (and some weights were compared).
    fn max_morph_error(f: &mut Fox) -> Option<f32> {
        use bevy::animation::animation_curves::WeightsCurveSample;
        use bevy::mesh::morph::MeshMorphWeights;
        let layer = arrived(f)?.layers.first()?.clone();
        let now = authority_now(&f.down);
        let joints = joints(&mut f.up);
        let source =
            f.up.world()
                .resource::<Assets<AnimationClip>>()
                .get(&f.clips[0])?;
        let t = clip_time(&layer.layer, now, f64::from(source.duration()))? as f32;
        let curves: Vec<(Entity, Vec<f32>)> = source
            .curves()
            .iter()
            .filter_map(|(id, curves)| Some((*joints.get(id)?, curves)))
            .flat_map(|(e, curves)| {
                curves.iter().filter_map(move |c| {
                    let v = c.0.sample_clamped(t);
                    Some((e, v.downcast_ref::<WeightsCurveSample>()?.0.clone()))
                })
            })
            .collect();
        let users: Vec<(Entity, Entity)> =
            f.up.world_mut()
                .query::<(Entity, &MeshMorphWeights)>()
                .iter(f.up.world())
                .filter_map(|(e, w)| match w {
                    MeshMorphWeights::Reference(of) => Some((e, *of)),
                    MeshMorphWeights::Value { .. } => None,
                })
                .collect();
        let mut worst = 0.0f32;
        let mut compared = 0;
        for (node, want) in curves {
            for (mesh, _) in users.iter().filter(|(_, of)| *of == node) {
                let m = mirror_of(&f.up, &mut f.down, *mesh)?;
                let got = &f.down.world().get::<MorphTargetWeights>(m)?.0;
                if got.len() != want.len() {
                    return None;
                }
                for (a, b) in got.iter().zip(&want) {
                    worst = worst.max((a - b).abs());
                    compared += 1;
                }
            }
        }
        (compared > 0).then_some(worst)
    }

    #[test]
    fn morph_stress_test_weights_match_bevys_evaluation() {
        let mut f = hosted("MorphStressTest.gltf", 3);
        // At least one weight moves away from zero over the clip (it animates).
        play(&mut f, [1.0, 0.0, 0.0]);
        let deadline = std::time::Instant::now() + LIMIT;
        let mut last = None;
        while !last.is_some_and(|e: f32| e < 1e-4) {
            pump(&mut [&mut f.up, &mut f.down], 1);
            last = max_morph_error(&mut f).or(last);
            assert!(
                std::time::Instant::now() < deadline,
                "the morph weights never matched (last error {last:?})"
            );
        }
        let mut worst = 0.0f32;
        let mut seen = Vec::new();
        for i in 0..40 {
            advance(&mut f.up, &mut f.down, f64::from(5 + i % 11) / 1000.0);
            worst = worst.max(max_morph_error(&mut f).unwrap_or(f32::INFINITY));
            let w = f
                .down
                .world_mut()
                .query::<&MorphTargetWeights>()
                .iter(f.down.world())
                .next()
                .map(|w| w.0.clone());
            seen.push(w);
        }
        assert!(
            worst < 1e-4,
            "morph weights departed from Bevy's by {worst}"
        );
        seen.dedup();
        assert!(seen.len() > 5, "the weights animate: {seen:?}");
        // Nothing streams: the weights are evaluated downstream.
        let mut sent = 0;
        for _ in 0..30 {
            pump(&mut [&mut f.up, &mut f.down], 1);
            sent += f.up.world().resource::<MirrorStats>().last_delta_bytes;
        }
        assert!(sent < 300, "{sent} bytes in 30 frames of morphing");
        assert!(closed_reasons(&f.down).is_empty());
    }

    /// The Downstream's mirror of the player's animator, once it has layers and every layer's clip
    /// and samplers arrived.
    fn arrived(f: &mut Fox) -> Option<NoodlesAnimator> {
        let p = mirror_of(&f.up, &mut f.down, f.player)?;
        let animator = f.down.world().get::<NoodlesAnimator>(p)?.clone();
        let clips = f.down.world().resource::<Assets<NoodlesClip>>();
        let samplers = f.down.world().resource::<Assets<AnimSampler>>();
        let ready = |l: &bevy_noodles2::animation::AnimatorLayer| {
            clips
                .get(&l.clip)
                .is_some_and(|c| c.channels.iter().all(|ch| samplers.contains(&ch.sampler)))
        };
        (!animator.layers.is_empty() && animator.layers.iter().all(ready)).then_some(animator)
    }

    /// Play `weights` (one per clip, 0 = not playing) on the Upstream's player.
    fn play<const N: usize>(f: &mut Fox, weights: [f32; N]) {
        let nodes = f.nodes.clone();
        let mut player =
            f.up.world_mut()
                .get_mut::<AnimationPlayer>(f.player)
                .unwrap();
        player.stop_all();
        for (node, w) in nodes.iter().zip(weights) {
            if w > 0.0 {
                player.play(*node).repeat().set_weight(w);
            }
        }
    }

    fn wait_for_pose(f: &mut Fox, what: &str) {
        let deadline = std::time::Instant::now() + LIMIT;
        let mut last = None;
        loop {
            f.up.update();
            f.down.update();
            last = max_error(f).or(last);
            if last.is_some_and(|e| e < 1e-4) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the Downstream's pose never matched Bevy's (last error {last:?})"
            );
        }
    }

    /// Over 40 frames at different times (every frame, not just a lucky one), the pose matches.
    fn stays_in_step(f: &mut Fox, what: &str) {
        let mut worst = 0.0f32;
        for i in 0..40 {
            advance(&mut f.up, &mut f.down, f64::from(3 + i % 7) / 1000.0);
            let e = max_error(f).unwrap_or(f32::INFINITY);
            worst = worst.max(e);
        }
        assert!(
            worst < 1e-4,
            "{what}: the pose departed from Bevy's by {worst}"
        );
    }

    #[test]
    fn the_foxs_clips_and_a_cross_fade_match_bevys_evaluation() {
        let mut f = fox();
        for (i, name) in ["Survey", "Walk", "Run"].iter().enumerate() {
            let mut w = [0.0; 3];
            w[i] = 1.0;
            play(&mut f, w);
            wait_for_pose(&mut f, name);
            stays_in_step(&mut f, name);
        }
        // A cross-fade: Walk and Run at once, 0.7 / 0.3.
        play(&mut f, [0.0, 0.7, 0.3]);
        wait_for_pose(&mut f, "Walk/Run cross-fade");
        stays_in_step(&mut f, "Walk/Run cross-fade");
        // The joints' transforms were not streamed: bytes after settling are clock updates only.
        let mut sent = 0;
        for _ in 0..30 {
            pump(&mut [&mut f.up, &mut f.down], 1);
            sent += f.up.world().resource::<MirrorStats>().last_delta_bytes;
        }
        assert!(sent < 300, "{sent} bytes in 30 frames of a playing Fox");
        assert!(closed_reasons(&f.down).is_empty());
    }
}

//! Parameters (spec `core/components/parameter.jaw`): every widget kind mirrored with its
//! entity references, edits proposed by a Downstream and validated by the Upstream (the demo),
//! button presses as RPC calls, and broken trees reported as problems, over loopback websockets.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::{self as wire, Any, EntityID, Wire};
use bevy_noodles2::demo::{DEMO_MAX_SPEED, DemoMover, DemoParams, DemoScenePlugin};
use bevy_noodles2::mirror::MirrorConfig;
use bevy_noodles2::parameters::{
    ButtonKind, ChildListKind, ContainerKind, DateTimeKind, LabelKind, ModeKind, ModeOption,
    ParamEditError, ParamKind, ParamProblem, ParamTree, RangeKind, SelectKind, SelectOption,
    parameter_permissions, press_button, set_param_state,
};
use bevy_noodles2::prelude::*;
use bevy_noodles2::proposals::{codes, send_proposal};
use bevy_noodles2::rpc::DemoEndpointsPlugin;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

fn quiet(name: &str) -> NoodlesPlugin {
    NoodlesPlugin {
        session_name: name.into(),
        mirror: MirrorConfig {
            time_sync_interval: Duration::from_secs(3600),
            ..default()
        },
        ..default()
    }
}

/// A headless Upstream, set up by `setup` before the app is finished.
fn upstream(name: &str, setup: impl FnOnce(&mut App)) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(quiet(name));
    setup(&mut app);
    app.finish();
    app.cleanup();
    app
}

/// What a Downstream heard back.
#[derive(Resource, Default)]
struct Heard {
    proposals: Vec<ProposalReply>,
    calls: Vec<RpcReplyReceived>,
}

fn downstream(name: &str) -> App {
    let mut d = app_with(quiet(name));
    d.init_resource::<Heard>().add_systems(
        Last,
        |mut p: MessageReader<ProposalReply>,
         mut c: MessageReader<RpcReplyReceived>,
         mut heard: ResMut<Heard>| {
            heard.proposals.extend(p.read().cloned());
            heard.calls.extend(c.read().cloned());
        },
    );
    d
}

/// `up` and `down` linked through a listener that grants `permissions`.
fn link(up: &mut App, down: &mut App, permissions: LinkPermissions) -> Entity {
    linked_with(
        up,
        down,
        NoodlesListener::new("ws://127.0.0.1:0").grant(permissions),
    )
}

/// The mirrored parameter labelled `label`.
fn param(down: &mut App, label: &str) -> Option<Entity> {
    let mut q = down
        .world_mut()
        .query_filtered::<(Entity, &Parameter), With<Mirrored>>();
    q.iter(down.world())
        .find(|(_, p)| p.label == label)
        .map(|(e, _)| e)
}

fn state(app: &App, e: Entity) -> Option<ParamState> {
    app.world().get::<ParamState>(e).cloned()
}

fn wait_proposal(up: &mut App, down: &mut App, tid: u32) -> ProposalReply {
    run_until(&mut [up, down], LIMIT, "the proposal's reply", |a| {
        a[1].world()
            .resource::<Heard>()
            .proposals
            .iter()
            .any(|r| r.transaction_id == tid)
    });
    let heard = down.world().resource::<Heard>();
    heard
        .proposals
        .iter()
        .find(|r| r.transaction_id == tid)
        .cloned()
        .expect("a reply")
}

fn wait_call(up: &mut App, down: &mut App, invoke_id: u32) -> RpcReplyKind {
    run_until(&mut [up, down], LIMIT, "the call's reply", |a| {
        a[1].world()
            .resource::<Heard>()
            .calls
            .iter()
            .any(|r| r.invoke_id == invoke_id && r.kind.is_final())
    });
    let heard = down.world().resource::<Heard>();
    heard
        .calls
        .iter()
        .find(|r| r.invoke_id == invoke_id && r.kind.is_final())
        .map(|r| r.kind.clone())
        .expect("a reply")
}

/// `def` with every entity it references mapped by `f`.
fn remap_definition(def: &ParamDefinition, f: &impl Fn(Entity) -> Entity) -> ParamDefinition {
    let list = |l: &[Entity]| l.iter().map(|e| f(*e)).collect::<Vec<_>>();
    match def {
        ParamDefinition::Modes {
            none_allowed,
            options,
            kind,
        } => ParamDefinition::Modes {
            none_allowed: *none_allowed,
            options: options
                .iter()
                .map(|o| ModeOption {
                    children: list(&o.children),
                    ..o.clone()
                })
                .collect(),
            kind: *kind,
        },
        ParamDefinition::Button {
            target,
            payload,
            kind,
        } => ParamDefinition::Button {
            target: f(*target),
            payload: payload.clone(),
            kind: *kind,
        },
        ParamDefinition::Container { kind, children } => ParamDefinition::Container {
            kind: *kind,
            children: list(children),
        },
        d => d.clone(),
    }
}

fn remap_state(s: &ParamState, f: &impl Fn(Entity) -> Entity) -> ParamState {
    match s {
        ParamState::List(items) => ParamState::List(items.iter().map(|e| f(*e)).collect()),
        s => s.clone(),
    }
}

#[test]
fn every_definition_and_state_kind_round_trips_with_references_resolved() {
    let mut up = upstream("params up", |_| {});
    let mut down = downstream("params down");
    let w = up.world_mut();
    let endpoint = w
        .spawn((Name::new("go"), RpcEndpoint::new("go"), Shared))
        .id();
    let unshared = w.spawn(Parameter::new("not shared")).id();
    let mut spawn = |label: &str, d: ParamDefinition, s: ParamState| {
        w.spawn((
            Parameter {
                disabled: label == "progress",
                label: label.into(),
            },
            d,
            s,
            Shared,
        ))
        .id()
    };
    let label = spawn(
        "label",
        ParamDefinition::Label {
            text: "Read me ✓".into(),
            kind: LabelKind::Warning,
        },
        ParamState::Label,
    );
    let toggle = spawn("toggle", ParamDefinition::Toggle, ParamState::Toggle(true));
    let button = spawn(
        "button",
        ParamDefinition::Button {
            target: endpoint,
            payload: vec![Any::I64(7), Any::from("x"), Any::F64(0.5)],
            kind: ButtonKind::Destructive,
        },
        ParamState::Button,
    );
    let range = spawn(
        "range",
        ParamDefinition::Range {
            min: ParamValue::Float(-1.5),
            max: ParamValue::Float(2.5),
            step: Some(ParamValue::Float(0.25)),
            unit: "m/s".into(),
            kind: RangeKind::Step,
        },
        ParamState::Range(ParamValue::Float(0.75)),
    );
    let number = spawn(
        "number",
        ParamDefinition::Number {
            is_int: true,
            min: Some(ParamValue::Int(-3)),
            max: None,
            step: Some(ParamValue::Int(2)),
        },
        ParamState::Number(ParamValue::Int(5)),
    );
    let date = spawn(
        "date",
        ParamDefinition::DateTime {
            kind: DateTimeKind::DateTime,
        },
        ParamState::DateTime("2024-05-06T07:08:09Z".into()),
    );
    let select = spawn(
        "select",
        ParamDefinition::Select {
            none_allowed: true,
            options: vec![SelectOption::new(0, "zero"), SelectOption::new(9, "nine")],
            kind: SelectKind::SegmentedButtons,
        },
        ParamState::Select(-1),
    );
    let progress = spawn(
        "progress",
        ParamDefinition::Progress,
        ParamState::Progress(0.25),
    );
    let list = spawn(
        "list",
        ParamDefinition::List {
            reorderable: true,
            allow_add: false,
            allow_remove: true,
        },
        // The unshared entity has no id on the link: dropped from the list.
        ParamState::List(vec![progress, unshared, date]),
    );
    let modes = spawn(
        "modes",
        ParamDefinition::Modes {
            none_allowed: false,
            options: vec![
                ModeOption {
                    label: "one".into(),
                    id: 0,
                    icon: "media.play".into(),
                    children: vec![toggle, range],
                },
                ModeOption {
                    label: "two".into(),
                    id: 1,
                    icon: String::new(),
                    // `toggle` in a second list: allowed.
                    children: vec![toggle, number, select],
                },
            ],
            kind: ModeKind::Tabs,
        },
        ParamState::Modes(1),
    );
    // A button whose target is not shared cannot be sent.
    let lost_button = spawn(
        "lost button",
        ParamDefinition::Button {
            target: unshared,
            payload: vec![],
            kind: ButtonKind::Normal,
        },
        ParamState::Button,
    );
    let root = spawn(
        "root",
        ParamDefinition::Container {
            kind: ContainerKind::Group,
            children: vec![label, modes, button, list, unshared],
        },
        ParamState::Container,
    );
    w.entity_mut(root).insert((ParameterRoot, Global));
    let local_root = w
        .spawn((ParameterRoot, Parameter::new("local"), Shared))
        .id();
    let all = [
        label, toggle, button, range, number, date, select, progress, list, modes, root,
    ];

    link(&mut up, &mut down, LinkPermissions::default());
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "every parameter mirrored",
        |a| {
            let (up, down) = a.split_at_mut(1);
            all.iter().all(|e| {
                mirror_of(up[0], down[0], *e).is_some_and(|m| {
                    down[0].world().get::<ParamState>(m).is_some()
                        && down[0].world().get::<ParamDefinition>(m).is_some()
                })
            }) && mirror_of(up[0], down[0], local_root)
                .is_some_and(|m| down[0].world().get::<ParameterRoot>(m).is_some())
                && mirror_of(up[0], down[0], lost_button)
                    .is_some_and(|m| down[0].world().get::<Parameter>(m).is_some())
        },
    );

    let ids: Vec<(Entity, Entity)> = [endpoint]
        .iter()
        .chain(&all)
        .map(|e| (*e, mirror_of(&up, &mut down, *e).expect("mirrored")))
        .collect();
    let to_down = |e: Entity| {
        ids.iter()
            .find(|(u, _)| *u == e)
            .map_or(Entity::PLACEHOLDER, |(_, d)| *d)
    };
    for e in all {
        let m = to_down(e);
        let uw = up.world();
        let dw = down.world();
        let mut want = remap_definition(uw.get::<ParamDefinition>(e).unwrap(), &to_down);
        let mut want_state = remap_state(uw.get::<ParamState>(e).unwrap(), &to_down);
        // References without an id on the link were dropped.
        if let ParamDefinition::Container { children, .. } = &mut want {
            children.retain(|c| *c != Entity::PLACEHOLDER);
        }
        if let ParamState::List(items) = &mut want_state {
            items.retain(|c| *c != Entity::PLACEHOLDER);
        }
        assert_eq!(dw.get::<ParamDefinition>(m), Some(&want), "{e}");
        assert_eq!(dw.get::<ParamState>(m), Some(&want_state), "{e}");
        assert_eq!(dw.get::<Parameter>(m), uw.get::<Parameter>(e), "{e}");
    }
    // The references point at the mirrored entities themselves.
    let down_list = to_down(list);
    assert_eq!(
        state(&down, down_list),
        Some(ParamState::List(vec![to_down(progress), to_down(date)]))
    );
    let lost = mirror_of(&up, &mut down, lost_button).unwrap();
    assert!(down.world().get::<ParamDefinition>(lost).is_none());

    // The tree, as a UI sees it.
    let roots = ParamTree::roots(down.world());
    assert_eq!(roots.len(), 2, "{roots:?}");
    assert_eq!(roots[0].entity, to_down(root));
    assert!(roots[0].global && roots[0].label == "root" && roots[0].link.is_some());
    assert!(!roots[1].global && roots[1].label == "local");
    let tree = ParamTree::build(down.world(), to_down(root));
    assert_eq!(tree.problems, vec![], "{:#?}", tree.problems);
    let r = tree.root.as_ref().expect("a root node");
    let top: Vec<Entity> = r
        .children_of(ChildListKind::Container)
        .iter()
        .map(|n| n.entity)
        .collect();
    assert_eq!(
        top,
        [label, modes, button, list].map(to_down),
        "the unshared child was dropped"
    );
    let m = tree.find(to_down(modes)).unwrap();
    assert_eq!(m.children_of(ChildListKind::Mode(1)).len(), 3);
    assert_eq!(
        m.children_of(ChildListKind::Mode(0))[1].entity,
        to_down(range)
    );
    let l = tree.find(down_list).unwrap();
    assert_eq!(l.children_of(ChildListKind::ListItems).len(), 2);
    assert_eq!(tree.nodes().count(), 12);
}

/// The mirrored demo parameter `label`, once it arrived.
fn demo_param(up: &mut App, down: &mut App, label: &str) -> Entity {
    run_until(&mut [up, down], LIMIT, "the demo's parameters", |a| {
        param(a[1], label).is_some_and(|e| a[1].world().get::<ParamState>(e).is_some())
    });
    param(down, label).unwrap()
}

fn movers_hidden(up: &mut App) -> usize {
    let mut q = up.world_mut().query::<(&DemoMover, Option<&Visibility>)>();
    q.iter(up.world())
        .filter(|(_, v)| v.is_some_and(|v| *v == Visibility::Hidden))
        .count()
}

#[test]
fn edits_reach_the_upstream_as_proposals_and_come_back_valid() {
    let mut up = upstream("demo up", |app| {
        app.add_plugins(DemoScenePlugin { entities: 6 });
    });
    let mut down = downstream("demo down");
    // What the in-process demo host grants: parameter states only.
    let link_e = link(&mut up, &mut down, parameter_permissions());
    let speed = demo_param(&mut up, &mut down, "speed");
    let spheres = demo_param(&mut up, &mut down, "spheres");
    let color = demo_param(&mut up, &mut down, "color");
    let motion = demo_param(&mut up, &mut down, "motion");
    let reset = demo_param(&mut up, &mut down, "reset");
    assert_eq!(
        state(&down, speed),
        Some(ParamState::Range(ParamValue::Float(1.0)))
    );
    assert_eq!(
        state(&down, spheres),
        Some(ParamState::Range(ParamValue::Int(6)))
    );

    // A valid edit: accepted, and the Upstream's state (and the scene) follow.
    let tid = set_param_state(
        down.world_mut(),
        speed,
        ParamState::Range(ParamValue::Float(2.5)),
    )
    .unwrap();
    // Nothing changes locally before the Upstream answers.
    assert_eq!(
        state(&down, speed),
        Some(ParamState::Range(ParamValue::Float(1.0)))
    );
    assert!(wait_proposal(&mut up, &mut down, tid).accepted());
    run_until(&mut [&mut up, &mut down], LIMIT, "speed 2.5 back", |a| {
        state(a[1], speed) == Some(ParamState::Range(ParamValue::Float(2.5)))
    });
    assert_eq!(up.world().resource::<DemoParams>().speed, 2.5);

    // Out of range: accepted as a proposal, corrected by the Upstream, and the corrected state
    // is what comes back.
    let tid = set_param_state(
        down.world_mut(),
        speed,
        ParamState::Range(ParamValue::Float(99.0)),
    )
    .unwrap();
    assert!(wait_proposal(&mut up, &mut down, tid).accepted());
    run_until(&mut [&mut up, &mut down], LIMIT, "speed clamped", |a| {
        state(a[1], speed) == Some(ParamState::Range(ParamValue::Float(DEMO_MAX_SPEED)))
    });
    assert_eq!(up.world().resource::<DemoParams>().speed, DEMO_MAX_SPEED);

    // An integer range given a float off the step: rounded; fewer spheres hide movers.
    let tid = set_param_state(
        down.world_mut(),
        spheres,
        ParamState::Range(ParamValue::Float(2.4)),
    )
    .unwrap();
    assert!(wait_proposal(&mut up, &mut down, tid).accepted());
    run_until(&mut [&mut up, &mut down], LIMIT, "2 spheres", |a| {
        state(a[1], spheres) == Some(ParamState::Range(ParamValue::Int(2)))
    });
    assert_eq!(movers_hidden(&mut up), 4);

    // A valid option, then an unknown one: the previous value stays.
    let tid = set_param_state(down.world_mut(), color, ParamState::Select(3)).unwrap();
    assert!(wait_proposal(&mut up, &mut down, tid).accepted());
    run_until(&mut [&mut up, &mut down], LIMIT, "color 3", |a| {
        state(a[1], color) == Some(ParamState::Select(3))
    });
    let tid = set_param_state(down.world_mut(), color, ParamState::Select(42)).unwrap();
    assert!(wait_proposal(&mut up, &mut down, tid).accepted());
    pump(&mut [&mut up, &mut down], 10);
    assert_eq!(state(&down, color), Some(ParamState::Select(3)));
    assert_eq!(up.world().resource::<DemoParams>().color, 3);
    let tid = set_param_state(down.world_mut(), motion, ParamState::Modes(1)).unwrap();
    assert!(wait_proposal(&mut up, &mut down, tid).accepted());
    run_until(&mut [&mut up, &mut down], LIMIT, "paused", |a| {
        a[0].world().resource::<DemoParams>().motion == 1
    });

    // The link may set parameter states, nothing else.
    let mut p = Proposal::new();
    p.insert(speed, Name::new("renamed"));
    let tid = send_proposal(down.world_mut(), link_e, p).unwrap();
    assert_eq!(wait_proposal(&mut up, &mut down, tid).code, codes::DENIED);

    // A state of the wrong kind is refused before anything is sent.
    assert!(matches!(
        set_param_state(down.world_mut(), speed, ParamState::Toggle(true)),
        Err(ParamEditError::KindMismatch {
            definition: ParamKind::Range,
            state: ParamKind::Toggle,
            ..
        })
    ));

    // The reset button calls the demo's endpoint: every value back to its default.
    let invoke_id = press_button(down.world_mut(), reset).unwrap();
    assert_eq!(
        wait_call(&mut up, &mut down, invoke_id),
        RpcReplyKind::Complete(Any::Void)
    );
    run_until(&mut [&mut up, &mut down], LIMIT, "defaults back", |a| {
        state(a[1], speed) == Some(ParamState::Range(ParamValue::Float(1.0)))
            && state(a[1], spheres) == Some(ParamState::Range(ParamValue::Int(6)))
            && state(a[1], color) == Some(ParamState::Select(0))
            && state(a[1], motion) == Some(ParamState::Modes(0))
    });
    assert_eq!(
        *up.world().resource::<DemoParams>(),
        DemoParams::defaults(6)
    );
    assert_eq!(movers_hidden(&mut up), 0);
}

#[test]
fn a_button_press_invokes_its_target_with_its_payload() {
    let mut up = upstream("button up", |app| {
        app.add_plugins(DemoEndpointsPlugin);
    });
    let mut down = downstream("button down");
    up.update();
    let echo = {
        let mut q = up.world_mut().query::<(Entity, &RpcEndpoint)>();
        q.iter(up.world())
            .find(|(_, ep)| ep.name == "echo")
            .map(|(e, _)| e)
            .expect("the echo endpoint")
    };
    let payload = vec![Any::I64(-4), Any::from("pressed"), Any::U8(1)];
    let button = up
        .world_mut()
        .spawn((
            Parameter::new("echo button"),
            ParamDefinition::Button {
                target: echo,
                payload: payload.clone(),
                kind: ButtonKind::Normal,
            },
            ParamState::Button,
            Shared,
        ))
        .id();
    let disabled = up
        .world_mut()
        .spawn((
            Parameter {
                disabled: true,
                label: "disabled".into(),
            },
            ParamDefinition::Button {
                target: echo,
                payload: vec![],
                kind: ButtonKind::Normal,
            },
            Shared,
        ))
        .id();
    let toggle = up
        .world_mut()
        .spawn((
            Parameter::new("toggle"),
            ParamDefinition::Toggle,
            ParamState::Toggle(false),
            Shared,
        ))
        .id();
    link(&mut up, &mut down, LinkPermissions::default());
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the buttons mirrored",
        |a| {
            ["echo button", "disabled", "toggle"].iter().all(|l| {
                param(a[1], l).is_some_and(|e| a[1].world().get::<ParamDefinition>(e).is_some())
            })
        },
    );
    let (b, d, t) = (
        mirror_of(&up, &mut down, button).unwrap(),
        mirror_of(&up, &mut down, disabled).unwrap(),
        mirror_of(&up, &mut down, toggle).unwrap(),
    );
    let invoke_id = press_button(down.world_mut(), b).unwrap();
    assert_eq!(
        wait_call(&mut up, &mut down, invoke_id),
        RpcReplyKind::Complete(Any::from(payload))
    );
    assert_eq!(
        press_button(down.world_mut(), d),
        Err(ParamEditError::Disabled(d))
    );
    assert_eq!(
        press_button(down.world_mut(), t),
        Err(ParamEditError::NotAButton(t))
    );
    // Only mirrored parameters are edited (they belong to an Upstream).
    assert_eq!(
        press_button(up.world_mut(), button),
        Err(ParamEditError::NotMirrored(button))
    );
}

#[test]
fn broken_trees_yield_problems_and_no_panic() {
    let mut up = upstream("broken up", |_| {});
    let mut down = downstream("broken down");
    let w = up.world_mut();
    let container = |children: Vec<Entity>| ParamDefinition::Container {
        kind: ContainerKind::Section,
        children,
    };
    let bare = w.spawn((Parameter::new("bare"), Shared)).id();
    let doomed = w
        .spawn((Parameter::new("doomed"), ParamDefinition::Toggle, Shared))
        .id();
    let inverted = w
        .spawn((
            Parameter::new("inverted"),
            ParamDefinition::Number {
                is_int: false,
                min: Some(ParamValue::Float(3.0)),
                max: Some(ParamValue::Float(-3.0)),
                step: None,
            },
            ParamState::Select(0),
            Shared,
        ))
        .id();
    let a = w.spawn((Parameter::new("a"), Shared)).id();
    let b = w
        .spawn((Parameter::new("b"), container(vec![a]), Shared))
        .id();
    w.entity_mut(a)
        .insert(container(vec![b, inverted, inverted]));
    let root = w
        .spawn((
            Parameter::new("broken"),
            container(vec![bare, doomed, a]),
            ParameterRoot,
            Shared,
        ))
        .id();
    link(&mut up, &mut down, LinkPermissions::default());
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the broken tree mirrored",
        |a| {
            ["broken", "a", "b", "inverted", "doomed"].iter().all(|l| {
                param(a[1], l).is_some_and(|e| a[1].world().get::<ParamDefinition>(e).is_some())
            })
        },
    );
    // The Upstream deletes a listed entity but not the reference to it.
    let doomed_down = mirror_of(&up, &mut down, doomed).unwrap();
    up.world_mut().despawn(doomed);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the deletion mirrored",
        |a| a[1].world().get_entity(doomed_down).is_err(),
    );
    let mut m = |e| mirror_of(&up, &mut down, e).unwrap();
    let (root_d, bare_d, a_d, b_d, inverted_d) = (m(root), m(bare), m(a), m(b), m(inverted));
    let tree = ParamTree::build(down.world(), root_d);
    let p = &tree.problems;
    let want = [
        ParamProblem::NoDefinition {
            entity: bare_d,
            parent: Some(root_d),
        },
        ParamProblem::Missing {
            entity: doomed_down,
            parent: Some(root_d),
        },
        ParamProblem::Cycle {
            entity: a_d,
            parent: b_d,
        },
        ParamProblem::Duplicate {
            parent: a_d,
            child: inverted_d,
        },
        ParamProblem::MinAboveMax {
            entity: inverted_d,
            min: ParamValue::Float(3.0),
            max: ParamValue::Float(-3.0),
        },
        ParamProblem::StateMismatch {
            entity: inverted_d,
            definition: ParamKind::Number,
            state: ParamKind::Select,
        },
    ];
    for x in &want {
        assert!(p.contains(x), "missing {x:?} in {p:#?}");
    }
    assert_eq!(p.len(), want.len(), "{p:#?}");
    // The nodes that could be shown still are.
    let r = tree.root.as_ref().unwrap();
    assert_eq!(r.children_of(ChildListKind::Container).len(), 1);
    assert_eq!(tree.nodes().count(), 4);

    // A hostile Upstream: a definition that lists itself and an id it never created, a button
    // whose target is nobody, a range with NaN bounds. Mirrored without complaint; the tree
    // reports them.
    const X: u64 = 1 << 40;
    let def = |d: wire::ParamDefinitionComponent| d.encode().unwrap();
    let list =
        |ids: &[u64]| wire::ParameterChildList(ids.iter().map(|i| EntityID::new(*i)).collect());
    send_transaction(
        &mut up,
        vec![
            components(
                0,
                28,
                &[
                    (
                        X,
                        def(wire::ParamDefinitionComponent::ContainerDefinition(
                            wire::ContainerDefinition {
                                kind: ContainerKind::Group,
                                list: list(&[X, X + 1, X + 2, X + 3, X + 1]),
                            },
                        )),
                    ),
                    (
                        X + 2,
                        def(wire::ParamDefinitionComponent::ButtonDefinition(
                            wire::ButtonDefinition {
                                target: EntityID::new(X + 9),
                                payload: wire::AnyArray(vec![]),
                                button_kind: ButtonKind::Normal,
                            },
                        )),
                    ),
                    (
                        X + 3,
                        def(wire::ParamDefinitionComponent::RangeDefinition(
                            wire::RangeDefinition {
                                min: wire::ParamValue::F64(f64::NAN),
                                max: wire::ParamValue::F64(f64::NAN),
                                step: wire::MaybeParamValue::F64(-1.0),
                                unit: wire::ParamLabelString(String::new()),
                                kind: RangeKind::Slider,
                            },
                        )),
                    ),
                ],
            ),
            components(
                0,
                29,
                &[(
                    X + 3,
                    wire::ParamStateComponent::RangeState(wire::RangeState {
                        value: wire::ParamValue::F64(f64::INFINITY),
                    })
                    .encode()
                    .unwrap(),
                )],
            ),
            components(0, 26, &[(X, Vec::new())]),
        ],
    );
    run_until(&mut [&mut up, &mut down], LIMIT, "the hostile tree", |a| {
        mirror_of_id(a[1], X + 3).is_some_and(|e| a[1].world().get::<ParamState>(e).is_some())
    });
    let x = mirror_of_id(&mut down, X).unwrap();
    let tree = ParamTree::build(down.world(), x);
    let kinds: Vec<&str> = tree
        .problems
        .iter()
        .map(|p| match p {
            ParamProblem::Cycle { .. } => "cycle",
            ParamProblem::NoDefinition { .. } => "no definition",
            ParamProblem::Duplicate { .. } => "duplicate",
            ParamProblem::ButtonTarget { .. } => "button target",
            ParamProblem::InvalidState { .. } => "invalid state",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "cycle",
            "no definition",
            "button target",
            "invalid state",
            "duplicate"
        ],
        "{:#?}",
        tree.problems
    );
    assert!(
        ParamTree::roots(down.world())
            .iter()
            .any(|r| r.entity == x && !r.global)
    );
}

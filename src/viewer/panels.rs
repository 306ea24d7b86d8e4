//! The viewer's panels (egui through bevy_egui): link status on top, the entity tree and the
//! global parameters on the left, the inspector on the right, the log at the bottom; parameter
//! panels of other entities float next to them. The 3D cameras draw in the space between.
//!
//! The panels read the world and collect what the user asked for as [`PanelAction`]s, applied
//! after drawing: a panel never changes the mirrored world itself (edits go to the Upstream as
//! proposals and calls).

use std::collections::HashMap;

use bevy::camera::Viewport;
use bevy::camera::visibility::RenderLayers;
use bevy::diagnostic::DiagnosticsStore;
use bevy::ecs::message::MessageCursor;
use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::input::EguiWantsInput;
use bevy_egui::{
    EguiContext, EguiGlobalSettings, EguiPlugin, EguiPrimaryContextPass, PrimaryEguiContext, egui,
};

use super::handles::HandleMode;
use super::{ActivationRequest, PointerCapture, Selection, ViewerLog};
use crate::assets::{AssetStats, OobProgress};
use crate::codec::{Any, any_type, any_type_name};
use crate::diagnostics as diag;
use crate::interaction::{
    Activate, AxisLimits, CanRotate, CanScale, CanSelect, CanTranslate, Interactive, IsSelected,
};
use crate::mirror::{Mirrored, RawComponents};
use crate::net::{LinkStatus, NoodlesLink};
use crate::rpc::{RpcClient, RpcEndpoint, RpcReplyKind, RpcReplyReceived};

/// The layer of the panels' own camera: no mesh is drawn or picked through it.
const UI_LAYER: usize = 31;

pub(super) fn build(app: &mut App) {
    app.add_plugins(EguiPlugin::default())
        .insert_resource(EguiGlobalSettings {
            // The panels get a camera of their own, so the 3D cameras can shrink to the space
            // between them.
            auto_create_primary_context: false,
            ..default()
        })
        .init_resource::<PanelState>()
        .add_message::<FrameSelection>()
        .add_systems(Startup, spawn_ui_camera)
        .add_systems(EguiPrimaryContextPass, panels)
        .add_systems(PreUpdate, pointer_over_panels)
        .add_systems(PostUpdate, fit_cameras);
}

/// Asks the app's camera to frame the selected entity (the inspector's "Frame" button, key F).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSelection(pub Entity);

/// What the user asked for in a panel.
#[derive(Debug, Clone)]
pub enum PanelAction {
    /// Select an entity (or clear the selection).
    Select(Option<Entity>),
    /// Activate an entity's target.
    Activate(ActivationRequest),
    /// Call an endpoint with arguments.
    Call {
        /// The link it is mirrored from.
        link: Entity,
        /// The endpoint entity.
        endpoint: Entity,
        /// The arguments.
        args: Vec<Any>,
    },
    /// Switch the handles.
    Mode(HandleMode),
    /// Frame an entity.
    Frame(Entity),
    /// Change a parameter.
    Param(super::params_ui::ParamAction),
}

/// The panels' own state: argument fields, call results, the space they leave free.
#[derive(Resource, Default)]
pub struct PanelState {
    /// Text typed into each endpoint's argument fields.
    args: HashMap<Entity, Vec<String>>,
    /// Per endpoint: the last call's id and what came back.
    calls: HashMap<Entity, (u32, Vec<String>)>,
    cursor: MessageCursor<RpcReplyReceived>,
    /// The region left for the 3D view, in logical pixels (left, top, right, bottom insets).
    pub insets: [f32; 4],
}

fn spawn_ui_camera(mut commands: Commands) {
    commands.spawn((
        Camera2d,
        Camera {
            order: 1000,
            clear_color: ClearColorConfig::None,
            ..default()
        },
        RenderLayers::layer(UI_LAYER),
        PrimaryEguiContext,
        Name::new("panels camera"),
    ));
}

fn pointer_over_panels(wants: Option<Res<EguiWantsInput>>, mut capture: ResMut<PointerCapture>) {
    let over = wants.is_some_and(|w| w.is_pointer_over_area() || w.wants_pointer_input());
    if capture.over_panel != over {
        capture.over_panel = over;
    }
}

/// The 3D cameras draw between the panels.
fn fit_cameras(
    state: Res<PanelState>,
    window: Query<&Window, With<PrimaryWindow>>,
    mut cameras: Query<&mut Camera, (With<Camera3d>, Without<PrimaryEguiContext>)>,
) {
    let Ok(window) = window.single() else { return };
    let scale = window.scale_factor();
    let [l, t, r, b] = state.insets.map(|v| (v * scale).max(0.0) as u32);
    let (w, h) = (window.physical_width(), window.physical_height());
    // A minimized window has no pixels: keep the viewports until it comes back.
    if w == 0 || h == 0 {
        return;
    }
    let size = UVec2::new(
        w.saturating_sub(l + r).max(1),
        h.saturating_sub(t + b).max(1),
    );
    let viewport = Viewport {
        physical_position: UVec2::new(l.min(w - 1), t.min(h - 1)),
        physical_size: size,
        ..default()
    };
    for mut c in &mut cameras {
        let same = c.viewport.as_ref().is_some_and(|v| {
            v.physical_position == viewport.physical_position
                && v.physical_size == viewport.physical_size
        });
        if !same {
            c.viewport = Some(viewport.clone());
        }
    }
}

fn panels(world: &mut World) {
    let ctx = {
        let mut q = world.query_filtered::<&mut EguiContext, With<PrimaryEguiContext>>();
        let Ok(mut c) = q.single_mut(world) else {
            return;
        };
        c.get_mut().clone()
    };
    collect_call_results(world);
    let mut actions = Vec::new();
    let root_rect = ctx.viewport_rect();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "viewer panels".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(root_rect),
    );
    let top = egui::Panel::top("status")
        .show(&mut root, |ui| status(world, ui))
        .response
        .rect
        .height();
    let bottom = egui::Panel::bottom("log")
        .resizable(true)
        .default_size(90.0)
        .show(&mut root, |ui| log(world, ui))
        .response
        .rect
        .height();
    let left = egui::Panel::left("scene")
        .resizable(true)
        .default_size(200.0)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.heading("Entities");
                tree(world, ui, &mut actions);
                super::params_ui::global_roots(world, ui, &mut actions);
            });
        })
        .response
        .rect
        .width();
    let right = egui::Panel::right("inspector")
        .resizable(true)
        .default_size(260.0)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| inspector(world, ui, &mut actions));
        })
        .response
        .rect
        .width();
    super::params_ui::local_roots(world, &ctx, &mut actions);
    world.resource_mut::<PanelState>().insets = [left, top, right, bottom];
    apply(world, actions);
}

fn apply(world: &mut World, actions: Vec<PanelAction>) {
    for a in actions {
        match a {
            PanelAction::Select(e) => world.resource_mut::<Selection>().0 = e,
            PanelAction::Activate(r) => {
                world.write_message(r);
            }
            PanelAction::Mode(m) => *world.resource_mut::<HandleMode>() = m,
            PanelAction::Frame(e) => {
                world.write_message(FrameSelection(e));
            }
            PanelAction::Call {
                link,
                endpoint,
                args,
            } => {
                let mut state: bevy::ecs::system::SystemState<RpcClient> =
                    bevy::ecs::system::SystemState::new(world);
                let result = match state.get_mut(world) {
                    Ok(mut rpc) => rpc.invoke(link, endpoint, args).map_err(|e| e.to_string()),
                    Err(e) => Err(format!("RPC is unavailable: {e}")),
                };
                state.apply(world);
                let now = world.resource::<Time>().elapsed_secs_f64();
                match result {
                    Ok(id) => {
                        world
                            .resource_mut::<PanelState>()
                            .calls
                            .insert(endpoint, (id, vec!["waiting…".into()]));
                    }
                    Err(e) => world.resource_mut::<ViewerLog>().push(
                        now,
                        true,
                        format!("calling {endpoint}: {e}"),
                    ),
                }
            }
            PanelAction::Param(edit) => super::params_ui::apply(world, edit),
        }
    }
}

fn collect_call_results(world: &mut World) {
    let mut cursor = std::mem::take(&mut world.resource_mut::<PanelState>().cursor);
    let replies: Vec<RpcReplyReceived> = match world.get_resource::<Messages<RpcReplyReceived>>() {
        Some(messages) => cursor.read(messages).cloned().collect(),
        None => Vec::new(),
    };
    let mut state = world.resource_mut::<PanelState>();
    state.cursor = cursor;
    for r in replies {
        for (_, (id, lines)) in state.calls.iter_mut() {
            if *id != r.invoke_id {
                continue;
            }
            if lines.first().is_some_and(|l| l == "waiting…") {
                lines.clear();
            }
            lines.push(match &r.kind {
                RpcReplyKind::Complete(v) => format!("result: {v}"),
                RpcReplyKind::Stream(v) => format!("streamed: {v}"),
                RpcReplyKind::Error(code, m) => format!("error {code}: {m}"),
            });
            // Keep the last few lines of a long stream.
            if lines.len() > 20 {
                lines.remove(0);
            }
        }
    }
}

fn status(world: &World, ui: &mut egui::Ui) {
    let diagnostics = world.get_resource::<DiagnosticsStore>();
    let rate = |path: bevy::diagnostic::DiagnosticPath| {
        diagnostics
            .and_then(|d| d.get(&path))
            .and_then(|d| d.average())
    };
    let mut lines = Vec::new();
    let links: Vec<&NoodlesLink> = world
        .try_query::<&NoodlesLink>()
        .map(|mut q| q.iter(world).collect())
        .unwrap_or_default();
    for l in links {
        let state = match &l.status {
            LinkStatus::Connecting => "connecting".to_string(),
            LinkStatus::Preamble => "handshake".to_string(),
            LinkStatus::MainSequence => "connected".to_string(),
            LinkStatus::Closed(r) => format!("closed: {r}"),
        };
        let role = l.role.map_or("?".to_string(), |r| format!("{r:?}"));
        let addr = l.peer_addr.map_or(String::new(), |a| format!(" ({a})"));
        let mut s = format!(
            "{state}: {}{addr}, we are {role}",
            if l.peer_name.is_empty() {
                "peer"
            } else {
                &l.peer_name
            }
        );
        if let Some(rtt) = l.stats.rtt {
            s.push_str(&format!(" · rtt {:.1} ms", rtt.as_secs_f64() * 1e3));
        }
        if let (Some(i), Some(o)) = (
            rate(diag::link_path(l.id, "bytes_in")),
            rate(diag::link_path(l.id, "bytes_out")),
        ) {
            s.push_str(&format!(
                " · in {:.1} kB/s · out {:.1} kB/s",
                i / 1e3,
                o / 1e3
            ));
        }
        lines.push(s);
    }
    if lines.is_empty() {
        lines.push("no link".into());
    }
    let mirrored = world
        .try_query_filtered::<(), With<Mirrored>>()
        .map_or(0, |mut q| q.iter(world).count());
    let mut counts = format!("{mirrored} entities");
    if let Some(a) = world.get_resource::<AssetStats>() {
        counts.push_str(&format!(
            " · assets {} imported, {} waiting, {} refused, {} ignored",
            a.imported, a.pending, a.refused, a.ignored
        ));
    }
    if let Some(o) = world.get_resource::<OobProgress>()
        && o.assets_pending + o.assets_done + o.failed > 0
    {
        counts.push_str(&format!(
            " · large buffers {} fetching ({:.1} MB), {} done ({:.1} MB), {} failed",
            o.assets_pending,
            o.bytes_pending as f64 / 1e6,
            o.assets_done,
            o.bytes_done as f64 / 1e6,
            o.failed
        ));
    }
    for (what, path) in [
        ("proposals", diag::PROPOSAL_LATENCY),
        ("calls", diag::RPC_LATENCY),
    ] {
        if let Some(ms) = diagnostics
            .and_then(|d| d.get(&path))
            .and_then(|d| d.value())
        {
            counts.push_str(&format!(" · {what} answered in {ms:.1} ms"));
        }
    }
    for l in lines {
        ui.label(l);
    }
    ui.label(counts);
}

fn log(world: &mut World, ui: &mut egui::Ui) {
    let log = world.resource::<ViewerLog>();
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for e in log.entries() {
                let text = format!("{:7.1}s  {}", e.at, e.text);
                if e.failure {
                    ui.colored_label(egui::Color32::from_rgb(240, 120, 100), text);
                } else {
                    ui.label(text);
                }
            }
        });
}

/// A short label for an entity: its name, or its id.
pub(crate) fn label_of(world: &World, e: Entity) -> String {
    match (world.get::<Name>(e), world.get::<Mirrored>(e)) {
        (Some(n), _) if !n.as_str().is_empty() => n.to_string(),
        (_, Some(m)) => format!("#{}", m.id),
        _ => e.to_string(),
    }
}

/// Most entities a tree level lists (the rest are counted).
const TREE_LIMIT: usize = 300;

fn tree(world: &mut World, ui: &mut egui::Ui, actions: &mut Vec<PanelAction>) {
    let mut q = world.query_filtered::<(Entity, &Mirrored, Option<&ChildOf>), With<Mirrored>>();
    let mut roots: Vec<(u64, Entity)> = q
        .iter(world)
        .filter(|(_, _, p)| p.is_none_or(|p| world.get::<Mirrored>(p.parent()).is_none()))
        .map(|(e, m, _)| (m.id, e))
        .collect();
    roots.sort_unstable();
    let selected = world.resource::<Selection>().0;
    level(world, ui, &roots, selected, actions, 0);
}

fn level(
    world: &World,
    ui: &mut egui::Ui,
    entities: &[(u64, Entity)],
    selected: Option<Entity>,
    actions: &mut Vec<PanelAction>,
    depth: usize,
) {
    for &(_, e) in entities.iter().take(TREE_LIMIT) {
        let label = label_of(world, e);
        let mut children: Vec<(u64, Entity)> = world
            .get::<Children>(e)
            .map(|c| {
                c.iter()
                    .filter_map(|c| world.get::<Mirrored>(c).map(|m| (m.id, c)))
                    .collect()
            })
            .unwrap_or_default();
        children.sort_unstable();
        let is_selected = selected == Some(e);
        if children.is_empty() || depth > 32 {
            if ui.selectable_label(is_selected, &label).clicked() {
                actions.push(PanelAction::Select(Some(e)));
            }
            continue;
        }
        let id = ui.make_persistent_id(e);
        egui::collapsing_header::CollapsingState::load_with_default_open(ui.ctx(), id, false)
            .show_header(ui, |ui| {
                if ui.selectable_label(is_selected, &label).clicked() {
                    actions.push(PanelAction::Select(Some(e)));
                }
            })
            .body(|ui| level(world, ui, &children, selected, actions, depth + 1));
    }
    if entities.len() > TREE_LIMIT {
        ui.weak(format!("… and {} more", entities.len() - TREE_LIMIT));
    }
}

fn limits_text(l: &AxisLimits) -> String {
    let one = |l: crate::interaction::AxisLimit| match (l.min, l.max) {
        (None, None) => "free".to_string(),
        (Some(a), Some(b)) if a == b => format!("locked at {a}"),
        (a, b) => format!(
            "{} … {}",
            a.map_or("-∞".into(), |v| format!("{v}")),
            b.map_or("∞".into(), |v| format!("{v}"))
        ),
    };
    format!("x {}, y {}, z {}", one(l.x), one(l.y), one(l.z))
}

fn inspector(world: &mut World, ui: &mut egui::Ui, actions: &mut Vec<PanelAction>) {
    ui.heading("Inspector");
    let selected = world.resource::<Selection>().0;
    let Some(e) = selected.filter(|e| world.get_entity(*e).is_ok()) else {
        ui.weak("Click an object, or an entity in the tree.");
        ui.separator();
        endpoints(world, ui, actions);
        return;
    };
    ui.horizontal(|ui| {
        ui.strong(label_of(world, e));
        if ui.small_button("Frame (F)").clicked() {
            actions.push(PanelAction::Frame(e));
        }
        if ui.small_button("Deselect").clicked() {
            actions.push(PanelAction::Select(None));
        }
    });
    if let Some(m) = world.get::<Mirrored>(e) {
        ui.weak(format!("EntityID {} on link {}", m.id, m.link));
    }
    // What a user may do with it.
    let affordances = [
        (
            HandleMode::Translate,
            "Move (W)",
            world.get::<CanTranslate>(e).map(|c| c.0),
        ),
        (
            HandleMode::Rotate,
            "Rotate (E)",
            world.get::<CanRotate>(e).map(|c| c.0),
        ),
        (
            HandleMode::Scale,
            "Scale (R)",
            world.get::<CanScale>(e).map(|c| c.0),
        ),
    ];
    if affordances.iter().any(|(_, _, l)| l.is_some()) {
        let mode = *world.resource::<HandleMode>();
        ui.horizontal(|ui| {
            for (m, text, limits) in &affordances {
                if limits.is_some() && ui.selectable_label(mode == *m, *text).clicked() {
                    actions.push(PanelAction::Mode(*m));
                }
            }
        });
        for (_, text, limits) in &affordances {
            let Some(l) = limits else { continue };
            ui.label(format!("{text}: {}", limits_text(l)));
            for p in l.problems() {
                ui.colored_label(egui::Color32::from_rgb(240, 180, 80), p.to_string());
            }
        }
    }
    if let Some(a) = world.get::<Activate>(e) {
        ui.separator();
        ui.strong("Activate");
        for (i, t) in a.0.iter().enumerate() {
            let name = world.get::<RpcEndpoint>(*t).map_or_else(
                || format!("{} (no endpoint)", label_of(world, *t)),
                |ep| ep.name.clone(),
            );
            let text = if i == 0 {
                format!("▶ {name} (double click)")
            } else {
                format!("▶ {name}")
            };
            if ui.button(text).clicked() {
                actions.push(PanelAction::Activate(ActivationRequest {
                    entity: e,
                    index: i,
                }));
            }
        }
    }
    ui.separator();
    ui.strong("Components");
    components(world, ui, e);
    ui.separator();
    endpoints(world, ui, actions);
}

/// Every component of `e`: known ones with their values, the rest by type; raw ones (types of
/// other extensions, kept as bytes) by type id and size.
fn components(world: &World, ui: &mut egui::Ui, e: Entity) {
    let Ok(entity) = world.get_entity(e) else {
        return;
    };
    let registry = world.resource::<AppTypeRegistry>().read();
    let mut known = known_value(world, e);
    let mut shown = Vec::new();
    for info in world.inspect_entity(e).into_iter().flatten() {
        let name = info.name().shortname().to_string();
        if matches!(
            name.as_str(),
            "Mirrored" | "RawComponents" | "SelectionOutline"
        ) || name.starts_with("Computed")
            || name.starts_with("Inherited")
            || name.starts_with("ViewVisibility")
            || name.starts_with("GlobalTransform")
            || name.starts_with("TransformTreeChanged")
        {
            continue;
        }
        let value = known.remove(name.as_str()).or_else(|| {
            let reflect = info
                .type_id()
                .and_then(|t| registry.get(t))
                .and_then(|r| r.data::<ReflectComponent>())?;
            reflect.reflect(entity).map(|r| format!("{r:?}"))
        });
        shown.push((name, value));
    }
    shown.sort();
    for (name, value) in shown {
        match value {
            Some(v) => {
                egui::CollapsingHeader::new(&name)
                    .id_salt((e, &name))
                    .show(ui, |ui| {
                        let mut v = v;
                        if v.len() > 2000 {
                            v.truncate(v.floor_char_boundary(2000));
                            v.push('…');
                        }
                        ui.monospace(v);
                    });
            }
            None => {
                ui.label(&name);
            }
        }
    }
    if let Some(raw) = world.get::<RawComponents>(e) {
        for r in raw.iter() {
            ui.label(format!(
                "{} ({}, {}): {} bytes",
                r.name,
                r.component.0,
                r.component.1,
                r.bytes.len()
            ));
        }
    }
}

/// Values of this crate's components that are not reflected.
fn known_value(world: &World, e: Entity) -> HashMap<&'static str, String> {
    let mut out = HashMap::new();
    macro_rules! show {
        ($($t:ty => $n:literal),* $(,)?) => {$(
            if let Some(v) = world.get::<$t>(e) {
                out.insert($n, format!("{v:?}"));
            }
        )*};
    }
    show!(
        CanTranslate => "CanTranslate",
        CanRotate => "CanRotate",
        CanScale => "CanScale",
        Activate => "Activate",
        IsSelected => "IsSelected",
        CanSelect => "CanSelect",
        Interactive => "Interactive",
        RpcEndpoint => "RpcEndpoint",
        crate::billboard::Billboard => "Billboard",
        crate::text::Text3d => "Text3d",
    );
    out
}

/// Every mirrored endpoint, with a form built from its argument hints.
fn endpoints(world: &mut World, ui: &mut egui::Ui, actions: &mut Vec<PanelAction>) {
    let mut q = world.query::<(Entity, &RpcEndpoint, &Mirrored)>();
    let mut list: Vec<(Entity, RpcEndpoint, Entity)> = q
        .iter(world)
        .map(|(e, ep, m)| (e, ep.clone(), m.link))
        .collect();
    if list.is_empty() {
        return;
    }
    list.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    ui.strong("Endpoints");
    let mut state = world.resource_mut::<PanelState>();
    for (e, ep, link) in list {
        egui::CollapsingHeader::new(&ep.name)
            .id_salt(("endpoint", e))
            .show(ui, |ui| {
                let fields = state.args.entry(e).or_default();
                let variadic = ep.is_variadic();
                let fixed: Vec<&(String, u8)> = ep
                    .arguments
                    .iter()
                    .filter(|(n, _)| n != crate::rpc::VARIADIC)
                    .collect();
                if fields.len() < fixed.len() {
                    fields.resize(fixed.len(), String::new());
                }
                for (i, (name, t)) in fixed.iter().enumerate() {
                    ui.horizontal(|ui| {
                        ui.label(format!("{name} ({})", any_type_name(*t)));
                        ui.text_edit_singleline(&mut fields[i]);
                    });
                }
                if variadic {
                    ui.horizontal(|ui| {
                        ui.label("more (comma separated)");
                        if fields.len() == fixed.len() {
                            fields.push(String::new());
                        }
                        let last = fields.len() - 1;
                        ui.text_edit_singleline(&mut fields[last]);
                    });
                }
                let parsed: Result<Vec<Any>, String> = {
                    let mut args = Vec::new();
                    let mut err = None;
                    for (i, (name, t)) in fixed.iter().enumerate() {
                        match parse_arg(&fields[i], *t) {
                            Ok(v) => args.push(v),
                            Err(m) => {
                                err = Some(format!("{name}: {m}"));
                                break;
                            }
                        }
                    }
                    if variadic && err.is_none() {
                        for part in fields[fields.len() - 1]
                            .split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                        {
                            match parse_arg(part, any_type::VOID) {
                                Ok(v) => args.push(v),
                                Err(m) => err = Some(m),
                            }
                        }
                    }
                    err.map_or(Ok(args), Err)
                };
                ui.horizontal(|ui| {
                    let ok = parsed.is_ok();
                    if ui.add_enabled(ok, egui::Button::new("Call")).clicked()
                        && let Ok(args) = parsed.clone()
                    {
                        actions.push(PanelAction::Call {
                            link,
                            endpoint: e,
                            args,
                        });
                    }
                    if let Err(m) = &parsed {
                        ui.colored_label(egui::Color32::from_rgb(240, 180, 80), m);
                    }
                });
                if let Some((id, lines)) = state.calls.get(&e) {
                    ui.weak(format!("call {id}:"));
                    for l in lines {
                        ui.monospace(l);
                    }
                }
            });
    }
}

/// An argument typed into a form, by its hint (`VOID`: a number, `true`/`false`, or text).
pub fn parse_arg(text: &str, type_id: u8) -> Result<Any, String> {
    let t = text.trim();
    match type_id {
        any_type::I64 => t
            .parse::<i64>()
            .map(Any::I64)
            .map_err(|_| format!("`{t}` is not an integer")),
        any_type::F64 => t
            .parse::<f64>()
            .map(Any::F64)
            .map_err(|_| format!("`{t}` is not a number")),
        any_type::U8 => match t {
            "true" => Ok(Any::from(true)),
            "false" => Ok(Any::from(false)),
            _ => t
                .parse::<u8>()
                .map(Any::U8)
                .map_err(|_| format!("`{t}` is not 0-255, true or false")),
        },
        any_type::STRING => Ok(Any::from(text)),
        any_type::VOID => Ok(if let Ok(i) = t.parse::<i64>() {
            Any::I64(i)
        } else if let Ok(f) = t.parse::<f64>() {
            Any::F64(f)
        } else if t == "true" || t == "false" {
            Any::from(t == "true")
        } else {
            Any::from(text)
        }),
        other => Err(format!(
            "{} arguments cannot be typed here",
            any_type_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_parsed_by_their_hint() {
        assert_eq!(parse_arg(" 42 ", any_type::I64), Ok(Any::I64(42)));
        assert!(parse_arg("4.2", any_type::I64).is_err());
        assert_eq!(parse_arg("4.5", any_type::F64), Ok(Any::F64(4.5)));
        assert_eq!(parse_arg("hi", any_type::STRING), Ok(Any::from("hi")));
        assert_eq!(parse_arg("7", any_type::VOID), Ok(Any::I64(7)));
        assert_eq!(parse_arg("x", any_type::VOID), Ok(Any::from("x")));
        assert!(parse_arg("", any_type::VEC3).is_err());
    }
}

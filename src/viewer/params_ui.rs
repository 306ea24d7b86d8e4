//! The parameter panels: every [`ParameterRoot`](crate::parameters::ParameterRoot) drawn as
//! egui widgets from its [`ParamTree`] (Global roots in the left panel, the others in a window
//! next to their entity). Edits go to the Upstream as the spec says clients write them: a state
//! change is a proposal, a button press a call ([`set_param_state`], [`press_button`]); what is
//! shown is always the mirrored state, so an edit the Upstream corrects shows corrected.

use bevy::prelude::*;
use bevy_egui::egui;

use super::ViewerLog;
use super::panels::{PanelAction, label_of};
use crate::parameters::{
    ButtonKind, ChildListKind, ContainerKind, LabelKind, ModeKind, ParamDefinition, ParamNode,
    ParamState, ParamTree, ParamValue, SelectKind, press_button, set_param_state,
};

/// A parameter edit asked for in a panel.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamAction {
    /// Propose a new state for a parameter.
    Set(Entity, ParamState),
    /// Press a button.
    Press(Entity),
}

const WARN: egui::Color32 = egui::Color32::from_rgb(240, 180, 80);

/// The Global roots, in the left panel.
pub(super) fn global_roots(world: &mut World, ui: &mut egui::Ui, actions: &mut Vec<PanelAction>) {
    for r in ParamTree::roots(world).into_iter().filter(|r| r.global) {
        ui.separator();
        ui.heading(if r.label.is_empty() {
            "Parameters".to_string()
        } else {
            r.label.clone()
        });
        draw_tree(world, ui, r.entity, actions);
    }
}

/// The other roots, each in a window next to its entity.
pub(super) fn local_roots(world: &mut World, ctx: &egui::Context, actions: &mut Vec<PanelAction>) {
    let roots: Vec<_> = ParamTree::roots(world)
        .into_iter()
        .filter(|r| !r.global)
        .collect();
    if roots.is_empty() {
        return;
    }
    let insets = world.resource::<super::panels::PanelState>().insets;
    let mut cameras = world.query_filtered::<(&Camera, &GlobalTransform), With<Camera3d>>();
    let camera = cameras
        .iter(world)
        .filter(|(c, _)| c.is_active)
        .max_by_key(|(c, _)| c.order)
        .map(|(c, t)| (c.clone(), *t));
    for r in roots {
        let at = world
            .get::<GlobalTransform>(r.entity)
            .map(|t| t.translation());
        let pos = match (&camera, at) {
            (Some((c, t)), Some(at)) => c
                .world_to_viewport(t, at)
                .ok()
                .map(|p| egui::pos2(p.x + insets[0] + 24.0, p.y + insets[1] - 24.0)),
            _ => None,
        };
        let title = if r.label.is_empty() {
            format!("Parameters of {}", label_of(world, r.entity))
        } else {
            r.label.clone()
        };
        let mut window = egui::Window::new(title)
            .id(egui::Id::new(("parameters", r.entity)))
            .resizable(false)
            .collapsible(true);
        if let Some(p) = pos {
            window = window.current_pos(p);
        }
        window.show(ctx, |ui| draw_tree(world, ui, r.entity, actions));
    }
}

fn draw_tree(world: &World, ui: &mut egui::Ui, root: Entity, actions: &mut Vec<PanelAction>) {
    let tree = ParamTree::build(world, root);
    if let Some(n) = &tree.root {
        node(ui, n, actions);
    }
    // Say what could not be shown.
    for p in &tree.problems {
        ui.colored_label(WARN, format!("⚠ {p}"));
    }
}

fn set(actions: &mut Vec<PanelAction>, e: Entity, s: ParamState) {
    actions.push(PanelAction::Param(ParamAction::Set(e, s)));
}

fn children(ui: &mut egui::Ui, nodes: &[ParamNode], actions: &mut Vec<PanelAction>) {
    for n in nodes {
        node(ui, n, actions);
    }
}

fn node(ui: &mut egui::Ui, n: &ParamNode, actions: &mut Vec<PanelAction>) {
    let e = n.entity;
    let label = n.parameter.label.clone();
    let state = n.shown_state();
    ui.add_enabled_ui(!n.parameter.disabled, |ui| match &n.definition {
        ParamDefinition::Label { text, kind } => {
            let text = if text.is_empty() { &label } else { text };
            match kind {
                LabelKind::Title => {
                    ui.heading(text);
                }
                LabelKind::Subtitle => {
                    ui.strong(text);
                }
                LabelKind::Help => {
                    ui.weak(text);
                }
                LabelKind::Warning => {
                    ui.colored_label(WARN, text);
                }
            }
        }
        ParamDefinition::Toggle => {
            let mut on = matches!(state, ParamState::Toggle(true));
            if ui.checkbox(&mut on, &label).changed() {
                set(actions, e, ParamState::Toggle(on));
            }
        }
        ParamDefinition::Button { kind, .. } => {
            let text = egui::RichText::new(if label.is_empty() { "Run" } else { &label });
            let text = match kind {
                ButtonKind::Destructive => text.color(egui::Color32::from_rgb(240, 100, 90)),
                ButtonKind::Normal => text,
            };
            if ui.button(text).clicked() {
                actions.push(PanelAction::Param(ParamAction::Press(e)));
            }
        }
        ParamDefinition::Range {
            min,
            max,
            step,
            unit,
            ..
        } => {
            let current = state.value().unwrap_or(*min);
            let id = ui.make_persistent_id(("range", e));
            // While the slider is held, its value lives in egui's memory; the proposal goes
            // when it is let go.
            let mut v: f64 = ui.data_mut(|d| d.get_temp(id)).unwrap_or(current.as_f64());
            let (lo, hi) = (min.as_f64(), max.as_f64());
            let mut slider = egui::Slider::new(&mut v, lo.min(hi)..=hi.max(lo)).text(&label);
            if !unit.is_empty() {
                slider = slider.suffix(format!(" {unit}"));
            }
            if current.is_int() {
                slider = slider.integer();
            }
            if let Some(s) = step {
                slider = slider.step_by(s.as_f64());
            }
            let r = ui.add(slider);
            if r.dragged() {
                ui.data_mut(|d| d.insert_temp(id, v));
            } else {
                ui.data_mut(|d| d.remove::<f64>(id));
                if r.changed() || r.drag_stopped() {
                    let value = if current.is_int() {
                        ParamValue::Int(v.round() as i64)
                    } else {
                        ParamValue::Float(v)
                    };
                    if value != current {
                        set(actions, e, ParamState::Range(value));
                    }
                }
            }
        }
        ParamDefinition::Number {
            is_int, min, max, ..
        } => {
            let current = state.value().unwrap_or(if *is_int {
                ParamValue::Int(0)
            } else {
                ParamValue::Float(0.0)
            });
            let mut v = current.as_f64();
            ui.horizontal(|ui| {
                ui.label(&label);
                let mut dv = egui::DragValue::new(&mut v);
                if let (Some(a), Some(b)) = (min, max) {
                    let (a, b) = (a.as_f64(), b.as_f64());
                    dv = dv.range(a.min(b)..=b.max(a));
                }
                if *is_int {
                    dv = dv.speed(1.0).fixed_decimals(0);
                }
                let r = ui.add(dv);
                if (r.drag_stopped() || (r.changed() && !r.dragged())) && v != current.as_f64() {
                    let value = if *is_int {
                        ParamValue::Int(v.round() as i64)
                    } else {
                        ParamValue::Float(v)
                    };
                    set(actions, e, ParamState::Number(value));
                }
            });
        }
        ParamDefinition::DateTime { kind } => {
            let current = match &state {
                ParamState::DateTime(s) => s.clone(),
                _ => String::new(),
            };
            let id = ui.make_persistent_id(("datetime", e));
            let mut text: String = ui.data_mut(|d| d.get_temp(id)).unwrap_or(current.clone());
            ui.horizontal(|ui| {
                ui.label(format!("{label} ({kind:?}, UTC)"));
                let r = ui.text_edit_singleline(&mut text);
                if r.has_focus() {
                    ui.data_mut(|d| d.insert_temp(id, text.clone()));
                } else {
                    ui.data_mut(|d| d.remove::<String>(id));
                }
                if r.lost_focus() && text != current {
                    set(actions, e, ParamState::DateTime(text.clone()));
                }
            });
        }
        ParamDefinition::Select {
            none_allowed,
            options,
            kind,
        } => {
            let active = match state {
                ParamState::Select(id) => id,
                _ => -1,
            };
            let name_of = |id: i32| {
                options
                    .iter()
                    .find(|o| o.id == id)
                    .map_or("(none)".to_string(), |o| o.label.clone())
            };
            let mut choices: Vec<(i32, String)> =
                options.iter().map(|o| (o.id, o.label.clone())).collect();
            if *none_allowed {
                choices.insert(0, (-1, "(none)".into()));
            }
            let mut chosen = None;
            match kind {
                SelectKind::Dropdown => {
                    egui::ComboBox::from_label(&label)
                        .selected_text(name_of(active))
                        .show_ui(ui, |ui| {
                            for (id, text) in &choices {
                                if ui.selectable_label(*id == active, text).clicked() {
                                    chosen = Some(*id);
                                }
                            }
                        });
                }
                SelectKind::LargeMenu | SelectKind::SegmentedButtons => {
                    ui.label(&label);
                    let mut row = |ui: &mut egui::Ui| {
                        for (id, text) in &choices {
                            if ui.selectable_label(*id == active, text).clicked() {
                                chosen = Some(*id);
                            }
                        }
                    };
                    if *kind == SelectKind::SegmentedButtons {
                        ui.horizontal_wrapped(row);
                    } else {
                        row(ui);
                    }
                }
            }
            if let Some(id) = chosen.filter(|id| *id != active) {
                set(actions, e, ParamState::Select(id));
            }
        }
        ParamDefinition::Modes {
            none_allowed,
            options,
            kind,
        } => {
            let active = match state {
                ParamState::Modes(id) => id,
                _ => -1,
            };
            if !label.is_empty() {
                ui.label(&label);
            }
            let mut chosen = None;
            let mut row = |ui: &mut egui::Ui| {
                if *none_allowed && ui.selectable_label(active == -1, "(none)").clicked() {
                    chosen = Some(-1);
                }
                for o in options {
                    let text = if o.icon.is_empty() {
                        o.label.clone()
                    } else {
                        format!("{} [{}]", o.label, o.icon)
                    };
                    if ui.selectable_label(o.id == active, text).clicked() {
                        chosen = Some(o.id);
                    }
                }
            };
            match kind {
                ModeKind::Tabs => {
                    ui.horizontal_wrapped(row);
                }
                ModeKind::Exclusive => row(ui),
            }
            if let Some(id) = chosen.filter(|id| *id != active) {
                set(actions, e, ParamState::Modes(id));
            }
            ui.indent(("mode", e), |ui| {
                children(ui, n.children_of(ChildListKind::Mode(active)), actions)
            });
        }
        ParamDefinition::List {
            reorderable,
            allow_remove,
            allow_add,
        } => {
            let items: Vec<Entity> = match &state {
                ParamState::List(items) => items.clone(),
                _ => Vec::new(),
            };
            ui.label(&label);
            let shown = n.children_of(ChildListKind::ListItems);
            for (i, item) in shown.iter().enumerate() {
                ui.horizontal(|ui| {
                    let pos = items.iter().position(|x| *x == item.entity);
                    if *reorderable && let Some(p) = pos {
                        if ui.add_enabled(p > 0, egui::Button::new("↑")).clicked() {
                            let mut l = items.clone();
                            l.swap(p, p - 1);
                            set(actions, e, ParamState::List(l));
                        }
                        if ui
                            .add_enabled(p + 1 < items.len(), egui::Button::new("↓"))
                            .clicked()
                        {
                            let mut l = items.clone();
                            l.swap(p, p + 1);
                            set(actions, e, ParamState::List(l));
                        }
                    }
                    if *allow_remove
                        && let Some(p) = pos
                        && ui.button("✖").clicked()
                    {
                        let mut l = items.clone();
                        l.remove(p);
                        set(actions, e, ParamState::List(l));
                    }
                    ui.push_id(i, |ui| node(ui, item, actions));
                });
            }
            if *allow_add {
                ui.weak("(adding items: not offered by this viewer)");
            }
        }
        ParamDefinition::Container { kind, .. } => {
            let nodes = n.children_of(ChildListKind::Container);
            match kind {
                ContainerKind::Section => {
                    egui::CollapsingHeader::new(if label.is_empty() { "Section" } else { &label })
                        .id_salt(("section", e))
                        .default_open(true)
                        .show(ui, |ui| children(ui, nodes, actions));
                }
                ContainerKind::Group => {
                    ui.group(|ui| {
                        if !label.is_empty() {
                            ui.strong(&label);
                        }
                        children(ui, nodes, actions);
                    });
                }
            }
        }
        ParamDefinition::Progress => {
            let v = match state {
                ParamState::Progress(v) if v.is_finite() => v.clamp(0.0, 1.0),
                _ => 0.0,
            };
            ui.add(egui::ProgressBar::new(v as f32).text(format!("{label} {:.0} %", v * 100.0)));
        }
    });
}

/// Send an edit; failures go to the log.
pub(super) fn apply(world: &mut World, action: ParamAction) {
    let (what, result) = match action {
        ParamAction::Set(e, s) => (label_of(world, e), set_param_state(world, e, s)),
        ParamAction::Press(e) => (label_of(world, e), press_button(world, e)),
    };
    if let Err(err) = result {
        let now = world.resource::<Time>().elapsed_secs_f64();
        world
            .resource_mut::<ViewerLog>()
            .push(now, true, format!("parameter {what}: {err}"));
    }
}

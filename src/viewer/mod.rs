//! The client side of a viewer (feature `viewer`): pick and select mirrored entities, move them
//! with handles that obey the Upstream, activate them, and the panels around it all.
//!
//! Added by [`ViewerPlugin`]; the `viewer` example is this plus a camera and a connection.
//!
//! - **Selection.** A click (Bevy picking's `Pointer<Click>`) selects the nearest entity at or
//!   above the one hit that has [`CanSelect`]; Escape, or a click on something not selectable,
//!   clears it. The selected entity, and every entity the Upstream marks [`IsSelected`], is
//!   outlined (bevy_mod_outline) in its `IsSelected` color or [`DEFAULT_SELECTION_COLOR`].
//!   The selection is this viewer's own: it is not sent to the Upstream.
//! - **Handles** ([`handles`]). A selected entity with [`CanTranslate`], [`CanRotate`] or
//!   [`CanScale`] shows handles for the current [`HandleMode`] (keys W, E, R), one per free axis.
//!   Dragging one moves a translucent ghost of the entity, limited by
//!   [`constrain`](crate::interaction::constrain); on release one proposal carries the new
//!   `Transform`. The canonical transaction moves the real entity; a rejected proposal removes
//!   the ghost (the entity never moved) and the [`ViewerLog`] says why.
//! - **Activation.** A double click on an entity (or on a child of one) with [`Activate`]
//!   invokes its first target; the inspector lists every target and every endpoint.
//! - **Panels** ([`panels`], egui): link status, entity tree, inspector, parameters, log.
//!
//! Spec: `spec/core/components/interaction.jaw`, `selection.jaw`, `parameter.jaw`.

pub mod handles;
pub mod panels;
mod params_ui;

use std::collections::VecDeque;

use bevy::picking::events::{Click, DragStart, Pointer, Press};
use bevy::picking::pointer::PointerButton;
use bevy::prelude::*;

use crate::assets::AssetStats;
use crate::interaction::{self, Activate, CanSelect, DEFAULT_SELECTION_COLOR, IsSelected};
use crate::mirror::Mirrored;
use crate::proposals::ProposalReply;
use crate::rpc::{RpcClient, RpcReplyKind, RpcReplyReceived};

pub use handles::{HandleMode, PendingEdits};

#[cfg(doc)]
use crate::interaction::{CanRotate, CanScale, CanTranslate};

/// Selection, handles, activation and (with `ui`) the panels. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct ViewerPlugin {
    /// The rendering side: egui panels, mesh picking and outlines (default `true`). Without it the
    /// selection, handles, proposals and activation still work from picking events (for tests, or
    /// an app that draws its own UI).
    pub ui: bool,
}

impl Default for ViewerPlugin {
    fn default() -> Self {
        ViewerPlugin { ui: true }
    }
}

impl Plugin for ViewerPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Selection>()
            .init_resource::<ViewerLog>()
            .init_resource::<PointerCapture>()
            .add_message::<ActivationRequest>()
            .init_resource::<PressState>()
            .add_observer(on_press)
            .add_observer(on_drag_start)
            .add_observer(on_click)
            .add_systems(
                Update,
                (
                    clear_selection_on_escape,
                    forget_despawned_selection,
                    activate_requested,
                    log_replies,
                    log_refused_assets,
                ),
            )
            .add_systems(PostUpdate, outline_selection);
        handles::build(app);
        if self.ui {
            app.add_plugins((
                bevy::picking::mesh_picking::MeshPickingPlugin,
                bevy_mod_outline::OutlinePlugin::JUMP_FLOOD,
            ));
            panels::build(app);
        }
    }
}

/// The entity this viewer has selected (its own choice, not sent to the Upstream).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Selection(pub Option<Entity>);

/// What the pointer is busy with, for an app's camera controls: while it is over a panel or
/// drags a handle, an orbit camera should not move.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct PointerCapture {
    /// The pointer is over a panel (or egui wants it).
    pub over_panel: bool,
    /// The pointer is over a handle (a press there starts a drag, not an orbit).
    pub over_handle: bool,
    /// A handle is being dragged.
    pub dragging_handle: bool,
}

impl PointerCapture {
    /// Is the pointer taken (camera controls should ignore it)?
    pub fn busy(&self) -> bool {
        self.over_panel || self.over_handle || self.dragging_handle
    }
}

/// One line of the [`ViewerLog`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Seconds since the app started.
    pub at: f64,
    /// Is it a failure (a rejected proposal, a refused asset, an RPC error)?
    pub failure: bool,
    /// What happened.
    pub text: String,
}

/// What happened that a user should see: rejected proposals, refused assets, activations and
/// call results. Keeps the last [`ViewerLog::CAPACITY`] entries.
#[derive(Resource, Debug, Default)]
pub struct ViewerLog {
    entries: VecDeque<LogEntry>,
}

impl ViewerLog {
    /// Entries kept.
    pub const CAPACITY: usize = 200;

    /// Add an entry (the oldest goes when full).
    pub fn push(&mut self, at: f64, failure: bool, text: impl Into<String>) {
        if self.entries.len() == Self::CAPACITY {
            self.entries.pop_front();
        }
        let text = text.into();
        if failure {
            warn!("{text}");
        } else {
            info!("{text}");
        }
        self.entries.push_back(LogEntry { at, failure, text });
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &LogEntry> {
        self.entries.iter()
    }
}

/// Ask the viewer to activate `entity`: invoke target `index` of its [`Activate`] (0 is the
/// primary action). Written by a double click and by the inspector's buttons.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationRequest {
    /// The entity with [`Activate`].
    pub entity: Entity,
    /// Which target.
    pub index: usize,
}

/// The entity at or above `from` (following `ChildOf`) that passes `test`.
pub(crate) fn ancestor_where(
    from: Entity,
    parents: &Query<&ChildOf>,
    test: impl Fn(Entity) -> bool,
) -> Option<Entity> {
    let mut e = from;
    // A hierarchy is finite, but a malformed one must not hang us: bound the walk.
    for _ in 0..1024 {
        if test(e) {
            return Some(e);
        }
        e = parents.get(e).ok()?.parent();
    }
    None
}

/// Did the pointer drag since it was pressed? Then its release is the end of a drag (an orbit,
/// a handle), not a click that selects.
#[derive(Resource, Debug, Default)]
struct PressState {
    dragged: bool,
}

fn on_press(_: On<Pointer<Press>>, mut state: ResMut<PressState>) {
    state.dragged = false;
}

fn on_drag_start(_: On<Pointer<DragStart>>, mut state: ResMut<PressState>) {
    state.dragged = true;
}

#[expect(clippy::too_many_arguments, reason = "an observer")]
fn on_click(
    mut click: On<Pointer<Click>>,
    press: Res<PressState>,
    parents: Query<&ChildOf>,
    selectable: Query<(), (With<CanSelect>, With<Mirrored>)>,
    activatable: Query<(), (With<Activate>, With<Mirrored>)>,
    mirrored: Query<(), With<Mirrored>>,
    capture: Res<PointerCapture>,
    mut selection: ResMut<Selection>,
    mut activations: MessageWriter<ActivationRequest>,
) {
    // Handle the click once, at the entity that was hit, not again as it bubbles up.
    click.propagate(false);
    if click.event.button != PointerButton::Primary || press.dragged {
        return;
    }
    let hit = click.event_target();
    // Clicks on panels, handles, ghosts or anything else that is not part of the mirrored world
    // leave the selection alone.
    if capture.over_panel || ancestor_where(hit, &parents, |e| mirrored.contains(e)).is_none() {
        return;
    }
    let selected = ancestor_where(hit, &parents, |e| selectable.contains(e));
    if selection.0 != selected {
        selection.0 = selected;
    }
    if click.event.count >= 2
        && let Some(entity) = ancestor_where(hit, &parents, |e| activatable.contains(e))
    {
        activations.write(ActivationRequest { entity, index: 0 });
    }
}

fn clear_selection_on_escape(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    capture: Res<PointerCapture>,
    mut selection: ResMut<Selection>,
) {
    if keys.is_some_and(|k| k.just_pressed(KeyCode::Escape))
        && !capture.over_panel
        && selection.0.is_some()
    {
        selection.0 = None;
    }
}

fn forget_despawned_selection(mut selection: ResMut<Selection>, exists: Query<()>) {
    if selection.0.is_some_and(|e| !exists.contains(e)) {
        selection.0 = None;
    }
}

fn activate_requested(
    mut requests: MessageReader<ActivationRequest>,
    targets: Query<(&Activate, &Mirrored, Option<&Name>)>,
    mut rpc: RpcClient,
    mut log: ResMut<ViewerLog>,
    time: Res<Time>,
) {
    for r in requests.read() {
        let now = time.elapsed_secs_f64();
        let Ok((activate, mirrored, name)) = targets.get(r.entity) else {
            log.push(
                now,
                true,
                format!("{} cannot be activated: it has no Activate", r.entity),
            );
            continue;
        };
        let who = name.map_or_else(|| r.entity.to_string(), |n| n.to_string());
        match interaction::activate(&mut rpc, mirrored.link, activate, r.index) {
            Ok(id) => log.push(now, false, format!("activated {who} (call {id})")),
            Err(e) => log.push(now, true, format!("activating {who}: {e}")),
        }
    }
}

fn log_replies(
    mut rpc: MessageReader<RpcReplyReceived>,
    mut proposals: MessageReader<ProposalReply>,
    mut log: ResMut<ViewerLog>,
    time: Res<Time>,
) {
    let now = time.elapsed_secs_f64();
    for r in rpc.read() {
        match &r.kind {
            RpcReplyKind::Complete(v) => {
                log.push(now, false, format!("call {} completed: {v}", r.invoke_id))
            }
            RpcReplyKind::Stream(v) => {
                log.push(now, false, format!("call {} streamed: {v}", r.invoke_id))
            }
            RpcReplyKind::Error(code, message) => log.push(
                now,
                true,
                format!("call {} failed with code {code}: {message}", r.invoke_id),
            ),
        }
    }
    for p in proposals.read() {
        if !p.accepted() {
            log.push(
                now,
                true,
                format!(
                    "proposal {} rejected with code {} ({})",
                    p.transaction_id,
                    p.code,
                    proposal_code_meaning(p.code)
                ),
            );
        }
    }
}

/// What a `ProposedTransactionReply` code means (spec: `main_sequence.jaw`).
pub fn proposal_code_meaning(code: u16) -> &'static str {
    match code {
        0 => "accepted",
        1 => "denied",
        2 => "resource exhausted",
        3 => "malformed",
        256.. => "application-specific",
        _ => "reserved",
    }
}

fn log_refused_assets(
    stats: Option<Res<AssetStats>>,
    mut seen: Local<u64>,
    mut log: ResMut<ViewerLog>,
    time: Res<Time>,
) {
    let Some(stats) = stats else { return };
    let total = stats.refused;
    if total == *seen {
        return;
    }
    let new = (total - *seen) as usize;
    *seen = total;
    let recent: Vec<_> = stats.recent_refusals.iter().collect();
    for r in recent.iter().rev().take(new).rev() {
        log.push(time.elapsed_secs_f64(), true, format!("asset refused: {r}"));
    }
}

/// Keeps `OutlineVolume`s on the selected entity and on every entity the Upstream marks
/// [`IsSelected`] (propagated to their mesh descendants), and removes the ones we added when the
/// selection moves on.
#[expect(clippy::type_complexity, reason = "a query filter")]
fn outline_selection(
    mut commands: Commands,
    selection: Res<Selection>,
    marked: Query<(Entity, &IsSelected)>,
    outlined: Query<(Entity, &SelectionOutline)>,
    colors: Query<Option<&IsSelected>>,
    changed: Query<(), Or<(Changed<IsSelected>, Added<Mirrored>)>>,
) {
    let mut wanted: Vec<(Entity, Color)> = marked.iter().map(|(e, s)| (e, s.color)).collect();
    if let Some(e) = selection.0
        && !wanted.iter().any(|(w, _)| *w == e)
    {
        let color = colors
            .get(e)
            .ok()
            .flatten()
            .map_or(DEFAULT_SELECTION_COLOR, |s| s.color);
        wanted.push((e, color));
    }
    for (e, o) in &outlined {
        if !wanted.iter().any(|(w, c)| *w == e && *c == o.0) {
            commands
                .entity(e)
                .remove::<(SelectionOutline, bevy_mod_outline::OutlineVolume)>()
                .remove::<bevy_mod_outline::PropagateOutline>();
        }
    }
    for (e, color) in wanted {
        let current = outlined.get(e).ok().map(|(_, o)| o.0);
        if current == Some(color) && !changed.contains(e) {
            continue;
        }
        if let Ok(mut ec) = commands.get_entity(e) {
            ec.insert((
                SelectionOutline(color),
                bevy_mod_outline::OutlineVolume {
                    visible: true,
                    width: 3.0,
                    colour: color,
                },
                bevy_mod_outline::PropagateOutline,
            ));
        }
    }
}

/// An outline the viewer put on a selected entity, in this color.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct SelectionOutline(pub Color);

//! Parameters: a small UI an Upstream exposes to its Downstreams (spec:
//! `spec/core/components/parameter.jaw`).
//!
//! | NOODLES2 | Bevy | notes |
//! | --- | --- | --- |
//! | `ParameterRootComponent` (26) | [`ParameterRoot`] | marker; with [`Global`] a sidebar candidate, else local to its entity |
//! | `ParameterComponent` (27) | [`Parameter`] | `disabled` ↔ `bool`; label cut to 255 bytes |
//! | `ParamDefinitionComponent` (28) | [`ParamDefinition`] | one variant per widget kind; child lists and the button target as [`Entity`]s; texts cut to their wire limits (label text 65,535 bytes, labels, units and icons 255) |
//! | `ParamStateComponent` (29) | [`ParamState`] | one variant per widget kind; the list state's items as [`Entity`]s |
//! | `ParamValue`, `MaybeParamValue` | [`ParamValue`], `Option<ParamValue>` | `i64` ↔ [`ParamValue::Int`], `f64` ↔ [`ParamValue::Float`] |
//!
//! Every parameter is an entity with a [`Parameter`] (its label), a [`ParamDefinition`] (the
//! widget and its static setup) and usually a [`ParamState`] (its current value, of the same
//! kind). Trees start at an entity marked [`ParameterRoot`]; unlike `ChildOf`, parents list their
//! children (containers, the options of a modes widget, the items of a list), and a child may be
//! listed by several parents. When sending, references to entities without an id on the link are
//! dropped from lists, and a button whose target has none is not sent at all.
//!
//! **Downstream (a UI).** [`ParamTree::roots`] finds the trees, [`ParamTree::build`] walks one into
//! [`ParamNode`]s and lists what is wrong with it ([`ParamProblem`]: dangling references, a child
//! listed twice in one list, cycles, `min > max`, a state of the wrong kind), without ever
//! panicking. Edits go to the Upstream as the spec says clients write them: a new state is a
//! proposal that sets the parameter's [`ParamState`], a button press is an RPC call of its target
//! with its payload ([`ParamEdits`], or [`set_param_state`] / [`press_button`] with `&mut World`).
//! Nothing changes locally: the state the Upstream accepts (and perhaps corrects) comes back.
//!
//! **Upstream.** Share the entities. The Upstream validates what Downstreams propose: its
//! [`LinkPermissions`] ([`parameter_permissions`] allows exactly parameter states) and
//! [`ProposalPolicy`](crate::proposals::ProposalPolicy) decide whether a `ParamStateComponent`
//! may be set at all, and a system of the app reading `Changed<ParamState>` makes the value
//! valid with [`ParamDefinition::correct_state`] (clamps and snaps numbers; refuses unknown
//! option ids), writing the corrected state back so every Downstream sees the canonical one.
//! The demo scene does this ([`crate::demo`]).

use std::collections::HashSet;
use std::fmt;

use bevy::ecs::system::{SystemParam, SystemState};
use bevy::prelude::*;

use crate::codec::{self as w, Any, EntityID};
use crate::mirror::{
    EntityIds, EntityResolver, Global, MirrorAppExt, MirrorComponent, MirrorError, Mirrored,
    cut_str,
};
use crate::net::{Grant, LinkPermissions};
use crate::proposals::{Proposal, ProposalError, Proposals};
use crate::rpc::{RpcClient, RpcEndpoint, RpcInvokeError};

/// The generated wire enums, used as they are by the native types.
pub use crate::codec::{
    ButtonKind, ContainerKind, DateTimeKind, LabelKind, ModeKind, RangeKind, SelectKind,
};

/// Longest label, unit, icon and date-time string on the wire (`u8`-counted), in bytes.
pub const MAX_LABEL: usize = u8::MAX as usize;
/// Longest label text on the wire (`u16`-counted), in bytes.
pub const MAX_TEXT: usize = u16::MAX as usize;

// ============================================================================================
// Components
// ============================================================================================

/// Marks the top of a parameter tree (`ParameterRootComponent`, Core (0, 26)). With
/// [`Global`] it is a candidate for an application-wide panel (a sidebar); otherwise it belongs
/// to the entity it is on.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParameterRoot;

impl MirrorComponent for ParameterRoot {
    type Wire = w::ParameterRootComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 26;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<Self::Wire> {
        Some(w::ParameterRootComponent)
    }
    fn from_wire(_: Self::Wire, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(ParameterRoot)
    }
}

/// What every parameter widget has (`ParameterComponent`, Core (0, 27)).
#[derive(Component, Debug, Clone, PartialEq, Eq, Default)]
pub struct Parameter {
    /// Shown greyed out and read-only.
    pub disabled: bool,
    /// The caption shown next to the widget (at most 255 bytes on the wire).
    pub label: String,
}

impl Parameter {
    /// An enabled parameter with this label.
    pub fn new(label: impl Into<String>) -> Self {
        Parameter {
            disabled: false,
            label: label.into(),
        }
    }
}

impl MirrorComponent for Parameter {
    type Wire = w::ParameterComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 27;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<Self::Wire> {
        Some(w::ParameterComponent {
            disabled: self.disabled as u8,
            label: label(&self.label),
        })
    }
    fn from_wire(w: Self::Wire, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Parameter {
            disabled: w.disabled != 0,
            label: w.label.0,
        })
    }
}

/// A numeric value (`ParamValue`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
}

impl Default for ParamValue {
    fn default() -> Self {
        ParamValue::Int(0)
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
        }
    }
}

impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::Int(v)
    }
}

impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}

impl ParamValue {
    /// Is this an [`Int`](Self::Int)?
    pub fn is_int(self) -> bool {
        matches!(self, ParamValue::Int(_))
    }

    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            ParamValue::Int(v) => v as f64,
            ParamValue::Float(v) => v,
        }
    }

    /// The value as an integer: floats are rounded (saturating; NaN is 0).
    pub fn as_i64(self) -> i64 {
        match self {
            ParamValue::Int(v) => v,
            ParamValue::Float(v) => v.round() as i64,
        }
    }

    /// `self` compared with `other` (integers exactly; `None` if either is NaN).
    pub fn compare(self, other: ParamValue) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (ParamValue::Int(a), ParamValue::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn to_wire(self) -> w::ParamValue {
        match self {
            ParamValue::Int(v) => w::ParamValue::I64(v),
            ParamValue::Float(v) => w::ParamValue::F64(v),
        }
    }

    fn from_wire(v: w::ParamValue) -> Self {
        match v {
            w::ParamValue::I64(v) => ParamValue::Int(v),
            w::ParamValue::F64(v) => ParamValue::Float(v),
        }
    }
}

fn maybe_to_wire(v: Option<ParamValue>) -> w::MaybeParamValue {
    match v {
        None => w::MaybeParamValue::Void,
        Some(ParamValue::Int(v)) => w::MaybeParamValue::I64(v),
        Some(ParamValue::Float(v)) => w::MaybeParamValue::F64(v),
    }
}

fn maybe_from_wire(v: w::MaybeParamValue) -> Option<ParamValue> {
    match v {
        w::MaybeParamValue::Void => None,
        w::MaybeParamValue::I64(v) => Some(ParamValue::Int(v)),
        w::MaybeParamValue::F64(v) => Some(ParamValue::Float(v)),
    }
}

fn label(s: &str) -> w::ParamLabelString {
    w::ParamLabelString(cut_str(s, MAX_LABEL))
}

/// Entities with an id on the link, in order (the others are dropped), at most 65,535.
fn child_list(list: &[Entity], ids: &dyn EntityIds) -> w::ParameterChildList {
    w::ParameterChildList(
        list.iter()
            .filter_map(|e| ids.id_of(*e))
            .take(u16::MAX as usize)
            .map(EntityID::new)
            .collect(),
    )
}

fn entities(list: w::ParameterChildList, ids: &mut dyn EntityResolver) -> Vec<Entity> {
    list.0.into_iter().map(|e| ids.entity(e.id.get())).collect()
}

/// The widget kinds: what a [`ParamDefinition`] and a [`ParamState`] are (their variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// Read-only text.
    Label,
    /// Modes, each with its own subtree of parameters; one active.
    Modes,
    /// An on/off switch.
    Toggle,
    /// A push button that calls an RPC endpoint.
    Button,
    /// A bounded number (slider or stepper).
    Range,
    /// A number typed as text, with optional limits.
    Number,
    /// A date and/or time.
    DateTime,
    /// A choice among fixed options.
    Select,
    /// An editable list of child parameters.
    List,
    /// A layout container around child parameters.
    Container,
    /// A progress bar.
    Progress,
}

/// One mode of a [`ParamDefinition::Modes`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModeOption {
    /// Its caption.
    pub label: String,
    /// The value [`ParamState::Modes`] holds while it is active (0 or more; -1 means none).
    pub id: i32,
    /// A well-known icon name (`media.play`), or empty.
    pub icon: String,
    /// The parameters shown while this mode is active.
    pub children: Vec<Entity>,
}

/// One choice of a [`ParamDefinition::Select`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectOption {
    /// The value [`ParamState::Select`] holds while it is chosen (0 or more; -1 means none).
    pub id: i32,
    /// Its caption.
    pub label: String,
}

impl SelectOption {
    /// An option.
    pub fn new(id: i32, label: impl Into<String>) -> Self {
        SelectOption {
            id,
            label: label.into(),
        }
    }
}

/// The widget a parameter is and its static setup (`ParamDefinitionComponent`, Core (0, 28)).
#[derive(Component, Debug, Clone, PartialEq)]
pub enum ParamDefinition {
    /// Read-only text.
    Label {
        /// The text (at most 65,535 bytes on the wire).
        text: String,
        /// Its style.
        kind: LabelKind,
    },
    /// Modes, each enabling its own subtree of parameters; one is active.
    Modes {
        /// May the active id be -1 (no mode)?
        none_allowed: bool,
        /// The modes (at most 255 on the wire).
        options: Vec<ModeOption>,
        /// Chooser or tabs.
        kind: ModeKind,
    },
    /// An on/off switch.
    Toggle,
    /// A push button that calls an RPC endpoint.
    Button {
        /// The entity with the [`RpcEndpoint`] to call.
        target: Entity,
        /// The call's arguments.
        payload: Vec<Any>,
        /// Its style.
        kind: ButtonKind,
    },
    /// A bounded number.
    Range {
        /// The lowest value.
        min: ParamValue,
        /// The highest value.
        max: ParamValue,
        /// The increment (`None`: continuous).
        step: Option<ParamValue>,
        /// A unit shown after the value, or empty.
        unit: String,
        /// Slider or stepper.
        kind: RangeKind,
    },
    /// A number typed as text, with optional limits.
    Number {
        /// Integers only.
        is_int: bool,
        /// The lowest value, if any.
        min: Option<ParamValue>,
        /// The highest value, if any.
        max: Option<ParamValue>,
        /// The increment, if any.
        step: Option<ParamValue>,
    },
    /// A date and/or time picker (the value format is described at [`ParamState::DateTime`]).
    DateTime {
        /// Date, time, or both.
        kind: DateTimeKind,
    },
    /// A choice among fixed options.
    Select {
        /// May the active id be -1 (nothing chosen)?
        none_allowed: bool,
        /// The options (at most 255 on the wire).
        options: Vec<SelectOption>,
        /// Dropdown, large menu or segmented buttons.
        kind: SelectKind,
    },
    /// An editable list; its items are the parameter entities of its [`ParamState::List`].
    List {
        /// May the user reorder items?
        reorderable: bool,
        /// May the user add items?
        allow_add: bool,
        /// May the user remove items?
        allow_remove: bool,
    },
    /// A layout container.
    Container {
        /// Headed section or group box.
        kind: ContainerKind,
        /// The parameters inside, in order (at most 65,535 on the wire).
        children: Vec<Entity>,
    },
    /// A progress bar.
    Progress,
}

impl ParamDefinition {
    /// Which widget this is.
    pub fn kind(&self) -> ParamKind {
        match self {
            ParamDefinition::Label { .. } => ParamKind::Label,
            ParamDefinition::Modes { .. } => ParamKind::Modes,
            ParamDefinition::Toggle => ParamKind::Toggle,
            ParamDefinition::Button { .. } => ParamKind::Button,
            ParamDefinition::Range { .. } => ParamKind::Range,
            ParamDefinition::Number { .. } => ParamKind::Number,
            ParamDefinition::DateTime { .. } => ParamKind::DateTime,
            ParamDefinition::Select { .. } => ParamKind::Select,
            ParamDefinition::List { .. } => ParamKind::List,
            ParamDefinition::Container { .. } => ParamKind::Container,
            ParamDefinition::Progress => ParamKind::Progress,
        }
    }

    /// The state a widget shows when its entity has none: the first option, the lowest value
    /// (or 0 within the limits), off, empty.
    pub fn default_state(&self) -> ParamState {
        match self {
            ParamDefinition::Label { .. } => ParamState::Label,
            ParamDefinition::Modes { options, .. } => {
                ParamState::Modes(options.first().map_or(-1, |o| o.id))
            }
            ParamDefinition::Toggle => ParamState::Toggle(false),
            ParamDefinition::Button { .. } => ParamState::Button,
            ParamDefinition::Range { min, .. } => {
                ParamState::Range(self.constrain(*min).unwrap_or(*min))
            }
            ParamDefinition::Number { is_int, .. } => {
                let zero = if *is_int {
                    ParamValue::Int(0)
                } else {
                    ParamValue::Float(0.0)
                };
                ParamState::Number(self.constrain(zero).unwrap_or(zero))
            }
            ParamDefinition::DateTime { .. } => ParamState::DateTime(String::new()),
            ParamDefinition::Select { options, .. } => {
                ParamState::Select(options.first().map_or(-1, |o| o.id))
            }
            ParamDefinition::List { .. } => ParamState::List(Vec::new()),
            ParamDefinition::Container { .. } => ParamState::Container,
            ParamDefinition::Progress => ParamState::Progress(0.0),
        }
    }

    /// Is `id` a valid active id of this [`Select`](Self::Select) or [`Modes`](Self::Modes)
    /// (one of its options, or -1 where none is allowed)? `false` for other kinds.
    pub fn allows_id(&self, id: i32) -> bool {
        match self {
            ParamDefinition::Modes {
                none_allowed,
                options,
                ..
            } => (id == -1 && *none_allowed) || (id >= 0 && options.iter().any(|o| o.id == id)),
            ParamDefinition::Select {
                none_allowed,
                options,
                ..
            } => (id == -1 && *none_allowed) || (id >= 0 && options.iter().any(|o| o.id == id)),
            _ => false,
        }
    }

    /// `value` made valid for this [`Range`](Self::Range) or [`Number`](Self::Number): an
    /// integer if the widget takes integers (a range whose bounds are both integers, a number
    /// with `is_int`), snapped to the step (counted from the minimum, or 0), then clamped to the
    /// limits. NaN becomes the minimum (or 0); limits that are NaN are ignored. `None` for other
    /// kinds. Never panics, whatever the definition (with `min > max` the result is `min`).
    pub fn constrain(&self, value: ParamValue) -> Option<ParamValue> {
        match self {
            ParamDefinition::Range { min, max, step, .. } => Some(constrain(
                value,
                Some(*min),
                Some(*max),
                *step,
                min.is_int() && max.is_int(),
            )),
            ParamDefinition::Number {
                is_int,
                min,
                max,
                step,
            } => Some(constrain(value, *min, *max, *step, *is_int)),
            _ => None,
        }
    }

    /// Check `state` against this definition: its kind, its value within the limits (not the
    /// step), its id among the options, a progress within 0..=1.
    pub fn check_state(&self, state: &ParamState) -> Result<(), StateError> {
        if self.kind() != state.kind() {
            return Err(StateError::KindMismatch {
                definition: self.kind(),
                state: state.kind(),
            });
        }
        use std::cmp::Ordering::{Equal, Greater, Less};
        let within = |v: ParamValue, min: Option<ParamValue>, max: Option<ParamValue>| {
            let above_min = min.is_none_or(|m| matches!(v.compare(m), Some(Greater | Equal)));
            let below_max = max.is_none_or(|m| matches!(v.compare(m), Some(Less | Equal)));
            if above_min && below_max && !v.as_f64().is_nan() {
                Ok(())
            } else {
                Err(StateError::OutOfRange { value: v, min, max })
            }
        };
        match (self, state) {
            (ParamDefinition::Range { min, max, .. }, ParamState::Range(v)) => {
                within(*v, Some(*min), Some(*max))
            }
            (ParamDefinition::Number { min, max, .. }, ParamState::Number(v)) => {
                within(*v, *min, *max)
            }
            (_, ParamState::Modes(id) | ParamState::Select(id)) if !self.allows_id(*id) => {
                Err(StateError::UnknownId(*id))
            }
            (_, ParamState::Progress(p)) => within(
                ParamValue::Float(*p),
                Some(ParamValue::Float(0.0)),
                Some(ParamValue::Float(1.0)),
            ),
            _ => Ok(()),
        }
    }

    /// `state` made valid for this definition, as an Upstream accepts it: numbers are
    /// [constrained](Self::constrain), a progress clamped to 0..=1 (NaN: 0), a date-time cut to
    /// 255 bytes. A state of another kind, or an id that is none of the options, cannot be made
    /// valid: the error says why (keep the previous state).
    pub fn correct_state(&self, state: &ParamState) -> Result<ParamState, StateError> {
        if self.kind() != state.kind() {
            return Err(StateError::KindMismatch {
                definition: self.kind(),
                state: state.kind(),
            });
        }
        Ok(match state {
            ParamState::Range(v) => ParamState::Range(self.constrain(*v).unwrap_or(*v)),
            ParamState::Number(v) => ParamState::Number(self.constrain(*v).unwrap_or(*v)),
            ParamState::Modes(id) | ParamState::Select(id) if !self.allows_id(*id) => {
                return Err(StateError::UnknownId(*id));
            }
            ParamState::Progress(p) => {
                ParamState::Progress(if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) })
            }
            ParamState::DateTime(s) => ParamState::DateTime(cut_str(s, MAX_LABEL)),
            s => s.clone(),
        })
    }

    /// The lists of child parameters this definition holds (a container's, each mode's); a
    /// list's items are in its [`ParamState::List`] instead.
    pub fn child_lists(&self) -> Vec<(ChildListKind, &[Entity])> {
        match self {
            ParamDefinition::Container { children, .. } => {
                vec![(ChildListKind::Container, children.as_slice())]
            }
            ParamDefinition::Modes { options, .. } => options
                .iter()
                .map(|o| (ChildListKind::Mode(o.id), o.children.as_slice()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// See [`ParamDefinition::constrain`].
fn constrain(
    value: ParamValue,
    min: Option<ParamValue>,
    max: Option<ParamValue>,
    step: Option<ParamValue>,
    int: bool,
) -> ParamValue {
    if int {
        // Bounds as integers: a float minimum rounds up, a float maximum down.
        let lo = min.and_then(|m| match m {
            ParamValue::Int(v) => Some(v),
            ParamValue::Float(v) => (!v.is_nan()).then(|| v.ceil() as i64),
        });
        let hi = max.and_then(|m| match m {
            ParamValue::Int(v) => Some(v),
            ParamValue::Float(v) => (!v.is_nan()).then(|| v.floor() as i64),
        });
        let mut x = match value {
            ParamValue::Float(v) if v.is_nan() => lo.unwrap_or(0),
            v => v.as_i64(),
        };
        let step = step.map(|s| s.as_i64()).filter(|s| *s > 0).map(i128::from);
        if let Some(s) = step {
            let base = i128::from(lo.unwrap_or(0));
            let off = i128::from(x) - base;
            // Rounded to the nearest multiple (halves away from zero).
            let k = (off + off.signum() * (s / 2)) / s;
            let snapped = base + k * s;
            x = snapped.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        }
        if let Some(hi) = hi
            && x > hi
        {
            x = hi;
        }
        if let Some(lo) = lo
            && x < lo
        {
            x = lo;
        }
        ParamValue::Int(x)
    } else {
        let lo = min.map(ParamValue::as_f64).filter(|v| !v.is_nan());
        let hi = max.map(ParamValue::as_f64).filter(|v| !v.is_nan());
        let mut x = value.as_f64();
        if x.is_nan() {
            x = lo.or(hi).unwrap_or(0.0);
        }
        if let Some(s) = step.map(ParamValue::as_f64)
            && s.is_finite()
            && s > 0.0
            && x.is_finite()
        {
            let base = lo.filter(|b| b.is_finite()).unwrap_or(0.0);
            let snapped = base + ((x - base) / s).round() * s;
            if snapped.is_finite() {
                x = snapped;
            }
        }
        if let Some(hi) = hi
            && x > hi
        {
            x = hi;
        }
        if let Some(lo) = lo
            && x < lo
        {
            x = lo;
        }
        ParamValue::Float(x)
    }
}

impl MirrorComponent for ParamDefinition {
    type Wire = w::ParamDefinitionComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 28;
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<Self::Wire> {
        use w::ParamDefinitionComponent as D;
        Some(match self {
            ParamDefinition::Label { text, kind } => D::LabelDefinition(w::LabelDefinition {
                text: w::ParamTextString(cut_str(text, MAX_TEXT)),
                kind: *kind,
            }),
            ParamDefinition::Modes {
                none_allowed,
                options,
                kind,
            } => D::ModesDefinition(w::ModesDefinition {
                none_allowed: *none_allowed as u8,
                list: w::ModeList(
                    options
                        .iter()
                        .take(u8::MAX as usize)
                        .map(|o| w::ModeOption {
                            label: label(&o.label),
                            id: o.id,
                            icon: w::Icon(cut_str(&o.icon, MAX_LABEL)),
                            list: child_list(&o.children, ids),
                        })
                        .collect(),
                ),
                kind: *kind,
            }),
            ParamDefinition::Toggle => D::ToggleDefinition(w::ToggleDefinition),
            ParamDefinition::Button {
                target,
                payload,
                kind,
            } => D::ButtonDefinition(w::ButtonDefinition {
                target: EntityID::new(ids.id_of(*target)?),
                payload: w::AnyArray(payload.clone()),
                button_kind: *kind,
            }),
            ParamDefinition::Range {
                min,
                max,
                step,
                unit,
                kind,
            } => D::RangeDefinition(w::RangeDefinition {
                min: min.to_wire(),
                max: max.to_wire(),
                step: maybe_to_wire(*step),
                unit: label(unit),
                kind: *kind,
            }),
            ParamDefinition::Number {
                is_int,
                min,
                max,
                step,
            } => D::NumberDefinition(w::NumberDefinition {
                is_int: *is_int as u8,
                min: maybe_to_wire(*min),
                max: maybe_to_wire(*max),
                step: maybe_to_wire(*step),
            }),
            ParamDefinition::DateTime { kind } => {
                D::DateTimeDefinition(w::DateTimeDefinition { kind: *kind })
            }
            ParamDefinition::Select {
                none_allowed,
                options,
                kind,
            } => D::SelectDefinition(w::SelectDefinition {
                none_allowed: *none_allowed as u8,
                options: w::SelectOptionList(
                    options
                        .iter()
                        .take(u8::MAX as usize)
                        .map(|o| w::SelectOption {
                            id: o.id,
                            label: label(&o.label),
                        })
                        .collect(),
                ),
                kind: *kind,
            }),
            ParamDefinition::List {
                reorderable,
                allow_add,
                allow_remove,
            } => D::ListDefinition(w::ListDefinition {
                reorderable: *reorderable as u8,
                allow_add: *allow_add as u8,
                allow_remove: *allow_remove as u8,
            }),
            ParamDefinition::Container { kind, children } => {
                D::ContainerDefinition(w::ContainerDefinition {
                    kind: *kind,
                    list: child_list(children, ids),
                })
            }
            ParamDefinition::Progress => D::ProgressDefinition(w::ProgressDefinition),
        })
    }

    fn from_wire(w: Self::Wire, ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        use w::ParamDefinitionComponent as D;
        Ok(match w {
            D::LabelDefinition(d) => ParamDefinition::Label {
                text: d.text.0,
                kind: d.kind,
            },
            D::ModesDefinition(d) => ParamDefinition::Modes {
                none_allowed: d.none_allowed != 0,
                options: d
                    .list
                    .0
                    .into_iter()
                    .map(|o| ModeOption {
                        label: o.label.0,
                        id: o.id,
                        icon: o.icon.0,
                        children: entities(o.list, ids),
                    })
                    .collect(),
                kind: d.kind,
            },
            D::ToggleDefinition(_) => ParamDefinition::Toggle,
            D::ButtonDefinition(d) => ParamDefinition::Button {
                target: ids.entity(d.target.id.get()),
                payload: d.payload.0,
                kind: d.button_kind,
            },
            D::RangeDefinition(d) => ParamDefinition::Range {
                min: ParamValue::from_wire(d.min),
                max: ParamValue::from_wire(d.max),
                step: maybe_from_wire(d.step),
                unit: d.unit.0,
                kind: d.kind,
            },
            D::NumberDefinition(d) => ParamDefinition::Number {
                is_int: d.is_int != 0,
                min: maybe_from_wire(d.min),
                max: maybe_from_wire(d.max),
                step: maybe_from_wire(d.step),
            },
            D::DateTimeDefinition(d) => ParamDefinition::DateTime { kind: d.kind },
            D::SelectDefinition(d) => ParamDefinition::Select {
                none_allowed: d.none_allowed != 0,
                options: d
                    .options
                    .0
                    .into_iter()
                    .map(|o| SelectOption {
                        id: o.id,
                        label: o.label.0,
                    })
                    .collect(),
                kind: d.kind,
            },
            D::ListDefinition(d) => ParamDefinition::List {
                reorderable: d.reorderable != 0,
                allow_add: d.allow_add != 0,
                allow_remove: d.allow_remove != 0,
            },
            D::ContainerDefinition(d) => ParamDefinition::Container {
                kind: d.kind,
                children: entities(d.list, ids),
            },
            D::ProgressDefinition(_) => ParamDefinition::Progress,
        })
    }
}

/// The current value of a parameter (`ParamStateComponent`, Core (0, 29)); its variant matches
/// its [`ParamDefinition`]'s. Downstreams change it by proposal ([`ParamEdits::set_state`]).
#[derive(Component, Debug, Clone, PartialEq)]
pub enum ParamState {
    /// Labels have no state.
    Label,
    /// The active mode's id (-1: none, where allowed).
    Modes(i32),
    /// On or off.
    Toggle(bool),
    /// Buttons have no state.
    Button,
    /// The value, within the range.
    Range(ParamValue),
    /// The value.
    Number(ParamValue),
    /// The value as text, in UTC: `YYYY-MM-DD` (date), `HH:MM:SS` or `HH:MM` (time), ISO 8601
    /// (date and time); at most 255 bytes on the wire.
    DateTime(String),
    /// The chosen option's id (-1: none, where allowed).
    Select(i32),
    /// The items, in display order: parameter entities (at most 65,535 on the wire).
    List(Vec<Entity>),
    /// Containers have no state.
    Container,
    /// Completion, 0.0 to 1.0.
    Progress(f64),
}

impl ParamState {
    /// Which widget this is the state of.
    pub fn kind(&self) -> ParamKind {
        match self {
            ParamState::Label => ParamKind::Label,
            ParamState::Modes(_) => ParamKind::Modes,
            ParamState::Toggle(_) => ParamKind::Toggle,
            ParamState::Button => ParamKind::Button,
            ParamState::Range(_) => ParamKind::Range,
            ParamState::Number(_) => ParamKind::Number,
            ParamState::DateTime(_) => ParamKind::DateTime,
            ParamState::Select(_) => ParamKind::Select,
            ParamState::List(_) => ParamKind::List,
            ParamState::Container => ParamKind::Container,
            ParamState::Progress(_) => ParamKind::Progress,
        }
    }

    /// The number of a [`Range`](Self::Range) or [`Number`](Self::Number) state.
    pub fn value(&self) -> Option<ParamValue> {
        match self {
            ParamState::Range(v) | ParamState::Number(v) => Some(*v),
            _ => None,
        }
    }
}

impl MirrorComponent for ParamState {
    type Wire = w::ParamStateComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 29;
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<Self::Wire> {
        use w::ParamStateComponent as S;
        Some(match self {
            ParamState::Label => S::LabelState(w::LabelState),
            ParamState::Modes(id) => S::ModesState(w::ModesState { active_id: *id }),
            ParamState::Toggle(on) => S::ToggleState(w::ToggleState { value: *on as u8 }),
            ParamState::Button => S::ButtonState(w::ButtonState),
            ParamState::Range(v) => S::RangeState(w::RangeState { value: v.to_wire() }),
            ParamState::Number(v) => S::NumberState(w::NumberState { value: v.to_wire() }),
            ParamState::DateTime(s) => S::DateTimeState(w::DateTimeState { value: label(s) }),
            ParamState::Select(id) => S::SelectState(w::SelectState { active_id: *id }),
            ParamState::List(items) => S::ListState(w::ListState {
                list: child_list(items, ids),
            }),
            ParamState::Container => S::ContainerState(w::ContainerState),
            ParamState::Progress(p) => S::ProgressState(w::ProgressState { normalized: *p }),
        })
    }

    fn from_wire(w: Self::Wire, ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        use w::ParamStateComponent as S;
        Ok(match w {
            S::LabelState(_) => ParamState::Label,
            S::ModesState(s) => ParamState::Modes(s.active_id),
            S::ToggleState(s) => ParamState::Toggle(s.value != 0),
            S::ButtonState(_) => ParamState::Button,
            S::RangeState(s) => ParamState::Range(ParamValue::from_wire(s.value)),
            S::NumberState(s) => ParamState::Number(ParamValue::from_wire(s.value)),
            S::DateTimeState(s) => ParamState::DateTime(s.value.0),
            S::SelectState(s) => ParamState::Select(s.active_id),
            S::ListState(s) => ParamState::List(entities(s.list, ids)),
            S::ContainerState(_) => ParamState::Container,
            S::ProgressState(s) => ParamState::Progress(s.normalized),
        })
    }
}

/// Why a [`ParamState`] does not fit its [`ParamDefinition`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// The state is of another widget kind than the definition.
    #[error("the state is a {state:?} state, the definition a {definition:?}")]
    KindMismatch {
        /// The definition's kind.
        definition: ParamKind,
        /// The state's kind.
        state: ParamKind,
    },
    /// A number outside the limits (or NaN).
    #[error("{value} is outside {}..={}", show(min), show(max))]
    OutOfRange {
        /// The value.
        value: ParamValue,
        /// The lower limit, if any.
        min: Option<ParamValue>,
        /// The upper limit, if any.
        max: Option<ParamValue>,
    },
    /// An active id that is none of the options (nor an allowed -1).
    #[error("id {0} is none of the options")]
    UnknownId(i32),
}

fn show(v: &Option<ParamValue>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

// ============================================================================================
// The tree, for UIs
// ============================================================================================

/// Deepest nesting [`ParamTree::build`] follows.
pub const MAX_DEPTH: usize = 64;
/// Most nodes [`ParamTree::build`] puts in one tree (a child listed by several parents counts
/// each time).
pub const MAX_NODES: usize = 10_000;

/// Where a [`ChildList`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildListKind {
    /// A [`ParamDefinition::Container`]'s children.
    Container,
    /// The children of the mode with this id of a [`ParamDefinition::Modes`].
    Mode(i32),
    /// The items of a [`ParamState::List`].
    ListItems,
}

/// One list of child parameters of a [`ParamNode`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChildList {
    /// Where it comes from.
    pub kind: ChildListKind,
    /// Its parameters, in order (entries that are missing, have no definition, repeat an earlier
    /// entry of the same list or close a cycle are left out; see [`ParamTree::problems`]).
    pub nodes: Vec<ParamNode>,
}

/// One parameter of a [`ParamTree`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamNode {
    /// Its entity.
    pub entity: Entity,
    /// Its [`Parameter`] (default: enabled, no label).
    pub parameter: Parameter,
    /// Its widget.
    pub definition: ParamDefinition,
    /// Its state, if it has one.
    pub state: Option<ParamState>,
    /// Its child lists (see [`ParamDefinition::child_lists`]; a list's items come last).
    pub children: Vec<ChildList>,
}

impl ParamNode {
    /// The state to show: its own if it fits the definition's kind, else the definition's
    /// [default](ParamDefinition::default_state).
    pub fn shown_state(&self) -> ParamState {
        match &self.state {
            Some(s) if s.kind() == self.definition.kind() => s.clone(),
            _ => self.definition.default_state(),
        }
    }

    /// The nodes of child list `kind` (empty if it has none).
    pub fn children_of(&self, kind: ChildListKind) -> &[ParamNode] {
        self.children
            .iter()
            .find(|c| c.kind == kind)
            .map_or(&[], |c| c.nodes.as_slice())
    }

    /// This node and every node below it, depth first.
    pub fn iter(&self) -> impl Iterator<Item = &ParamNode> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            let n = stack.pop()?;
            for list in n.children.iter().rev() {
                stack.extend(list.nodes.iter().rev());
            }
            Some(n)
        })
    }
}

/// Something wrong in a parameter tree (see [`ParamTree::build`]). Each names the entity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamProblem {
    /// A referenced entity (or the root) does not exist.
    #[error("entity {entity}{} does not exist", by(parent))]
    Missing {
        /// The missing entity.
        entity: Entity,
        /// Who lists it (`None`: it is the root).
        parent: Option<Entity>,
    },
    /// A referenced entity (or the root) has no [`ParamDefinition`].
    #[error("entity {entity}{} has no ParamDefinition", by(parent))]
    NoDefinition {
        /// The entity.
        entity: Entity,
        /// Who lists it (`None`: it is the root).
        parent: Option<Entity>,
    },
    /// A child listed more than once in the same list (the later entries are left out).
    #[error("entity {parent} lists {child} more than once in the same list")]
    Duplicate {
        /// The listing parameter.
        parent: Entity,
        /// The repeated child.
        child: Entity,
    },
    /// A child that is also an ancestor: the tree is not followed there.
    #[error("entity {parent} lists {entity}, one of its own ancestors (a cycle, not followed)")]
    Cycle {
        /// The ancestor listed again.
        entity: Entity,
        /// The parameter that lists it.
        parent: Entity,
    },
    /// A range or number whose minimum is above its maximum.
    #[error("entity {entity}: min {min} is above max {max}")]
    MinAboveMax {
        /// The parameter.
        entity: Entity,
        /// Its minimum.
        min: ParamValue,
        /// Its maximum.
        max: ParamValue,
    },
    /// A state of another widget kind than the definition.
    #[error("entity {entity}: its state is a {state:?} state, its definition a {definition:?}")]
    StateMismatch {
        /// The parameter.
        entity: Entity,
        /// The definition's kind.
        definition: ParamKind,
        /// The state's kind.
        state: ParamKind,
    },
    /// A state of the right kind whose value does not fit (out of range, unknown id).
    #[error("entity {entity}: {error}")]
    InvalidState {
        /// The parameter.
        entity: Entity,
        /// What is wrong.
        error: StateError,
    },
    /// A button whose target does not exist or is not an [`RpcEndpoint`].
    #[error("entity {entity}: its button target {target} does not exist or is not an RPC endpoint")]
    ButtonTarget {
        /// The button.
        entity: Entity,
        /// Its target.
        target: Entity,
    },
    /// Nesting deeper than [`MAX_DEPTH`]: not followed.
    #[error("entity {entity} is nested more than {MAX_DEPTH} levels deep (not followed)")]
    TooDeep {
        /// The first entity left out.
        entity: Entity,
    },
    /// More than [`MAX_NODES`] nodes: the rest is left out.
    #[error("the tree has more than {MAX_NODES} nodes; entity {entity} and the rest are left out")]
    TooLarge {
        /// The first entity left out.
        entity: Entity,
    },
}

fn by(parent: &Option<Entity>) -> String {
    match parent {
        Some(p) => format!(" (listed by {p})"),
        None => " (the root)".into(),
    }
}

impl ParamProblem {
    /// The entity the problem is about (for a duplicate, the parent listing it).
    pub fn entity(&self) -> Entity {
        match self {
            ParamProblem::Missing { entity, .. }
            | ParamProblem::NoDefinition { entity, .. }
            | ParamProblem::Cycle { entity, .. }
            | ParamProblem::MinAboveMax { entity, .. }
            | ParamProblem::StateMismatch { entity, .. }
            | ParamProblem::InvalidState { entity, .. }
            | ParamProblem::ButtonTarget { entity, .. }
            | ParamProblem::TooDeep { entity }
            | ParamProblem::TooLarge { entity } => *entity,
            ParamProblem::Duplicate { parent, .. } => *parent,
        }
    }
}

/// A parameter tree as a UI draws it: built from the world by [`ParamTree::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTree {
    /// The root's entity.
    pub root_entity: Entity,
    /// The root node (`None` if the root is missing or has no definition).
    pub root: Option<ParamNode>,
    /// What is wrong, in the order it was found.
    pub problems: Vec<ParamProblem>,
}

/// One parameter tree of the world (see [`ParamTree::roots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamTreeRoot {
    /// The entity with the [`ParameterRoot`].
    pub entity: Entity,
    /// Is it [`Global`] (a sidebar candidate)? Otherwise it belongs to its own entity.
    pub global: bool,
    /// Its [`Parameter`]'s label, else its `Name`, else empty.
    pub label: String,
    /// The link it is mirrored from (`None`: this node's own).
    pub link: Option<Entity>,
}

impl ParamTree {
    /// Every [`ParameterRoot`] of the world: global ones first, then by entity.
    pub fn roots(world: &World) -> Vec<ParamTreeRoot> {
        let Some(mut q) = world.try_query_filtered::<Entity, With<ParameterRoot>>() else {
            return Vec::new();
        };
        let mut roots: Vec<ParamTreeRoot> = q
            .iter(world)
            .map(|e| ParamTreeRoot {
                entity: e,
                global: world.get::<Global>(e).is_some(),
                label: world
                    .get::<Parameter>(e)
                    .map(|p| p.label.clone())
                    .or_else(|| world.get::<Name>(e).map(|n| n.as_str().to_owned()))
                    .unwrap_or_default(),
                link: world.get::<Mirrored>(e).map(|m| m.link),
            })
            .collect();
        roots.sort_by_key(|r| (!r.global, r.entity));
        roots
    }

    /// Walk the tree from `root`: each node with its [`Parameter`], definition, state and child
    /// lists. Entries that cannot be shown are left out and reported in
    /// [`problems`](Self::problems); cycles are not followed, nesting stops at [`MAX_DEPTH`] and
    /// the tree at [`MAX_NODES`] nodes. Never panics.
    pub fn build(world: &World, root: Entity) -> ParamTree {
        let mut b = Builder {
            world,
            problems: Vec::new(),
            path: Vec::new(),
            count: 0,
            full: false,
        };
        let node = b.node(root, None);
        ParamTree {
            root_entity: root,
            root: node,
            problems: b.problems,
        }
    }

    /// Every node, depth first.
    pub fn nodes(&self) -> impl Iterator<Item = &ParamNode> {
        self.root.iter().flat_map(ParamNode::iter)
    }

    /// The first node of `entity` (a child listed by several parents appears once per listing).
    pub fn find(&self, entity: Entity) -> Option<&ParamNode> {
        self.nodes().find(|n| n.entity == entity)
    }
}

struct Builder<'w> {
    world: &'w World,
    problems: Vec<ParamProblem>,
    /// The ancestors of the node being built (cycle detection).
    path: Vec<Entity>,
    count: usize,
    full: bool,
}

impl Builder<'_> {
    fn node(&mut self, e: Entity, parent: Option<Entity>) -> Option<ParamNode> {
        if self.world.get_entity(e).is_err() {
            self.problems
                .push(ParamProblem::Missing { entity: e, parent });
            return None;
        }
        if let Some(p) = parent
            && self.path.contains(&e)
        {
            self.problems.push(ParamProblem::Cycle {
                entity: e,
                parent: p,
            });
            return None;
        }
        if self.path.len() >= MAX_DEPTH {
            self.problems.push(ParamProblem::TooDeep { entity: e });
            return None;
        }
        if self.count >= MAX_NODES {
            if !self.full {
                self.full = true;
                self.problems.push(ParamProblem::TooLarge { entity: e });
            }
            return None;
        }
        let Some(definition) = self.world.get::<ParamDefinition>(e).cloned() else {
            self.problems
                .push(ParamProblem::NoDefinition { entity: e, parent });
            return None;
        };
        self.count += 1;
        let state = self.world.get::<ParamState>(e).cloned();
        self.check(e, &definition, state.as_ref());
        self.path.push(e);
        let mut children: Vec<ChildList> = definition
            .child_lists()
            .into_iter()
            .map(|(kind, list)| ChildList {
                kind,
                nodes: self.list(e, list),
            })
            .collect();
        if let (ParamDefinition::List { .. }, Some(ParamState::List(items))) = (&definition, &state)
        {
            children.push(ChildList {
                kind: ChildListKind::ListItems,
                nodes: self.list(e, items),
            });
        }
        self.path.pop();
        Some(ParamNode {
            entity: e,
            parameter: self.world.get::<Parameter>(e).cloned().unwrap_or_default(),
            definition,
            state,
            children,
        })
    }

    fn list(&mut self, parent: Entity, list: &[Entity]) -> Vec<ParamNode> {
        let mut seen = HashSet::with_capacity(list.len());
        let mut nodes = Vec::with_capacity(list.len());
        for &child in list {
            if !seen.insert(child) {
                self.problems
                    .push(ParamProblem::Duplicate { parent, child });
                continue;
            }
            if let Some(n) = self.node(child, Some(parent)) {
                nodes.push(n);
            }
        }
        nodes
    }

    fn check(&mut self, e: Entity, definition: &ParamDefinition, state: Option<&ParamState>) {
        let bounds = match definition {
            ParamDefinition::Range { min, max, .. } => Some((*min, *max)),
            ParamDefinition::Number {
                min: Some(min),
                max: Some(max),
                ..
            } => Some((*min, *max)),
            _ => None,
        };
        if let Some((min, max)) = bounds
            && min.compare(max) == Some(std::cmp::Ordering::Greater)
        {
            self.problems.push(ParamProblem::MinAboveMax {
                entity: e,
                min,
                max,
            });
        }
        if let ParamDefinition::Button { target, .. } = definition
            && self.world.get::<RpcEndpoint>(*target).is_none()
        {
            self.problems.push(ParamProblem::ButtonTarget {
                entity: e,
                target: *target,
            });
        }
        match state.map(|s| definition.check_state(s)) {
            Some(Err(StateError::KindMismatch { definition, state })) => {
                self.problems.push(ParamProblem::StateMismatch {
                    entity: e,
                    definition,
                    state,
                });
            }
            Some(Err(error)) => self
                .problems
                .push(ParamProblem::InvalidState { entity: e, error }),
            _ => {}
        }
    }
}

// ============================================================================================
// Edits (Downstream)
// ============================================================================================

/// Why a parameter edit could not be sent (Downstream).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamEditError {
    /// No such entity.
    #[error("entity {0} does not exist")]
    NoSuchEntity(Entity),
    /// The entity is not mirrored from an Upstream (edits go to the Upstream it came from).
    #[error("entity {0} is not mirrored from an Upstream")]
    NotMirrored(Entity),
    /// The entity has no [`ParamDefinition`].
    #[error("entity {0} has no ParamDefinition")]
    NoDefinition(Entity),
    /// The parameter is disabled (read-only).
    #[error("parameter {0} is disabled")]
    Disabled(Entity),
    /// The new state is of another kind than the parameter.
    #[error("parameter {entity} is a {definition:?}, the new state a {state:?} state")]
    KindMismatch {
        /// The parameter.
        entity: Entity,
        /// Its kind.
        definition: ParamKind,
        /// The new state's kind.
        state: ParamKind,
    },
    /// The parameter is not a button.
    #[error("parameter {0} is not a button")]
    NotAButton(Entity),
    /// The proposal could not be sent.
    #[error("{0}")]
    Proposal(#[from] ProposalError),
    /// The call could not be sent.
    #[error("{0}")]
    Invoke(#[from] RpcInvokeError),
    /// Proposals or RPC are not set up in this world (is the `NoodlesPlugin` added?).
    #[error("parameter edits are unavailable: {0}")]
    Unavailable(String),
}

/// Edits parameters mirrored from an Upstream (Downstream): [`set_state`](Self::set_state)
/// proposes a new [`ParamState`], [`press`](Self::press) calls a button's endpoint. The answers
/// arrive as [`ProposalReply`](crate::proposals::ProposalReply) and
/// [`RpcReplyReceived`](crate::rpc::RpcReplyReceived) messages; the accepted state comes back
/// with the Upstream's next transaction.
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_noodles2::parameters::{ParamEdits, ParamState, ParamValue, Parameter};
///
/// fn faster(mut edits: ParamEdits, params: Query<(Entity, &Parameter)>) {
///     for (e, p) in &params {
///         if p.label == "speed" {
///             match edits.set_state(e, ParamState::Range(ParamValue::Float(2.0))) {
///                 Ok(transaction_id) => info!("proposed as {transaction_id}"),
///                 Err(e) => warn!("{e}"),
///             }
///         }
///     }
/// }
/// ```
#[derive(SystemParam)]
pub struct ParamEdits<'w, 's> {
    proposals: Proposals<'w, 's>,
    rpc: RpcClient<'w, 's>,
    params: Query<
        'w,
        's,
        (
            Option<&'static Mirrored>,
            Option<&'static Parameter>,
            Option<&'static ParamDefinition>,
        ),
    >,
}

impl ParamEdits<'_, '_> {
    /// The link a parameter is mirrored from, and its definition, if it may be edited.
    fn editable(&self, e: Entity) -> Result<(Entity, &ParamDefinition), ParamEditError> {
        let (mirrored, parameter, definition) = self
            .params
            .get(e)
            .map_err(|_| ParamEditError::NoSuchEntity(e))?;
        let link = mirrored.ok_or(ParamEditError::NotMirrored(e))?.link;
        let definition = definition.ok_or(ParamEditError::NoDefinition(e))?;
        if parameter.is_some_and(|p| p.disabled) {
            return Err(ParamEditError::Disabled(e));
        }
        Ok((link, definition))
    }

    /// Propose `state` as the new state of `parameter` (a proposal that sets its
    /// `ParamStateComponent`, sent to the link it is mirrored from); returns the proposal's
    /// transaction id. The value is sent as given: a UI makes it valid first
    /// ([`ParamDefinition::constrain`], [`ParamDefinition::allows_id`]); the Upstream validates it
    /// again.
    pub fn set_state(
        &mut self,
        parameter: Entity,
        state: ParamState,
    ) -> Result<u32, ParamEditError> {
        let (link, definition) = self.editable(parameter)?;
        if definition.kind() != state.kind() {
            return Err(ParamEditError::KindMismatch {
                entity: parameter,
                definition: definition.kind(),
                state: state.kind(),
            });
        }
        let mut p = Proposal::new();
        p.insert(parameter, state);
        Ok(self.proposals.send(link, p)?)
    }

    /// Press button `button`: invoke its target endpoint with its payload; returns the invoke id
    /// of the call.
    pub fn press(&mut self, button: Entity) -> Result<u32, ParamEditError> {
        let (link, definition) = self.editable(button)?;
        let ParamDefinition::Button {
            target, payload, ..
        } = definition
        else {
            return Err(ParamEditError::NotAButton(button));
        };
        let (target, payload) = (*target, payload.clone());
        Ok(self.rpc.invoke(link, target, payload)?)
    }
}

/// [`ParamEdits::set_state`] with `&mut World`.
pub fn set_param_state(
    world: &mut World,
    parameter: Entity,
    state: ParamState,
) -> Result<u32, ParamEditError> {
    let mut s = SystemState::<ParamEdits>::new(world);
    let result = match s.get_mut(world) {
        Ok(mut edits) => edits.set_state(parameter, state),
        Err(e) => Err(ParamEditError::Unavailable(e.to_string())),
    };
    s.apply(world);
    result
}

/// [`ParamEdits::press`] with `&mut World`.
pub fn press_button(world: &mut World, button: Entity) -> Result<u32, ParamEditError> {
    let mut s = SystemState::<ParamEdits>::new(world);
    let result = match s.get_mut(world) {
        Ok(mut edits) => edits.press(button),
        Err(e) => Err(ParamEditError::Unavailable(e.to_string())),
    };
    s.apply(world);
    result
}

/// What a Downstream needs to edit parameters, and nothing more: proposals that set or remove
/// `ParamStateComponent`s, and calls (button presses; [`LinkPermissions::default`] allows
/// them). The Upstream still validates each state ([`ParamDefinition::correct_state`]).
pub fn parameter_permissions() -> LinkPermissions {
    LinkPermissions {
        propose_components: Grant::Only(HashSet::from([(
            ParamState::EXTENSION,
            ParamState::IDENTIFIER,
        )])),
        ..default()
    }
}

/// Mirrors [`ParameterRoot`], [`Parameter`], [`ParamDefinition`] and [`ParamState`]. Added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
#[derive(Debug, Clone, Copy, Default)]
pub struct ParametersPlugin;

impl Plugin for ParametersPlugin {
    fn build(&self, app: &mut App) {
        app.mirror_component::<ParameterRoot>()
            .mirror_component::<Parameter>()
            .mirror_component::<ParamDefinition>()
            .mirror_component::<ParamState>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Wire;

    fn fl(v: f64) -> ParamValue {
        ParamValue::Float(v)
    }

    fn range(min: ParamValue, max: ParamValue, step: Option<ParamValue>) -> ParamDefinition {
        ParamDefinition::Range {
            min,
            max,
            step,
            unit: String::new(),
            kind: RangeKind::Slider,
        }
    }

    fn select(none_allowed: bool) -> ParamDefinition {
        ParamDefinition::Select {
            none_allowed,
            options: vec![SelectOption::new(0, "a"), SelectOption::new(3, "b")],
            kind: SelectKind::Dropdown,
        }
    }

    #[test]
    fn float_ranges_clamp_and_snap() {
        let d = range(fl(0.0), fl(4.0), Some(fl(0.1)));
        let c = |v: f64| d.constrain(fl(v)).unwrap().as_f64();
        assert_eq!(c(-1.0), 0.0);
        assert_eq!(c(9.0), 4.0);
        assert!((c(1.234) - 1.2).abs() < 1e-9, "{}", c(1.234));
        assert!((c(1.26) - 1.3).abs() < 1e-9);
        assert_eq!(c(f64::NAN), 0.0);
        assert_eq!(c(f64::INFINITY), 4.0);
        // Snapping twice changes nothing (an Upstream that writes corrections back settles).
        for x in [0.05, 1.26, 2.7, 3.99] {
            let once = d.constrain(fl(x)).unwrap();
            assert_eq!(d.constrain(once).unwrap(), once);
        }
        // An integer value for a float range becomes a float.
        assert_eq!(
            d.constrain(ParamValue::Int(2)),
            Some(ParamValue::Float(2.0))
        );
    }

    #[test]
    fn integer_ranges_round_and_snap_from_the_minimum() {
        let d = range(
            ParamValue::Int(1),
            ParamValue::Int(21),
            Some(ParamValue::Int(5)),
        );
        let c = |v: ParamValue| d.constrain(v).unwrap();
        assert_eq!(c(ParamValue::Int(7)), ParamValue::Int(6));
        assert_eq!(c(ParamValue::Int(9)), ParamValue::Int(11));
        assert_eq!(c(ParamValue::Float(14.4)), ParamValue::Int(16));
        assert_eq!(c(ParamValue::Int(-50)), ParamValue::Int(1));
        assert_eq!(c(ParamValue::Int(i64::MAX)), ParamValue::Int(21));
        assert_eq!(c(ParamValue::Int(i64::MIN)), ParamValue::Int(1));
        assert_eq!(c(ParamValue::Float(f64::NAN)), ParamValue::Int(1));
        // Without a step, only rounding and clamping.
        let d = range(ParamValue::Int(0), ParamValue::Int(10), None);
        assert_eq!(
            d.constrain(ParamValue::Float(2.6)),
            Some(ParamValue::Int(3))
        );
    }

    #[test]
    fn numbers_with_open_limits() {
        let d = ParamDefinition::Number {
            is_int: true,
            min: None,
            max: Some(ParamValue::Int(100)),
            step: None,
        };
        assert_eq!(d.constrain(ParamValue::Int(-7)), Some(ParamValue::Int(-7)));
        assert_eq!(
            d.constrain(ParamValue::Float(1e300)),
            Some(ParamValue::Int(100))
        );
        let free = ParamDefinition::Number {
            is_int: false,
            min: None,
            max: None,
            step: None,
        };
        assert_eq!(
            free.constrain(ParamValue::Float(-3.5)),
            Some(ParamValue::Float(-3.5))
        );
        assert_eq!(ParamDefinition::Toggle.constrain(ParamValue::Int(1)), None);
    }

    #[test]
    fn bad_definitions_never_panic() {
        // min > max, NaN limits, a negative or NaN step, i64 extremes.
        let defs = [
            range(fl(5.0), fl(1.0), Some(fl(0.5))),
            range(fl(f64::NAN), fl(f64::NAN), Some(fl(f64::NAN))),
            range(
                ParamValue::Int(9),
                ParamValue::Int(2),
                Some(ParamValue::Int(-3)),
            ),
            range(
                ParamValue::Int(i64::MIN),
                ParamValue::Int(i64::MAX),
                Some(ParamValue::Int(i64::MAX)),
            ),
            range(fl(f64::NEG_INFINITY), fl(f64::INFINITY), Some(fl(1e-300))),
        ];
        let values = [
            ParamValue::Int(0),
            ParamValue::Int(i64::MIN),
            ParamValue::Int(i64::MAX),
            ParamValue::Float(f64::NAN),
            ParamValue::Float(f64::INFINITY),
            ParamValue::Float(-1e308),
        ];
        for d in &defs {
            for v in values {
                let c = d.constrain(v).unwrap();
                let _ = d.check_state(&ParamState::Range(c));
                let _ = d.correct_state(&ParamState::Range(v));
            }
        }
        // With min > max the minimum wins.
        assert_eq!(defs[0].constrain(fl(3.0)), Some(ParamValue::Float(5.0)));
    }

    #[test]
    fn select_and_mode_ids() {
        assert!(select(false).allows_id(3));
        assert!(!select(false).allows_id(1));
        assert!(!select(false).allows_id(-1));
        assert!(select(true).allows_id(-1));
        assert!(!select(true).allows_id(-2));
        assert_eq!(
            select(false).correct_state(&ParamState::Select(1)),
            Err(StateError::UnknownId(1))
        );
        assert_eq!(
            select(false).correct_state(&ParamState::Toggle(true)),
            Err(StateError::KindMismatch {
                definition: ParamKind::Select,
                state: ParamKind::Toggle
            })
        );
        let modes = ParamDefinition::Modes {
            none_allowed: false,
            options: vec![ModeOption { id: 2, ..default() }],
            kind: ModeKind::Tabs,
        };
        assert!(modes.allows_id(2) && !modes.allows_id(0));
        assert_eq!(modes.default_state(), ParamState::Modes(2));
        assert_eq!(
            ParamDefinition::Progress.correct_state(&ParamState::Progress(f64::NAN)),
            Ok(ParamState::Progress(0.0))
        );
        assert_eq!(
            ParamDefinition::Progress.check_state(&ParamState::Progress(1.5)),
            Err(StateError::OutOfRange {
                value: ParamValue::Float(1.5),
                min: Some(ParamValue::Float(0.0)),
                max: Some(ParamValue::Float(1.0))
            })
        );
    }

    /// Ids are entity bits (a test namespace where every entity has an id).
    struct Bits;
    impl EntityIds for Bits {
        fn id_of(&self, e: Entity) -> Option<u64> {
            (e != Entity::PLACEHOLDER).then(|| e.to_bits())
        }
    }
    impl EntityResolver for Bits {
        fn entity(&mut self, id: u64) -> Entity {
            Entity::from_bits(id)
        }
    }

    fn round_trip<T: MirrorComponent + PartialEq + fmt::Debug>(c: &T) -> T {
        let bytes = c.to_wire(&Bits).expect("encodable").encode().unwrap();
        let wire = T::Wire::decode(bytes.into()).unwrap();
        T::from_wire(wire, &mut Bits).unwrap()
    }

    #[test]
    fn wire_round_trip_cuts_strings_and_drops_unsendable_references() {
        let mut world = World::new();
        let a = world.spawn_empty().id();
        let b = world.spawn_empty().id();
        let long = "é".repeat(200); // 400 bytes
        let p = round_trip(&Parameter {
            disabled: true,
            label: long.clone(),
        });
        assert!(p.disabled);
        assert_eq!(p.label.len(), 254, "cut at a character boundary");
        let c = round_trip(&ParamDefinition::Container {
            kind: ContainerKind::Group,
            children: vec![a, Entity::PLACEHOLDER, b],
        });
        assert_eq!(
            c,
            ParamDefinition::Container {
                kind: ContainerKind::Group,
                children: vec![a, b]
            }
        );
        let button = ParamDefinition::Button {
            target: Entity::PLACEHOLDER,
            payload: vec![],
            kind: ButtonKind::Normal,
        };
        assert!(button.to_wire(&Bits).is_none());
        let s = round_trip(&ParamState::List(vec![Entity::PLACEHOLDER, b]));
        assert_eq!(s, ParamState::List(vec![b]));
    }

    fn param(world: &mut World, def: ParamDefinition, state: Option<ParamState>) -> Entity {
        let mut e = world.spawn((Parameter::new("p"), def));
        if let Some(s) = state {
            e.insert(s);
        }
        e.id()
    }

    fn container(children: Vec<Entity>) -> ParamDefinition {
        ParamDefinition::Container {
            kind: ContainerKind::Section,
            children,
        }
    }

    #[test]
    fn a_good_tree_has_no_problems() {
        let mut world = World::new();
        let toggle = param(
            &mut world,
            ParamDefinition::Toggle,
            Some(ParamState::Toggle(true)),
        );
        let item = param(
            &mut world,
            ParamDefinition::Progress,
            Some(ParamState::Progress(0.5)),
        );
        let list = param(
            &mut world,
            ParamDefinition::List {
                reorderable: true,
                allow_add: false,
                allow_remove: false,
            },
            Some(ParamState::List(vec![item])),
        );
        let modes = param(
            &mut world,
            ParamDefinition::Modes {
                none_allowed: true,
                options: vec![
                    ModeOption {
                        id: 0,
                        children: vec![toggle],
                        ..default()
                    },
                    // The same child in another list is fine.
                    ModeOption {
                        id: 1,
                        children: vec![toggle, list],
                        ..default()
                    },
                ],
                kind: ModeKind::Exclusive,
            },
            Some(ParamState::Modes(-1)),
        );
        let root = param(&mut world, container(vec![modes, toggle]), None);
        world.entity_mut(root).insert((ParameterRoot, Global));
        let tree = ParamTree::build(&world, root);
        assert_eq!(tree.problems, vec![]);
        let r = tree.root.as_ref().unwrap();
        assert_eq!(r.children_of(ChildListKind::Container).len(), 2);
        let m = &r.children_of(ChildListKind::Container)[0];
        assert_eq!(m.children_of(ChildListKind::Mode(1)).len(), 2);
        let l = &m.children_of(ChildListKind::Mode(1))[1];
        assert_eq!(l.children_of(ChildListKind::ListItems)[0].entity, item);
        assert_eq!(tree.nodes().count(), 7);
        assert_eq!(r.shown_state(), ParamState::Container);
        let roots = ParamTree::roots(&world);
        assert_eq!(roots.len(), 1);
        assert!(roots[0].global && roots[0].entity == root && roots[0].label == "p");
    }

    #[test]
    fn bad_trees_report_problems_and_do_not_recurse_forever() {
        let mut world = World::new();
        let gone = world.spawn_empty().id();
        world.despawn(gone);
        let bare = world.spawn(Name::new("no definition")).id();
        let bad_range = param(
            &mut world,
            range(ParamValue::Int(5), ParamValue::Int(1), None),
            Some(ParamState::Toggle(false)),
        );
        let bad_button = param(
            &mut world,
            ParamDefinition::Button {
                target: bare,
                payload: vec![],
                kind: ButtonKind::Destructive,
            },
            None,
        );
        let bad_select = param(&mut world, select(false), Some(ParamState::Select(7)));
        let a = param(&mut world, container(vec![]), None);
        let b = param(&mut world, container(vec![a]), None);
        // a → b → a: a cycle.
        world
            .entity_mut(a)
            .insert(container(vec![b, bad_range, bad_range]));
        let root = param(
            &mut world,
            container(vec![gone, bare, a, bad_button, bad_select]),
            None,
        );
        let tree = ParamTree::build(&world, root);
        let p = &tree.problems;
        assert!(p.contains(&ParamProblem::Missing {
            entity: gone,
            parent: Some(root)
        }));
        assert!(p.contains(&ParamProblem::NoDefinition {
            entity: bare,
            parent: Some(root)
        }));
        assert!(p.contains(&ParamProblem::Cycle {
            entity: a,
            parent: b
        }));
        assert!(p.contains(&ParamProblem::Duplicate {
            parent: a,
            child: bad_range
        }));
        assert!(p.contains(&ParamProblem::MinAboveMax {
            entity: bad_range,
            min: ParamValue::Int(5),
            max: ParamValue::Int(1)
        }));
        assert!(p.contains(&ParamProblem::StateMismatch {
            entity: bad_range,
            definition: ParamKind::Range,
            state: ParamKind::Toggle
        }));
        assert!(p.contains(&ParamProblem::ButtonTarget {
            entity: bad_button,
            target: bare
        }));
        assert!(p.contains(&ParamProblem::InvalidState {
            entity: bad_select,
            error: StateError::UnknownId(7)
        }));
        assert_eq!(p.len(), 8, "{p:#?}");
        // Every problem names an entity and reads as a sentence.
        for x in p {
            assert!(x.to_string().contains(&x.entity().to_string()), "{x}");
        }
        // The root itself missing, or without a definition.
        assert_eq!(
            ParamTree::build(&world, gone).problems,
            vec![ParamProblem::Missing {
                entity: gone,
                parent: None
            }]
        );
        assert!(ParamTree::build(&world, bare).root.is_none());
        // A self-listing root.
        let selfish = param(&mut world, container(vec![]), None);
        world.entity_mut(selfish).insert(container(vec![selfish]));
        let t = ParamTree::build(&world, selfish);
        assert_eq!(
            t.problems,
            vec![ParamProblem::Cycle {
                entity: selfish,
                parent: selfish
            }]
        );
    }

    #[test]
    fn deep_and_wide_trees_stop_at_their_limits() {
        let mut world = World::new();
        // A chain deeper than MAX_DEPTH.
        let mut next = param(&mut world, ParamDefinition::Toggle, None);
        for _ in 0..MAX_DEPTH + 10 {
            next = param(&mut world, container(vec![next]), None);
        }
        let t = ParamTree::build(&world, next);
        assert!(matches!(t.problems[..], [ParamProblem::TooDeep { .. }]));
        // Each level lists the next one in two modes: 2^40 paths, cut at MAX_NODES.
        let mut next = param(&mut world, ParamDefinition::Toggle, None);
        for _ in 0..40 {
            let opt = |id| ModeOption {
                id,
                children: vec![next],
                ..default()
            };
            next = param(
                &mut world,
                ParamDefinition::Modes {
                    none_allowed: false,
                    options: vec![opt(0), opt(1)],
                    kind: ModeKind::Tabs,
                },
                None,
            );
        }
        let t = ParamTree::build(&world, next);
        assert_eq!(t.nodes().count(), MAX_NODES);
        assert!(matches!(t.problems[..], [ParamProblem::TooLarge { .. }]));
    }
}

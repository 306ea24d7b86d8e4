//! RPC endpoints: entities that can be called (spec: README, "RPC and Interaction";
//! `main_sequence.jaw`, `RPCInvoke` / `RPCReply`; `core/components/rpc.jaw`).
//!
//! An entity with an [`RpcEndpoint`] (mirrored as `RPCEndpointComponent`, Core (0, 1)) is
//! callable. Arguments and results are [`Any`] values.
//!
//! **Upstream.** Share an entity with an [`RpcEndpoint`] and register a handler for its name.
//! A handler is a Bevy system taking `In<RpcCall>` and returning an [`RpcResult`]; a streaming
//! handler takes `In<(RpcCall, RpcResponder)>` and keeps the [`RpcResponder`] as long as it likes
//! (over several frames), calling [`RpcResponder::stream`] any number of times and finally
//! [`RpcResponder::complete`] or [`RpcResponder::error`].
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_noodles2::codec::{Any, any_type};
//! use bevy_noodles2::mirror::Shared;
//! use bevy_noodles2::rpc::{RpcAppExt, RpcCall, RpcEndpoint, RpcResult};
//!
//! # let mut app = App::new();
//! app.add_rpc_handler("add", |In(call): In<RpcCall>| -> RpcResult {
//!     Ok(Any::from(call.arg::<i64>(0)? + call.arg::<i64>(1)?))
//! })
//! .add_systems(Startup, |mut commands: Commands| {
//!     commands.spawn((Name::new("add"), RpcEndpoint::new("add").arg("a", any_type::I64).arg("b", any_type::I64), Shared));
//! });
//! ```
//!
//! Invocations are checked before a handler runs: an unknown endpoint entity, an entity without
//! an endpoint, an endpoint without a handler, the wrong number or types of arguments (against the
//! endpoint's argument hints) and an invoke id already in flight on the same link are answered with
//! `RPCError` (see [`codes`]). `this_invoke_id` 0 means "no reply": the handler runs and its result
//! is dropped; streaming handlers refuse such calls (nothing is sent, a warning is logged).
//!
//! **Downstream.** Invoke with the [`RpcClient`] system parameter (or [`invoke`] from exclusive
//! code) and read the replies as [`RpcReplyReceived`] messages.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_noodles2::codec::Any;
//! use bevy_noodles2::rpc::{RpcClient, RpcReplyReceived};
//!
//! fn call(mut rpc: RpcClient, link: Single<Entity, With<bevy_noodles2::net::NoodlesLink>>) {
//!     if let Some(endpoint) = rpc.find_endpoint(*link, "add") {
//!         let _ = rpc.invoke(*link, endpoint, [Any::from(2i64), Any::from(3i64)]);
//!     }
//! }
//!
//! fn replies(mut replies: MessageReader<RpcReplyReceived>) {
//!     for r in replies.read() {
//!         info!("call {} on link {}: {:?}", r.invoke_id, r.link, r.kind);
//!     }
//! }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use bevy::ecs::system::{SystemId, SystemParam, SystemState};
use bevy::prelude::*;

use crate::codec::{
    Any, AnyTypeID, EntityID, ErrorString, MainSequenceMessage, RPCArgumentHint,
    RPCArgumentHintList, RPCArgumentList, RPCComplete, RPCEndpointComponent, RPCError, RPCInvoke,
    RPCName, RPCReply, RPCReplyContent, RPCStreamResult, any_type, any_type_name,
};
use crate::link::{MessageKind, Role};
use crate::mirror::{
    EntityIds, EntityIndex, EntityResolver, MirrorAppExt, MirrorComponent, MirrorError, Mirrored,
    PATCH_LOCAL_BIT, cut_str,
};
use crate::net::{
    CloseLink, LinkClosed, LinkPermissions, LinkSendError, NoodlesConfig, NoodlesLink, RouterAppExt,
};
use crate::schedule::{self, NoodlesSystems};

/// `RPCError` codes this crate sends. Handlers choose their own codes (see [`RpcFailure`]).
pub mod codes {
    /// The endpoint id names no shared entity (unknown, or deleted).
    pub const UNKNOWN_ENDPOINT: u16 = 1;
    /// The entity exists but carries no `RPCEndpointComponent`.
    pub const NOT_AN_ENDPOINT: u16 = 2;
    /// No handler is registered for the endpoint's name.
    pub const NO_HANDLER: u16 = 3;
    /// Wrong number or types of arguments.
    pub const BAD_ARGUMENTS: u16 = 4;
    /// The invoke id is already in flight on this link.
    pub const DUPLICATE_INVOKE_ID: u16 = 5;
    /// The handler failed (could not run, or dropped the call without answering).
    pub const HANDLER_FAILED: u16 = 6;
    /// The link may not call this endpoint ([`LinkPermissions`](crate::net::LinkPermissions)).
    pub const DENIED: u16 = 7;
    /// The link has as many streaming calls unfinished as it may
    /// ([`NoodlesPlugin::max_calls_in_flight`](crate::NoodlesPlugin::max_calls_in_flight));
    /// retry when some finish.
    pub const BUSY: u16 = 8;
}

/// Default of [`NoodlesPlugin::max_calls_in_flight`](crate::NoodlesPlugin::max_calls_in_flight):
/// streaming calls one link may have unfinished at once.
pub const MAX_CALLS_IN_FLIGHT: usize = 1024;

/// The argument-hint name that makes an endpoint variadic: from there on, any number of
/// arguments of any type.
pub const VARIADIC: &str = "...";

/// A callable endpoint on an entity (`RPCEndpointComponent`, Core (0, 1)).
///
/// `arguments` are `(name, AnyTypeID)` hints (see [`any_type`]); the Upstream enforces them: the
/// count must match and each argument must have the hinted type, except that a hint of type
/// [`any_type::VOID`] accepts any value, and a last hint named [`VARIADIC`] (`...`) accepts any
/// number of further arguments of any type.
#[derive(Component, Debug, Clone, PartialEq, Eq, Default)]
pub struct RpcEndpoint {
    /// The endpoint's name (at most 255 bytes on the wire).
    pub name: String,
    /// Argument hints: name and `AnyTypeID` (at most 255).
    pub arguments: Vec<(String, u8)>,
}

impl RpcEndpoint {
    /// An endpoint without arguments.
    pub fn new(name: impl Into<String>) -> Self {
        RpcEndpoint {
            name: name.into(),
            arguments: Vec::new(),
        }
    }

    /// Add an argument hint.
    pub fn arg(mut self, name: impl Into<String>, type_id: u8) -> Self {
        self.arguments.push((name.into(), type_id));
        self
    }

    /// Accept any further arguments (adds the `...` hint).
    pub fn variadic(self) -> Self {
        self.arg(VARIADIC, any_type::VOID)
    }

    /// Does the endpoint take any number of trailing arguments?
    pub fn is_variadic(&self) -> bool {
        self.arguments.last().is_some_and(|(n, _)| n == VARIADIC)
    }

    /// Check arguments against the hints; the error says what is wrong.
    pub fn check_args(&self, args: &[Any]) -> Result<(), ArgumentError> {
        let fixed = if self.is_variadic() {
            &self.arguments[..self.arguments.len() - 1]
        } else {
            &self.arguments[..]
        };
        let count_ok = if self.is_variadic() {
            args.len() >= fixed.len()
        } else {
            args.len() == fixed.len()
        };
        if !count_ok {
            return Err(ArgumentError::Count {
                endpoint: self.name.clone(),
                names: self.arguments.iter().map(|(n, _)| n.clone()).collect(),
                expected: fixed.len(),
                variadic: self.is_variadic(),
                got: args.len(),
            });
        }
        for (i, ((name, ty), a)) in fixed.iter().zip(args).enumerate() {
            if *ty != any_type::VOID && a.discriminant() != *ty {
                return Err(ArgumentError::Type {
                    endpoint: self.name.clone(),
                    index: i,
                    name: Some(name.clone()),
                    expected: any_type_name(*ty),
                    got: a.kind_name(),
                });
            }
        }
        Ok(())
    }
}

/// Arguments that do not fit an endpoint (code [`codes::BAD_ARGUMENTS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    /// The wrong number of arguments.
    #[error(
        "`{endpoint}` takes {}{expected} argument{} ({}), got {got}",
        if *variadic { "at least " } else { "" },
        if *expected == 1 { "" } else { "s" },
        names.join(", ")
    )]
    Count {
        /// The endpoint.
        endpoint: String,
        /// Its argument names.
        names: Vec<String>,
        /// How many it takes (at least, if variadic).
        expected: usize,
        /// Does it take more?
        variadic: bool,
        /// How many came.
        got: usize,
    },
    /// A missing argument (a handler asked for one past the end).
    #[error("`{endpoint}`: missing {} (got {got} arguments)", label(*index, name.as_deref()))]
    Missing {
        /// The endpoint.
        endpoint: String,
        /// Which argument.
        index: usize,
        /// Its name, if the endpoint names it.
        name: Option<String>,
        /// How many came.
        got: usize,
    },
    /// An argument of the wrong type.
    #[error("`{endpoint}`: {} must be {expected}, got {got}", label(*index, name.as_deref()))]
    Type {
        /// The endpoint.
        endpoint: String,
        /// Which argument.
        index: usize,
        /// Its name, if the endpoint names it.
        name: Option<String>,
        /// The type it must have.
        expected: &'static str,
        /// What came instead.
        got: &'static str,
    },
    /// An argument that does not convert to what the handler asked for.
    #[error("`{endpoint}`: {}: {error}", label(*index, name.as_deref()))]
    Convert {
        /// The endpoint.
        endpoint: String,
        /// Which argument.
        index: usize,
        /// Its name, if the endpoint names it.
        name: Option<String>,
        /// Why it does not convert.
        error: String,
    },
}

fn label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("argument {index} (`{n}`)"),
        None => format!("argument {index}"),
    }
}

impl From<ArgumentError> for RpcFailure {
    fn from(e: ArgumentError) -> Self {
        RpcFailure::bad_arguments(e.to_string())
    }
}

impl MirrorComponent for RpcEndpoint {
    type Wire = RPCEndpointComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 1;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<RPCEndpointComponent> {
        Some(RPCEndpointComponent {
            name: RPCName(cut_str(&self.name, u8::MAX as usize)),
            arguments: RPCArgumentHintList(
                self.arguments
                    .iter()
                    .take(u8::MAX as usize)
                    .map(|(n, t)| RPCArgumentHint {
                        name: RPCName(cut_str(n, u8::MAX as usize)),
                        arg_type: AnyTypeID::new(*t),
                    })
                    .collect(),
            ),
        })
    }
    fn from_wire(w: RPCEndpointComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(RpcEndpoint {
            name: w.name.0,
            arguments: w
                .arguments
                .0
                .into_iter()
                .map(|h| (h.name.0, h.arg_type.type_id))
                .collect(),
        })
    }
}

// ============================================================================================
// Upstream: calls, handlers, responders
// ============================================================================================

/// A handler's failure: an `RPCError` code and a UTF-8 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcFailure {
    /// The `RPCError` code.
    pub code: u16,
    /// What went wrong.
    pub message: String,
}

impl RpcFailure {
    /// A failure with a code and message.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        RpcFailure {
            code,
            message: message.into(),
        }
    }

    /// A bad-arguments failure ([`codes::BAD_ARGUMENTS`]).
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_ARGUMENTS, message)
    }
}

/// What a (non-streaming) handler returns.
pub type RpcResult = Result<Any, RpcFailure>;

/// One invocation, as a handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCall {
    /// The calling link.
    pub link: Entity,
    /// The caller's `this_invoke_id` (0: no reply is wanted).
    pub invoke_id: u32,
    /// The endpoint entity.
    pub endpoint: Entity,
    /// Its canonical id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub name: String,
    /// The argument hints' names.
    pub arg_names: Vec<String>,
    /// The arguments.
    pub args: Vec<Any>,
    /// Who the calling link's listener admitted (`None` without authentication).
    pub principal: Option<crate::auth::Principal>,
}

impl RpcCall {
    /// Argument `index` as a `T`, or a [`RpcFailure`] ([`codes::BAD_ARGUMENTS`]) that names the
    /// endpoint, the argument and both types.
    pub fn arg<T>(&self, index: usize) -> Result<T, RpcFailure>
    where
        T: TryFrom<Any>,
        T::Error: fmt::Display,
    {
        self.arg_checked(index).map_err(RpcFailure::from)
    }

    /// Argument `index` as a `T`, or the typed [`ArgumentError`].
    pub fn arg_checked<T>(&self, index: usize) -> Result<T, ArgumentError>
    where
        T: TryFrom<Any>,
        T::Error: fmt::Display,
    {
        let name = self
            .arg_names
            .get(index)
            .filter(|n| *n != VARIADIC)
            .cloned();
        let Some(a) = self.args.get(index) else {
            return Err(ArgumentError::Missing {
                endpoint: self.name.clone(),
                index,
                name,
                got: self.args.len(),
            });
        };
        T::try_from(a.clone()).map_err(|e| ArgumentError::Convert {
            endpoint: self.name.clone(),
            index,
            name,
            error: e.to_string(),
        })
    }

    /// Does the caller want a reply?
    pub fn wants_reply(&self) -> bool {
        self.invoke_id != 0
    }
}

enum Handler {
    Call(SystemId<In<RpcCall>, RpcResult>),
    Stream(SystemId<In<(RpcCall, RpcResponder)>>),
}

/// Handlers by endpoint name (Upstream).
#[derive(Resource, Default)]
pub struct RpcHandlers {
    by_name: HashMap<String, Handler>,
}

impl RpcHandlers {
    /// Is a handler registered for `name`?
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

/// Registers RPC handlers on an [`App`].
pub trait RpcAppExt {
    /// Handle calls to endpoints named `name` with a system taking `In<RpcCall>` and returning
    /// an [`RpcResult`] (`Ok` completes, `Err` fails). A second registration replaces the first.
    fn add_rpc_handler<M>(
        &mut self,
        name: impl Into<String>,
        handler: impl IntoSystem<In<RpcCall>, RpcResult, M> + 'static,
    ) -> &mut Self;

    /// Handle calls to endpoints named `name` with a streaming handler: a system taking
    /// `In<(RpcCall, RpcResponder)>` that answers through the responder, now or in later frames.
    fn add_rpc_stream_handler<M>(
        &mut self,
        name: impl Into<String>,
        handler: impl IntoSystem<In<(RpcCall, RpcResponder)>, (), M> + 'static,
    ) -> &mut Self;
}

impl RpcAppExt for App {
    fn add_rpc_handler<M>(
        &mut self,
        name: impl Into<String>,
        handler: impl IntoSystem<In<RpcCall>, RpcResult, M> + 'static,
    ) -> &mut Self {
        let id = self.world_mut().register_system(handler);
        self.world_mut()
            .get_resource_or_init::<RpcHandlers>()
            .by_name
            .insert(name.into(), Handler::Call(id));
        self
    }

    fn add_rpc_stream_handler<M>(
        &mut self,
        name: impl Into<String>,
        handler: impl IntoSystem<In<(RpcCall, RpcResponder)>, (), M> + 'static,
    ) -> &mut Self {
        let id = self.world_mut().register_system(handler);
        self.world_mut()
            .get_resource_or_init::<RpcHandlers>()
            .by_name
            .insert(name.into(), Handler::Stream(id));
        self
    }
}

type Outgoing = (Entity, u32, RPCReplyContent);

/// Answers one streaming call: any number of [`stream`](Self::stream)s, then one
/// [`complete`](Self::complete) or [`error`](Self::error). Dropping it unanswered sends an
/// `RPCError` ([`codes::HANDLER_FAILED`]). Replies go out at the end of the frame's apply step and
/// in the send step.
pub struct RpcResponder {
    link: Entity,
    invoke_id: u32,
    tx: crossbeam_channel::Sender<Outgoing>,
    finished: bool,
}

impl fmt::Debug for RpcResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcResponder")
            .field("link", &self.link)
            .field("invoke_id", &self.invoke_id)
            .finish()
    }
}

impl RpcResponder {
    /// The calling link.
    pub fn link(&self) -> Entity {
        self.link
    }

    /// The call's invoke id.
    pub fn invoke_id(&self) -> u32 {
        self.invoke_id
    }

    fn push(&self, content: RPCReplyContent) {
        // The receiver lives in a resource for the whole app; a send only fails while it shuts down.
        let _ = self.tx.send((self.link, self.invoke_id, content));
    }

    /// Send one intermediate result (`RPCStreamResult`).
    pub fn stream(&self, value: impl Into<Any>) {
        self.push(RPCReplyContent::RPCStreamResult(RPCStreamResult {
            result: value.into(),
        }));
    }

    /// Finish with a result (`RPCComplete`).
    pub fn complete(mut self, value: impl Into<Any>) {
        self.finished = true;
        self.push(RPCReplyContent::RPCComplete(RPCComplete {
            result: value.into(),
        }));
    }

    /// Finish with an error (`RPCError`).
    pub fn error(mut self, code: u16, message: impl Into<String>) {
        self.finished = true;
        self.push(RPCReplyContent::RPCError(RPCError {
            code,
            message: ErrorString(message.into()),
        }));
    }

    /// Finish with a handler's [`RpcFailure`].
    pub fn fail(self, failure: RpcFailure) {
        self.error(failure.code, failure.message);
    }

    /// Finish with the outcome of an [`RpcResult`].
    pub fn finish(self, result: RpcResult) {
        match result {
            Ok(v) => self.complete(v),
            Err(f) => self.fail(f),
        }
    }
}

impl Drop for RpcResponder {
    fn drop(&mut self) {
        if !self.finished {
            self.push(RPCReplyContent::RPCError(RPCError {
                code: codes::HANDLER_FAILED,
                message: ErrorString("the handler dropped the call without completing it".into()),
            }));
        }
    }
}

/// Upstream bookkeeping: calls in flight per link, and the responders' queue.
#[derive(Resource)]
pub struct RpcServer {
    /// `(link, invoke_id)` of streaming calls not finished yet.
    in_flight: HashSet<(Entity, u32)>,
    /// How many of them each link has.
    per_link: HashMap<Entity, usize>,
    tx: crossbeam_channel::Sender<Outgoing>,
    rx: crossbeam_channel::Receiver<Outgoing>,
}

impl Default for RpcServer {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        RpcServer {
            in_flight: HashSet::new(),
            per_link: HashMap::new(),
            tx,
            rx,
        }
    }
}

impl RpcServer {
    /// Whether streaming call `invoke_id` of `link` is unfinished.
    pub fn is_in_flight(&self, link: Entity, invoke_id: u32) -> bool {
        self.in_flight.contains(&(link, invoke_id))
    }

    /// How many streaming calls are unfinished, on every link.
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// How many streaming calls of `link` are unfinished.
    pub fn in_flight_on(&self, link: Entity) -> usize {
        self.per_link.get(&link).copied().unwrap_or(0)
    }

    fn start(&mut self, link: Entity, invoke_id: u32) {
        if self.in_flight.insert((link, invoke_id)) {
            *self.per_link.entry(link).or_default() += 1;
        }
    }

    fn finish(&mut self, link: Entity, invoke_id: u32) {
        if self.in_flight.remove(&(link, invoke_id))
            && let Some(n) = self.per_link.get_mut(&link)
        {
            *n -= 1;
            if *n == 0 {
                self.per_link.remove(&link);
            }
        }
    }

    fn forget_link(&mut self, link: Entity) {
        if self.per_link.remove(&link).is_some() {
            self.in_flight.retain(|(l, _)| *l != link);
        }
    }
}

fn send_reply(world: &World, link: Entity, invoke_id: u32, content: RPCReplyContent) {
    if invoke_id == 0 {
        return;
    }
    let Some(l) = world.get::<NoodlesLink>(link) else {
        return;
    };
    if !l.is_open() {
        return;
    }
    if let Err(e) = l.send_message(&MainSequenceMessage::RPCReply(RPCReply {
        this_invoke_id: invoke_id,
        content,
    })) {
        warn!("cannot send an RPC reply ({invoke_id}) on link {link}: {e}");
    }
}

fn send_error(world: &World, link: Entity, invoke_id: u32, code: u16, message: String) {
    if invoke_id == 0 {
        debug!("RPC call without reply on link {link} failed: {message}");
    } else {
        debug!("RPC call {invoke_id} on link {link} failed: {message}");
    }
    send_reply(
        world,
        link,
        invoke_id,
        RPCReplyContent::RPCError(RPCError {
            code,
            message: ErrorString(message),
        }),
    );
}

/// Upstream: handle one `RPCInvoke`.
fn handle_invoke(world: &mut World, link: Entity, inv: RPCInvoke) {
    if world
        .get::<NoodlesLink>(link)
        .is_none_or(|l| l.role != Some(Role::Upstream))
    {
        return;
    }
    let id = inv.this_invoke_id;
    let eid = inv.endpoint.id.get();
    let duplicate = id != 0
        && world
            .get_resource_or_init::<RpcServer>()
            .is_in_flight(link, id);
    if duplicate {
        return send_error(
            world,
            link,
            id,
            codes::DUPLICATE_INVOKE_ID,
            format!("invoke id {id} is already in flight on this link"),
        );
    }
    let entity = if eid & PATCH_LOCAL_BIT != 0 {
        None
    } else {
        world.resource::<EntityIndex>().shared(eid)
    };
    let Some(entity) = entity.filter(|e| world.get_entity(*e).is_ok()) else {
        return send_error(
            world,
            link,
            id,
            codes::UNKNOWN_ENDPOINT,
            format!("no shared entity #{eid} (unknown, or deleted)"),
        );
    };
    let Some(endpoint) = world.get::<RpcEndpoint>(entity).cloned() else {
        return send_error(
            world,
            link,
            id,
            codes::NOT_AN_ENDPOINT,
            format!("entity #{eid} is not an RPC endpoint"),
        );
    };
    let handler =
        world
            .get_resource::<RpcHandlers>()
            .and_then(|h| match h.by_name.get(&endpoint.name) {
                Some(Handler::Call(s)) => Some(Handler::Call(*s)),
                Some(Handler::Stream(s)) => Some(Handler::Stream(*s)),
                None => None,
            });
    let allowed = world
        .get::<LinkPermissions>(link)
        .is_some_and(|p| p.call.allows(&endpoint.name));
    if !allowed {
        return send_error(
            world,
            link,
            id,
            codes::DENIED,
            format!(
                "this link may not call endpoint `{}` (#{eid}; see LinkPermissions)",
                endpoint.name
            ),
        );
    }
    let Some(handler) = handler else {
        return send_error(
            world,
            link,
            id,
            codes::NO_HANDLER,
            format!("endpoint `{}` (#{eid}) has no handler", endpoint.name),
        );
    };
    let principal = world
        .get::<NoodlesLink>(link)
        .and_then(|l| l.principal.clone());
    let args = inv.args.0;
    if let Err(e) = endpoint.check_args(&args) {
        return send_error(world, link, id, codes::BAD_ARGUMENTS, e.to_string());
    }
    let call = RpcCall {
        link,
        invoke_id: id,
        endpoint: entity,
        endpoint_id: eid,
        name: endpoint.name.clone(),
        arg_names: endpoint.arguments.iter().map(|(n, _)| n.clone()).collect(),
        args,
        principal,
    };
    match handler {
        Handler::Call(system) => {
            let reply = match world.run_system_with(system, call) {
                Ok(Ok(v)) => RPCReplyContent::RPCComplete(RPCComplete { result: v }),
                Ok(Err(f)) => RPCReplyContent::RPCError(RPCError {
                    code: f.code,
                    message: ErrorString(f.message),
                }),
                Err(e) => RPCReplyContent::RPCError(RPCError {
                    code: codes::HANDLER_FAILED,
                    message: ErrorString(format!(
                        "the handler of `{}` could not run: {e}",
                        endpoint.name
                    )),
                }),
            };
            send_reply(world, link, id, reply);
        }
        Handler::Stream(system) => {
            if id == 0 {
                warn!(
                    "refusing a call to streaming endpoint `{}` with invoke id 0 from link {link} (streaming needs a reply)",
                    endpoint.name
                );
                return;
            }
            let limit = world
                .get_resource::<NoodlesConfig>()
                .map_or(MAX_CALLS_IN_FLIGHT, |c| c.max_calls_in_flight);
            let busy = world.resource::<RpcServer>().in_flight_on(link);
            if busy >= limit {
                return send_error(
                    world,
                    link,
                    id,
                    codes::BUSY,
                    format!(
                        "this link has {busy} streaming calls unfinished, the most it may; \
                         retry when some finish"
                    ),
                );
            }
            let responder = {
                let mut server = world.resource_mut::<RpcServer>();
                server.start(link, id);
                RpcResponder {
                    link,
                    invoke_id: id,
                    tx: server.tx.clone(),
                    finished: false,
                }
            };
            if let Err(e) = world.run_system_with(system, (call, responder)) {
                // The responder was dropped unanswered and already queued an error.
                warn!(
                    "the streaming handler of `{}` could not run: {e}",
                    endpoint.name
                );
            }
        }
    }
}

/// Send what responders queued; a final reply ends the call's time in flight.
fn flush_replies(world: &mut World) {
    let Some(server) = world.get_resource::<RpcServer>() else {
        return;
    };
    let queued: Vec<Outgoing> = server.rx.try_iter().collect();
    if queued.is_empty() {
        return;
    }
    for (link, id, content) in queued {
        let terminal = !matches!(content, RPCReplyContent::RPCStreamResult(_));
        let live = world.resource::<RpcServer>().is_in_flight(link, id);
        if !live {
            // Link closed, or the call already ended: nothing more may be sent for it.
            continue;
        }
        send_reply(world, link, id, content);
        if terminal {
            world.resource_mut::<RpcServer>().finish(link, id);
        }
    }
}

fn flush_replies_system(world: &mut World) {
    flush_replies(world);
}

// ============================================================================================
// Downstream: invoking, replies
// ============================================================================================

/// Which endpoint to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcTarget {
    /// A mirrored endpoint entity.
    Entity(Entity),
    /// A canonical entity id.
    Id(u64),
}

impl From<Entity> for RpcTarget {
    fn from(e: Entity) -> Self {
        RpcTarget::Entity(e)
    }
}

impl From<u64> for RpcTarget {
    fn from(id: u64) -> Self {
        RpcTarget::Id(id)
    }
}

/// Why an invocation could not be sent (Downstream).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RpcInvokeError {
    /// No link entity.
    #[error("link {0} does not exist")]
    NoSuchLink(Entity),
    /// The link is not in the main sequence.
    #[error("link {0} is not open")]
    NotOpen(Entity),
    /// Only a Downstream invokes.
    #[error("we are not Downstream on link {0}: only the Downstream invokes")]
    NotDownstream(Entity),
    /// The entity is not mirrored from this link.
    #[error("entity {entity} is not mirrored from link {link}")]
    NotMirrored {
        /// The entity.
        entity: Entity,
        /// The link the call goes to.
        link: Entity,
    },
    /// More than 255 arguments.
    #[error("{0} arguments; at most 255 fit an RPCInvoke")]
    TooManyArguments(usize),
    /// Every invoke id is in flight.
    #[error("no free invoke id on link {0}")]
    NoFreeInvokeId(Entity),
    /// The link refused the frame.
    #[error("{0}")]
    Send(#[from] LinkSendError),
    /// RPC is not set up in this world (is the `NoodlesPlugin` added?).
    #[error("RPC is unavailable: {0}")]
    Unavailable(String),
}

/// Downstream bookkeeping: invoke ids in flight per link.
#[derive(Resource, Debug, Default)]
pub struct RpcClientState {
    next: HashMap<Entity, u32>,
    /// `(link, invoke_id)` of calls without their final reply yet: when they were invoked, and
    /// whether a reply (a streamed result) arrived already.
    in_flight: HashMap<(Entity, u32), (std::time::Instant, bool)>,
}

impl RpcClientState {
    /// Is call `invoke_id` on `link` still waiting for its final reply?
    pub fn is_in_flight(&self, link: Entity, invoke_id: u32) -> bool {
        self.in_flight.contains_key(&(link, invoke_id))
    }

    /// How many calls wait for their final reply.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }
}

/// Invokes endpoints (Downstream). See the [module docs](self).
#[derive(SystemParam)]
pub struct RpcClient<'w, 's> {
    links: Query<'w, 's, &'static NoodlesLink>,
    mirrored: Query<'w, 's, &'static Mirrored>,
    endpoints: Query<'w, 's, (Entity, &'static RpcEndpoint, &'static Mirrored)>,
    state: ResMut<'w, RpcClientState>,
}

impl RpcClient<'_, '_> {
    /// The mirrored endpoint entity named `name` on `link`, if any.
    pub fn find_endpoint(&self, link: Entity, name: &str) -> Option<Entity> {
        self.endpoints
            .iter()
            .find(|(_, ep, m)| m.link == link && ep.name == name)
            .map(|(e, _, _)| e)
    }

    /// Invoke an endpoint; returns the invoke id its replies will carry (never 0; ids in flight on
    /// the link are skipped).
    pub fn invoke(
        &mut self,
        link: Entity,
        endpoint: impl Into<RpcTarget>,
        args: impl IntoIterator<Item = Any>,
    ) -> Result<u32, RpcInvokeError> {
        self.check_link(link)?;
        let endpoint_id = self.endpoint_id(link, endpoint.into())?;
        let args: Vec<Any> = args.into_iter().collect();
        if args.len() > u8::MAX as usize {
            return Err(RpcInvokeError::TooManyArguments(args.len()));
        }
        let next = self.state.next.entry(link).or_insert(0);
        let mut id = *next;
        let mut tries = 0u64;
        loop {
            id = id.wrapping_add(1);
            if id != 0 && !self.state.in_flight.contains_key(&(link, id)) {
                break;
            }
            tries += 1;
            if tries > u32::MAX as u64 {
                return Err(RpcInvokeError::NoFreeInvokeId(link));
            }
        }
        *self.state.next.entry(link).or_insert(0) = id;
        let l = self
            .links
            .get(link)
            .map_err(|_| RpcInvokeError::NoSuchLink(link))?;
        send_invoke(l, id, endpoint_id, args)?;
        self.state
            .in_flight
            .insert((link, id), (std::time::Instant::now(), false));
        Ok(id)
    }

    /// Invoke without wanting a reply (`this_invoke_id` 0). Streaming endpoints refuse this.
    pub fn notify(
        &mut self,
        link: Entity,
        endpoint: impl Into<RpcTarget>,
        args: impl IntoIterator<Item = Any>,
    ) -> Result<(), RpcInvokeError> {
        let l = self.check_link(link)?;
        let endpoint_id = self.endpoint_id(link, endpoint.into())?;
        let args: Vec<Any> = args.into_iter().collect();
        if args.len() > u8::MAX as usize {
            return Err(RpcInvokeError::TooManyArguments(args.len()));
        }
        send_invoke(l, 0, endpoint_id, args)?;
        Ok(())
    }

    fn check_link(&self, link: Entity) -> Result<&NoodlesLink, RpcInvokeError> {
        let l = self
            .links
            .get(link)
            .map_err(|_| RpcInvokeError::NoSuchLink(link))?;
        if !l.is_open() {
            return Err(RpcInvokeError::NotOpen(link));
        }
        if l.role != Some(Role::Downstream) {
            return Err(RpcInvokeError::NotDownstream(link));
        }
        Ok(l)
    }

    fn endpoint_id(&self, link: Entity, target: RpcTarget) -> Result<u64, RpcInvokeError> {
        match target {
            RpcTarget::Id(id) => Ok(id),
            RpcTarget::Entity(e) => self
                .mirrored
                .get(e)
                .ok()
                .filter(|m| m.link == link)
                .map(|m| m.id)
                .ok_or(RpcInvokeError::NotMirrored { entity: e, link }),
        }
    }
}

fn send_invoke(
    l: &NoodlesLink,
    id: u32,
    endpoint: u64,
    args: Vec<Any>,
) -> Result<(), LinkSendError> {
    l.send_message(&MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: id,
        endpoint: EntityID::new(endpoint),
        args: RPCArgumentList(args),
    }))
}

/// [`RpcClient::invoke`] for exclusive systems, tests and tools with `&mut World`.
pub fn invoke(
    world: &mut World,
    link: Entity,
    endpoint: impl Into<RpcTarget>,
    args: impl IntoIterator<Item = Any>,
) -> Result<u32, RpcInvokeError> {
    let mut state = SystemState::<RpcClient>::new(world);
    let result = match state.get_mut(world) {
        Ok(mut c) => c.invoke(link, endpoint, args),
        Err(e) => Err(RpcInvokeError::Unavailable(e.to_string())),
    };
    state.apply(world);
    result
}

/// [`RpcClient::find_endpoint`] with `&mut World`.
pub fn find_endpoint(world: &mut World, link: Entity, name: &str) -> Option<Entity> {
    let mut q = world.query::<(Entity, &RpcEndpoint, &Mirrored)>();
    q.iter(world)
        .find(|(_, ep, m)| m.link == link && ep.name == name)
        .map(|(e, _, _)| e)
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcReplyKind {
    /// Final result (`RPCComplete`).
    Complete(Any),
    /// Intermediate result of a streaming call (`RPCStreamResult`).
    Stream(Any),
    /// Failure (`RPCError`): code and message. Final.
    Error(u16, String),
}

impl RpcReplyKind {
    /// Does this reply end the call?
    pub fn is_final(&self) -> bool {
        !matches!(self, RpcReplyKind::Stream(_))
    }
}

/// Downstream: a reply to one of our invocations arrived.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct RpcReplyReceived {
    /// The link the call went on.
    pub link: Entity,
    /// The call's invoke id.
    pub invoke_id: u32,
    /// What it says.
    pub kind: RpcReplyKind,
    /// On the first reply of a call (a streamed result or the final one): the time since it was
    /// invoked. `None` on later replies and on replies to calls that are not in flight.
    pub latency: Option<std::time::Duration>,
}

/// Downstream: handle one `RPCReply`.
fn handle_reply(world: &mut World, link: Entity, r: RPCReply) {
    let kind = match r.content {
        RPCReplyContent::RPCComplete(c) => RpcReplyKind::Complete(c.result),
        RPCReplyContent::RPCStreamResult(s) => RpcReplyKind::Stream(s.result),
        RPCReplyContent::RPCError(e) => RpcReplyKind::Error(e.code, e.message.0),
    };
    let mut state = world.get_resource_or_init::<RpcClientState>();
    let key = (link, r.this_invoke_id);
    let latency = match state.in_flight.get_mut(&key) {
        Some((invoked, answered)) => {
            let first = !std::mem::replace(answered, true);
            first.then(|| invoked.elapsed())
        }
        None => {
            debug!(
                "RPC reply {} on link {link} for a call that is not in flight",
                r.this_invoke_id
            );
            None
        }
    };
    if kind.is_final() {
        state.in_flight.remove(&key);
    }
    world.write_message(RpcReplyReceived {
        link,
        invoke_id: r.this_invoke_id,
        kind,
        latency,
    });
}

/// Calls on a closed link are over, on both sides.
fn forget_closed(
    mut closed: MessageReader<LinkClosed>,
    mut server: ResMut<RpcServer>,
    mut client: ResMut<RpcClientState>,
) {
    for c in closed.read() {
        server.forget_link(c.link);
        client.in_flight.retain(|(l, _), _| *l != c.link);
        client.next.remove(&c.link);
    }
}

// ============================================================================================
// Demo endpoints
// ============================================================================================

/// The demo endpoints `examples/host.rs` shares (and the tests call):
///
/// - `echo ...`: completes with its arguments, unchanged, as an array;
/// - `count_entities`: completes with the number of shared entities;
/// - `countdown n`: streams `n, n-1, ..., 1`, one per frame, then completes with 0.
#[derive(Debug, Clone, Default)]
pub struct DemoEndpointsPlugin;

/// A running `countdown` call.
#[derive(Component, Debug)]
pub struct Countdown {
    responder: Option<RpcResponder>,
    next: i64,
}

/// Largest `countdown` accepted.
pub const MAX_COUNTDOWN: i64 = 100_000;

impl Plugin for DemoEndpointsPlugin {
    fn build(&self, app: &mut App) {
        app.add_rpc_handler("echo", |In(call): In<RpcCall>| -> RpcResult {
            Ok(Any::from(call.args))
        })
        .add_rpc_handler(
            "count_entities",
            |In(_): In<RpcCall>, shared: Query<(), With<crate::mirror::Shared>>| -> RpcResult {
                Ok(Any::I64(shared.iter().count() as i64))
            },
        )
        .add_rpc_stream_handler(
            "countdown",
            |In((call, responder)): In<(RpcCall, RpcResponder)>, mut commands: Commands| match call
                .arg::<i64>(
                0,
            ) {
                Ok(n) if (0..=MAX_COUNTDOWN).contains(&n) => {
                    commands.spawn(Countdown {
                        responder: Some(responder),
                        next: n,
                    });
                }
                Ok(n) => responder.fail(RpcFailure::bad_arguments(format!(
                    "`countdown`: n must be in 0..={MAX_COUNTDOWN}, got {n}"
                ))),
                Err(f) => responder.fail(f),
            },
        )
        .add_systems(Startup, |mut commands: Commands| {
            use crate::mirror::Shared;
            commands.spawn((
                Name::new("echo"),
                RpcEndpoint::new("echo").variadic(),
                Shared,
            ));
            commands.spawn((
                Name::new("count_entities"),
                RpcEndpoint::new("count_entities"),
                Shared,
            ));
            commands.spawn((
                Name::new("countdown"),
                RpcEndpoint::new("countdown").arg("n", any_type::I64),
                Shared,
            ));
        })
        .add_systems(Update, run_countdowns);
    }
}

fn run_countdowns(mut q: Query<(Entity, &mut Countdown)>, mut commands: Commands) {
    for (e, mut c) in &mut q {
        if c.next > 0 {
            if let Some(r) = &c.responder {
                r.stream(c.next);
            }
            c.next -= 1;
        } else {
            if let Some(r) = c.responder.take() {
                r.complete(0i64);
            }
            commands.entity(e).despawn();
        }
    }
}

/// The router's handler of `RPCInvoke`s (links where this node is Upstream).
fn route_invoke(
    world: &mut World,
    link: Entity,
    msg: MainSequenceMessage,
) -> Result<(), CloseLink> {
    if let MainSequenceMessage::RPCInvoke(i) = msg {
        handle_invoke(world, link, i);
    }
    Ok(())
}

/// The router's handler of `RPCReply`s (links where this node is Downstream).
fn route_reply(world: &mut World, link: Entity, msg: MainSequenceMessage) -> Result<(), CloseLink> {
    if let MainSequenceMessage::RPCReply(r) = msg {
        handle_reply(world, link, r);
    }
    Ok(())
}

/// RPC: endpoints are entities with an [`RpcEndpoint`] (mirrored as `RPCEndpointComponent`);
/// an Upstream runs the handler registered for a called endpoint and answers every call once; a
/// Downstream calls with [`RpcClient`] and reads [`RpcReplyReceived`]. Needs
/// [`MirrorPlugin`](crate::mirror::MirrorPlugin); added by [`NoodlesPlugin`](crate::NoodlesPlugin).
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcPlugin;

impl Plugin for RpcPlugin {
    fn build(&self, app: &mut App) {
        schedule::configure(app);
        app.init_resource::<RpcServer>()
            .init_resource::<RpcClientState>()
            .init_resource::<RpcHandlers>()
            .add_message::<RpcReplyReceived>()
            .mirror_component::<RpcEndpoint>()
            .add_message_handler(MessageKind::RPCInvoke, route_invoke)
            .add_message_handler(MessageKind::RPCReply, route_reply)
            .add_systems(
                PreUpdate,
                (
                    forget_closed.in_set(NoodlesSystems::ApplyTransactions),
                    // Answers of handlers that completed at once go out this frame.
                    flush_replies_system.after(NoodlesSystems::Dispatch),
                ),
            )
            .add_systems(
                PostUpdate,
                flush_replies_system.in_set(NoodlesSystems::Send),
            );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_checks() {
        let ep = RpcEndpoint::new("countdown").arg("n", any_type::I64);
        assert!(ep.check_args(&[Any::I64(3)]).is_ok());
        let e = ep.check_args(&[]).unwrap_err().to_string();
        assert!(e.contains("takes 1 argument (n), got 0"), "{e}");
        let e = ep.check_args(&[Any::from("x")]).unwrap_err().to_string();
        assert!(
            e.contains("argument 0 (`n`) must be integer (i64), got string"),
            "{e}"
        );
        let echo = RpcEndpoint::new("echo").variadic();
        assert!(echo.check_args(&[]).is_ok());
        assert!(echo.check_args(&[Any::I64(1), Any::from("a")]).is_ok());
        let any = RpcEndpoint::new("any").arg("x", any_type::VOID);
        assert!(any.check_args(&[Any::from(1.5f64)]).is_ok());
    }

    #[test]
    fn typed_arguments_say_what_is_wrong() {
        let call = RpcCall {
            link: Entity::PLACEHOLDER,
            invoke_id: 1,
            endpoint: Entity::PLACEHOLDER,
            endpoint_id: 1,
            name: "countdown".into(),
            arg_names: vec!["n".into()],
            args: vec![Any::from("x")],
            principal: None,
        };
        let e = call.arg::<i64>(0).unwrap_err();
        assert_eq!(e.code, codes::BAD_ARGUMENTS);
        assert_eq!(
            e.message,
            "`countdown`: argument 0 (`n`): expected integer (i64), got string"
        );
        assert!(
            call.arg::<i64>(1)
                .unwrap_err()
                .message
                .contains("missing argument 1")
        );
        assert_eq!(call.arg::<String>(0).unwrap(), "x");
    }

    #[test]
    fn endpoint_round_trips_through_the_wire_type() {
        let ep = RpcEndpoint::new("countdown").arg("n", any_type::I64);
        let w = ep.to_wire(&NoIds).unwrap();
        struct R;
        impl EntityResolver for R {
            fn entity(&mut self, _: u64) -> Entity {
                Entity::PLACEHOLDER
            }
        }
        assert_eq!(RpcEndpoint::from_wire(w, &mut R).unwrap(), ep);
    }

    struct NoIds;
    impl EntityIds for NoIds {
        fn id_of(&self, _: Entity) -> Option<u64> {
            None
        }
    }

    #[test]
    fn dropped_responder_sends_an_error() {
        let (tx, rx) = crossbeam_channel::unbounded();
        drop(RpcResponder {
            link: Entity::PLACEHOLDER,
            invoke_id: 3,
            tx: tx.clone(),
            finished: false,
        });
        let (_, id, c) = rx.try_recv().unwrap();
        assert_eq!(id, 3);
        assert!(matches!(c, RPCReplyContent::RPCError(e) if e.code == codes::HANDLER_FAILED));
        let r = RpcResponder {
            link: Entity::PLACEHOLDER,
            invoke_id: 4,
            tx,
            finished: false,
        };
        r.stream(1i64);
        r.complete(0i64);
        assert_eq!(rx.try_iter().count(), 2);
    }
}

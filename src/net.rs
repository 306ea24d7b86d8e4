//! Links as Bevy entities: listening, connecting, link state, and moving main-sequence messages
//! between the transport and the mirror.
//!
//! Spawn a [`NoodlesListener`] to accept connections (as Upstream by default) or a
//! [`NoodlesConnect`] to open one (as Downstream by default). Every connection becomes an entity
//! with a [`NoodlesLink`] (state, role, peer, extensions, counters) and a [`LinkInbox`] of the
//! main-sequence messages that arrived, in order. [`LinkOpened`] and [`LinkClosed`] messages
//! announce the two ends of its life.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use bytes::Bytes;
use tokio::task::AbortHandle;

use crate::auth::{Authorizer, Principal};
use crate::codec::{MainSequenceMessage, Wire};
use crate::link::{
    AuthorityPolicy, ClientIntent, CloseReason, LinkConfig, LinkEvent, ListenError, MessageKind,
    Role, Side, TransportError,
};
use crate::oob::OobTarget;
use crate::schedule::{self, NoodlesSystems};
use crate::tls::{ClientTls, ServerTls};
use crate::transport::{
    LinkHandle, LinkId, LinkStats, ListenerId, QueueError, Transport, TransportEvent,
    TransportLimits,
};

/// Settings of the node, shared by every link (taken from [`NoodlesPlugin`](crate::NoodlesPlugin)).
#[derive(Resource, Debug, Clone)]
pub struct NoodlesConfig {
    /// Session name: sent in introductions and answered to probes.
    pub session_name: String,
    /// Session icon (encoded image bytes) answered to probes.
    pub icon: Bytes,
    /// Extensions this node advertises (Core, 0, must be among them).
    pub extensions: Vec<u16>,
    /// How long a connection may stay in the preamble.
    pub preamble_timeout: Duration,
    /// Largest frame a Downstream may send (frames from an Upstream are bounded by
    /// `limits.max_frame_size`).
    pub max_frame_from_downstream: usize,
    /// Transport limits: frame size, queue length, connect timeout.
    pub limits: TransportLimits,
    /// What this node answers when a client asks to be Upstream.
    pub authority: AuthorityPolicy,
    /// Despawn a link's entity one frame after it closed (after [`LinkClosed`] was written).
    pub despawn_closed_links: bool,
    /// OOB ports to advertise when Upstream (filled in by the asset layer once bound).
    pub oob_ports: Vec<u16>,
    /// Streaming RPC calls a link may have unfinished at once; more get
    /// [`rpc::codes::BUSY`](crate::rpc::codes::BUSY) at once.
    pub max_calls_in_flight: usize,
}

impl NoodlesConfig {
    pub(crate) fn link_config(&self) -> LinkConfig {
        LinkConfig {
            name: self.session_name.clone(),
            icon: self.icon.clone(),
            extensions: self.extensions.clone(),
            preamble_timeout: self.preamble_timeout,
            authority: self.authority,
            oob_ports: self.oob_ports.clone(),
            max_frame_from_downstream: self.max_frame_from_downstream,
            max_frame_from_upstream: self.limits.max_frame_size,
        }
    }
}

/// The transport, as a resource.
#[derive(Resource)]
pub struct NoodlesNet {
    /// The underlying NOODLES2 transport.
    pub transport: Transport,
    index: HashMap<LinkId, Entity>,
    listeners: HashMap<ListenerId, Entity>,
    /// The config links are built from; updated when [`NoodlesConfig`] changes.
    link_config: Arc<std::sync::RwLock<LinkConfig>>,
}

impl NoodlesNet {
    /// Wrap `transport`; new links are built from `config`.
    pub fn new(transport: Transport, config: &NoodlesConfig) -> Self {
        NoodlesNet {
            transport,
            index: HashMap::new(),
            listeners: HashMap::new(),
            link_config: Arc::new(std::sync::RwLock::new(config.link_config())),
        }
    }

    /// Replace the config new links are built from (normally follows [`NoodlesConfig`] each frame;
    /// this applies a change at once, before any link is accepted with the old one).
    pub(crate) fn set_link_config(&self, config: LinkConfig) {
        if let Ok(mut c) = self.link_config.write() {
            *c = config;
        }
    }

    /// The entity of a live link.
    pub fn link_entity(&self, id: LinkId) -> Option<Entity> {
        self.index.get(&id).copied()
    }
}

/// Where a link is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkStatus {
    /// Opening the TCP connection and websocket.
    Connecting,
    /// Exchanging preamble messages.
    Preamble,
    /// Roles decided; main-sequence messages flow.
    MainSequence,
    /// Closed, with the reason.
    Closed(CloseReason),
}

/// One connection. Lives on its own entity.
#[derive(Component, Debug)]
pub struct NoodlesLink {
    /// The transport's id for this link.
    pub id: LinkId,
    /// Whether we opened (Client) or accepted (Server) the connection.
    pub side: Side,
    /// Where the link is in its life.
    pub status: LinkStatus,
    /// Our role on this link once the preamble is over.
    pub role: Option<Role>,
    /// The peer's name from its introduction.
    pub peer_name: String,
    /// The peer's socket address, when known.
    pub peer_addr: Option<SocketAddr>,
    /// Extensions both sides advertised.
    pub extensions: Vec<u16>,
    /// OOB ports the Upstream advertised (when we are the Downstream).
    pub peer_oob_ports: Vec<u16>,
    /// Byte and message counters (refreshed every frame).
    pub stats: LinkStats,
    /// The listener that accepted this link, if any.
    pub listener: Option<Entity>,
    /// Who the listener's authorization hook admitted (`None`: no hook, or a link we opened).
    pub principal: Option<Principal>,
    /// The bearer token of the link: the one we sent, or the one the peer presented to our
    /// listener. The out-of-band channel of the link authenticates with it.
    token: Option<String>,
    /// For a `wss://` link we opened: the URL's host and the roots trusted, so its out-of-band
    /// channel speaks TLS to the same name.
    tls: Option<(String, ClientTls)>,
    handle: LinkHandle,
}

/// What the peer on a link may do when this node is its Upstream. Every link gets one (from its
/// listener, or its [`NoodlesConnect`]); the app may replace it at any time. A proposal that
/// needs more is rejected with code 1 (denied), a call of an endpoint it may not call gets an RPC
/// error; neither closes the link.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct LinkPermissions {
    /// Component types proposals may set or remove, as `(extension, identifier)`.
    pub propose_components: Grant<(u16, u16)>,
    /// Asset types proposals may create or replace.
    pub propose_assets: Grant<(u16, u16)>,
    /// Whether proposals may delete entities.
    pub delete: bool,
    /// Endpoints (by name) the peer may call.
    pub call: Grant<String>,
}

/// Which of a kind of thing is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant<T: std::hash::Hash + Eq> {
    /// None of them.
    Nothing,
    /// Every one.
    Everything,
    /// These.
    Only(std::collections::HashSet<T>),
}

impl<T: std::hash::Hash + Eq> Grant<T> {
    /// Is `x` allowed?
    pub fn allows(&self, x: &T) -> bool {
        match self {
            Grant::Nothing => false,
            Grant::Everything => true,
            Grant::Only(set) => set.contains(x),
        }
    }
}

impl Default for LinkPermissions {
    /// Secure by default: endpoints may be called, nothing may be proposed.
    fn default() -> Self {
        LinkPermissions {
            propose_components: Grant::Nothing,
            propose_assets: Grant::Nothing,
            delete: false,
            call: Grant::Everything,
        }
    }
}

impl LinkPermissions {
    /// Everything: any proposal (the policy still decides) and any call.
    pub fn allow_all() -> Self {
        LinkPermissions {
            propose_components: Grant::Everything,
            propose_assets: Grant::Everything,
            delete: true,
            call: Grant::Everything,
        }
    }

    /// Nothing at all: no proposals, no calls.
    pub fn read_only() -> Self {
        LinkPermissions {
            call: Grant::Nothing,
            ..default()
        }
    }
}

/// Why [`NoodlesLink::send`] refused a frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkSendError {
    /// The link is not in the main sequence.
    #[error("link {0:?} is not in the main sequence")]
    NotOpen(LinkId),
    /// Our role on the link may not send this kind of message.
    #[error("a {role:?} may not send {kind:?}")]
    Role {
        /// Our role on the link.
        role: Role,
        /// The kind of message.
        kind: MessageKind,
    },
    /// The frame is not an encoded `MainSequenceMessage`.
    #[error("not an encoded MainSequenceMessage")]
    NotAMessage,
    /// The frame could not be queued.
    #[error("link {link:?}: {error}")]
    Queue {
        /// The link.
        link: LinkId,
        /// Why queuing failed.
        error: QueueError,
    },
}

impl NoodlesLink {
    /// Is the link in the main sequence?
    pub fn is_open(&self) -> bool {
        self.status == LinkStatus::MainSequence
    }

    /// The link's counters right now ([`NoodlesLink::stats`] is their copy as of this frame).
    pub fn live_stats(&self) -> LinkStats {
        self.handle.stats()
    }

    /// Where this link's out-of-band channel on `port` goes: the same host, over TLS when the
    /// link is `wss://` (`None` when the peer's address is unknown).
    pub(crate) fn oob_target(&self, port: u16) -> Option<OobTarget> {
        match &self.tls {
            Some((host, tls)) => Some(OobTarget {
                host: host.clone(),
                port,
                tls: Some(tls.clone()),
            }),
            None => self
                .peer_addr
                .map(|p| OobTarget::plain(SocketAddr::new(p.ip(), port))),
        }
    }

    /// The link's bearer token (see the field), for its out-of-band channel.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Does the link carry this extension?
    pub fn has_extension(&self, ext: u16) -> bool {
        self.extensions.contains(&ext)
    }

    /// Queue an encoded `MainSequenceMessage` (the same [`Bytes`] can go to many links).
    ///
    /// Fails when more than the hard bound of bytes waits for the peer (it stopped reading): the
    /// link is then closed and the error says so.
    pub fn send(&self, frame: Bytes) -> Result<(), LinkSendError> {
        let role = match (&self.status, self.role) {
            (LinkStatus::MainSequence, Some(r)) => r,
            _ => return Err(LinkSendError::NotOpen(self.id)),
        };
        let kind = frame
            .first()
            .and_then(|&d| MessageKind::from_discriminant(d))
            .ok_or(LinkSendError::NotAMessage)?;
        if kind.sender() != role {
            return Err(LinkSendError::Role { role, kind });
        }
        self.handle.send(frame).map_err(|error| {
            if let QueueError::Full { queued, limit } = error {
                self.handle
                    .fail(CloseReason::Transport(TransportError::Stalled {
                        queued,
                        limit,
                    }));
            }
            LinkSendError::Queue {
                link: self.id,
                error,
            }
        })
    }

    /// Encode and queue a message.
    pub fn send_message(&self, msg: &MainSequenceMessage) -> Result<(), LinkSendError> {
        let bytes = msg.encode_bytes().map_err(|_| LinkSendError::NotAMessage)?;
        self.send(bytes)
    }

    /// Close the link gracefully with a reason (sent to the peer in the websocket close frame).
    pub fn close(&self, reason: impl Into<String>) {
        self.handle.close(reason);
    }
}

/// Main-sequence messages that arrived on a link, oldest first. The router drains it each frame,
/// handing every message to the handler registered for its kind.
#[derive(Component, Debug, Default)]
pub struct LinkInbox {
    /// The messages, in arrival order.
    pub messages: VecDeque<MainSequenceMessage>,
}

// ============================================================================================
// The router
// ============================================================================================

/// Why a [`MessageHandler`] refused a message: the router closes the link with this reason and
/// drops the rest of the link's inbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CloseLink(pub String);

/// Handles one main-sequence message that arrived on a link (the link entity is the second
/// argument). Registered per [`MessageKind`] with [`RouterAppExt::add_message_handler`].
pub type MessageHandler = fn(&mut World, Entity, MainSequenceMessage) -> Result<(), CloseLink>;

/// The handler of each kind of main-sequence message (one per kind; the feature plugins register
/// theirs: mirroring handles `Transaction`, proposals `ProposedChangeTransaction` and
/// `ProposedTransactionReply`, RPC `RPCInvoke` and `RPCReply`).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct MessageHandlers {
    by_kind: [Option<MessageHandler>; 5],
}

impl MessageHandlers {
    fn slot(kind: MessageKind) -> usize {
        match kind {
            MessageKind::Transaction => 0,
            MessageKind::ProposedChangeTransaction => 1,
            MessageKind::ProposedTransactionReply => 2,
            MessageKind::RPCInvoke => 3,
            MessageKind::RPCReply => 4,
        }
    }

    /// The handler of `kind`, if a plugin registered one.
    pub fn get(&self, kind: MessageKind) -> Option<MessageHandler> {
        self.by_kind[Self::slot(kind)]
    }
}

/// Registering message handlers on an [`App`].
pub trait RouterAppExt {
    /// Route every main-sequence message of `kind` to `handler`, in arrival order with the other
    /// kinds of its link. A later registration for the same kind replaces the earlier one.
    fn add_message_handler(&mut self, kind: MessageKind, handler: MessageHandler) -> &mut Self;
}

impl RouterAppExt for App {
    fn add_message_handler(&mut self, kind: MessageKind, handler: MessageHandler) -> &mut Self {
        self.world_mut()
            .get_resource_or_init::<MessageHandlers>()
            .by_kind[MessageHandlers::slot(kind)] = Some(handler);
        self
    }
}

/// Drain the inboxes of links where this node plays `role`, oldest message first, each through
/// the handler of its kind. A handler's [`CloseLink`] (or a kind nobody handles) closes the link
/// and drops what is left of its inbox.
///
/// `links` is the system's own query state: building one is costlier than a frame without messages.
fn route(world: &mut World, links: &mut LinkInboxes, role: Role) {
    // Initialized with the plugin; without it, no kind has a handler.
    let handlers = world
        .get_resource::<MessageHandlers>()
        .copied()
        .unwrap_or_default();
    let work: Vec<(Entity, VecDeque<MainSequenceMessage>)> = links
        .iter_mut(world)
        .filter(|(_, l, inbox)| l.role == Some(role) && !inbox.messages.is_empty())
        .map(|(e, _, mut inbox)| (e, std::mem::take(&mut inbox.messages)))
        .collect();
    for (link, messages) in work {
        // Handled (or dropped with a closing link) below: the transport may read that much more.
        let bytes: usize = messages.iter().map(Wire::wire_len).sum();
        if let Some(l) = world.get::<NoodlesLink>(link) {
            l.handle.release_inbound(bytes);
        }
        for msg in messages {
            let kind = MessageKind::of(&msg);
            let result = match handlers.get(kind) {
                Some(handler) => handler(world, link, msg),
                None => Err(CloseLink(format!(
                    "this node does not handle {kind:?} messages (no plugin registered for them)"
                ))),
            };
            if let Err(reason) = result {
                warn!("closing link: {reason}");
                if let Some(l) = world.get::<NoodlesLink>(link) {
                    l.close(reason.0);
                }
                break;
            }
        }
    }
}

/// The links' inboxes, as [`route`] queries them.
type LinkInboxes = QueryState<(Entity, &'static NoodlesLink, &'static mut LinkInbox)>;

/// Route the links where this node is Downstream (phase [`NoodlesSystems::ApplyTransactions`]).
fn route_downstream_links(world: &mut World, mut links: Local<LinkInboxes>) {
    route(world, &mut links, Role::Downstream);
}

/// Route the links where this node is Upstream (phase [`NoodlesSystems::Dispatch`]).
fn route_upstream_links(world: &mut World, mut links: Local<LinkInboxes>) {
    route(world, &mut links, Role::Upstream);
}

/// Listens for connections. Spawn one to accept links; despawn it to stop listening (open links
/// stay open).
///
/// By default anyone may connect, and the links it accepts may call endpoints but not propose
/// ([`LinkPermissions::default`]). [`NoodlesListener::with_tokens`] (or
/// [`with_auth`](NoodlesListener::with_auth)) admits only authenticated peers, and
/// [`grant`](NoodlesListener::grant) opens proposals:
///
/// ```
/// use bevy_noodles2::prelude::*;
///
/// let listener = NoodlesListener::new("ws://127.0.0.1:50000")
///     .with_tokens([("s3cret", Principal::new("editor"))])
///     .grant(LinkPermissions::allow_all());
/// ```
#[derive(Component)]
pub struct NoodlesListener {
    /// `ws://HOST:PORT` or `HOST:PORT`; port 0 picks a free port.
    pub addr: String,
    /// The bound address, once listening.
    pub local_addr: Option<SocketAddr>,
    /// Why binding failed, if it did.
    pub error: Option<ListenError>,
    /// Who may connect: run at every websocket upgrade (`None`: anyone).
    pub auth: Option<Authorizer>,
    /// What the links it accepts may do, from their principal.
    pub permissions: PermissionsFn,
    /// The certificate and key it serves `wss://` with (`None`: plain `ws://`).
    pub tls: Option<ServerTls>,
    id: Option<ListenerId>,
    abort: Option<AbortHandle>,
}

/// What a link may do, from the principal its listener admitted (`None` without authentication).
pub type PermissionsFn = Arc<dyn Fn(Option<&Principal>) -> LinkPermissions + Send + Sync>;

impl std::fmt::Debug for NoodlesListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoodlesListener")
            .field("addr", &self.addr)
            .field("local_addr", &self.local_addr)
            .field("error", &self.error)
            .field("authenticated", &self.auth.is_some())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl NoodlesListener {
    /// Listen on `addr` (`ws://HOST:PORT` or `HOST:PORT`) once spawned.
    pub fn new(addr: impl Into<String>) -> Self {
        NoodlesListener {
            addr: addr.into(),
            local_addr: None,
            error: None,
            auth: None,
            permissions: Arc::new(|_| LinkPermissions::default()),
            tls: None,
            id: None,
            abort: None,
        }
    }

    /// Admit only connections the hook admits (at the websocket upgrade, before any NOODLES2
    /// message); the principal it returns is on the link ([`NoodlesLink::principal`]).
    pub fn with_auth(mut self, auth: Authorizer) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Admit only connections with one of these bearer tokens (`Authorization: Bearer T` or
    /// `?token=T`); others are refused with HTTP 401 or 403.
    pub fn with_tokens<T: Into<String>>(
        self,
        tokens: impl IntoIterator<Item = (T, Principal)>,
    ) -> Self {
        self.with_auth(crate::auth::bearer_tokens(tokens))
    }

    /// Serve `wss://` with this certificate and key (its out-of-band channel uses TLS too):
    /// `NoodlesListener::new("wss://0.0.0.0:50000").with_tls(ServerTls::from_pem_files(cert,
    /// key)?)`.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Every link it accepts gets `permissions`.
    pub fn grant(mut self, permissions: LinkPermissions) -> Self {
        self.permissions = Arc::new(move |_| permissions.clone());
        self
    }

    /// Each link it accepts gets the permissions `f` gives its principal.
    pub fn permissions_by(
        mut self,
        f: impl Fn(Option<&Principal>) -> LinkPermissions + Send + Sync + 'static,
    ) -> Self {
        self.permissions = Arc::new(f);
        self
    }

    /// `ws://HOST:PORT` (`wss://` with TLS) once bound.
    pub fn url(&self) -> Option<String> {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        self.local_addr.map(|a| format!("{scheme}://{a}"))
    }
}

/// Opens a connection. Spawn one; the same entity becomes the link (it gets a [`NoodlesLink`]).
#[derive(Component, Debug, Clone)]
pub struct NoodlesConnect {
    /// `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub url: String,
    /// Join as Downstream (default), ask to be Upstream, or only probe.
    pub intent: ClientIntent,
    /// Sent as `Authorization: Bearer T` in the websocket upgrade.
    pub token: Option<String>,
    /// The roots trusted for a `wss://` URL (`None`: the Mozilla roots, [`ClientTls::default`]).
    pub tls: Option<ClientTls>,
    /// What the peer may do on this link when we are its Upstream (default: call endpoints, not
    /// propose).
    pub permissions: LinkPermissions,
}

impl NoodlesConnect {
    /// Connect as Downstream.
    pub fn new(url: impl Into<String>) -> Self {
        NoodlesConnect {
            url: url.into(),
            intent: ClientIntent::Join,
            token: None,
            tls: None,
            permissions: LinkPermissions::default(),
        }
    }
    /// Trust these roots for `wss://` (a private CA or a self-signed certificate), besides the
    /// Mozilla roots: `.with_tls(ClientTls::with_roots_pem_file("ca.pem")?)`.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Present a bearer token to the server.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// What the peer may do when we are its Upstream ([`NoodlesConnect::as_upstream`]).
    pub fn grant(mut self, permissions: LinkPermissions) -> Self {
        self.permissions = permissions;
        self
    }
    /// Ask the server to let us be Upstream (push our world to a listening viewer).
    pub fn as_upstream(mut self) -> Self {
        self.intent = ClientIntent::JoinAsUpstream;
        self
    }
    /// Only ask for the session's name and icon.
    pub fn probe(mut self) -> Self {
        self.intent = ClientIntent::Probe;
        self
    }
}

/// A link reached the main sequence.
#[derive(Message, Debug, Clone)]
pub struct LinkOpened {
    /// The link entity.
    pub link: Entity,
    /// Our role on the link.
    pub role: Role,
    /// The peer's name from its introduction.
    pub peer_name: String,
}

/// A link closed (or failed to open).
#[derive(Message, Debug, Clone)]
pub struct LinkClosed {
    /// The link entity.
    pub link: Entity,
    /// Why it closed.
    pub reason: CloseReason,
}

/// A probe was answered.
#[derive(Message, Debug, Clone)]
pub struct ProbeAnswered {
    /// The link entity that probed.
    pub link: Entity,
    /// The session's name.
    pub name: String,
    /// The session's icon (encoded image bytes).
    pub icon: Bytes,
}

/// A listener is accepting (or failed to bind).
#[derive(Message, Debug, Clone)]
pub struct ListenerReady {
    /// The listener entity.
    pub listener: Entity,
    /// The bound address, or why it could not bind.
    pub result: Result<SocketAddr, ListenError>,
}

/// Marks a closed link to despawn on the next frame.
#[derive(Component)]
pub(crate) struct DespawnNextFrame;

fn start_listener(
    add: On<Add, NoodlesListener>,
    mut net: ResMut<NoodlesNet>,
    config: Res<NoodlesConfig>,
    mut q: Query<&mut NoodlesListener>,
) {
    let Ok(mut l) = q.get_mut(add.entity) else {
        return;
    };
    let cfg = net.link_config.clone();
    let make = Arc::new(move || cfg.read().map(|c| c.clone()).unwrap_or_default());
    let (id, abort) = net.transport.listen(
        l.addr.clone(),
        config.limits,
        make,
        l.auth.clone(),
        l.tls.clone(),
    );
    l.id = Some(id);
    l.abort = Some(abort);
    net.listeners.insert(id, add.entity);
}

fn stop_listener(
    remove: On<Remove, NoodlesListener>,
    mut net: ResMut<NoodlesNet>,
    q: Query<&NoodlesListener>,
) {
    if let Ok(l) = q.get(remove.entity) {
        if let Some(a) = &l.abort {
            a.abort();
        }
        if let Some(id) = l.id {
            net.listeners.remove(&id);
        }
    }
}

fn start_connect(
    add: On<Add, NoodlesConnect>,
    mut net: ResMut<NoodlesNet>,
    config: Res<NoodlesConfig>,
    q: Query<&NoodlesConnect>,
    mut commands: Commands,
) {
    let Ok(c) = q.get(add.entity) else { return };
    let handle = net.transport.connect(
        c.url.clone(),
        config.link_config(),
        c.intent.clone(),
        config.limits,
        (c.token.clone(), c.tls.clone()),
    );
    let tls = c.url.starts_with("wss://").then(|| {
        let host = crate::transport::url_host(&c.url).to_string();
        (host, c.tls.clone().unwrap_or_default())
    });
    net.index.insert(handle.id, add.entity);
    commands.entity(add.entity).insert((
        NoodlesLink {
            id: handle.id,
            side: Side::Client,
            status: LinkStatus::Connecting,
            role: None,
            peer_name: String::new(),
            peer_addr: None,
            extensions: Vec::new(),
            peer_oob_ports: Vec::new(),
            stats: LinkStats::default(),
            listener: None,
            principal: None,
            token: c.token.clone(),
            tls,
            handle,
        },
        LinkInbox::default(),
        c.permissions.clone(),
    ));
}

/// Keep the links' config in step with [`NoodlesConfig`] (for example OOB ports bound later).
fn sync_link_config(config: Res<NoodlesConfig>, net: Res<NoodlesNet>) {
    if config.is_changed()
        && let Ok(mut c) = net.link_config.write()
    {
        *c = config.link_config();
    }
}

/// Drain the transport: create, update and close link entities, fill inboxes.
#[expect(
    clippy::too_many_arguments,
    reason = "one system moves every kind of transport report"
)]
fn receive_transport(
    mut commands: Commands,
    mut net: ResMut<NoodlesNet>,
    config: Res<NoodlesConfig>,
    mut links: Query<(&mut NoodlesLink, &mut LinkInbox)>,
    mut listeners: Query<&mut NoodlesListener>,
    doomed: Query<Entity, With<DespawnNextFrame>>,
    mut opened: MessageWriter<LinkOpened>,
    mut closed: MessageWriter<LinkClosed>,
    mut probes: MessageWriter<ProbeAnswered>,
    mut ready: MessageWriter<ListenerReady>,
) {
    for e in &doomed {
        commands.entity(e).despawn();
    }
    let mut fresh: HashMap<Entity, (NoodlesLink, LinkInbox)> = HashMap::new();
    while let Some(event) = net.transport.try_recv() {
        match event {
            TransportEvent::Listening { listener, addr } => {
                if let Some(&e) = net.listeners.get(&listener) {
                    if let Ok(mut l) = listeners.get_mut(e) {
                        l.local_addr = Some(addr);
                    }
                    let scheme = match listeners.get(e) {
                        Ok(l) if l.tls.is_some() => "wss",
                        _ => "ws",
                    };
                    info!("listening on {scheme}://{addr}");
                    ready.write(ListenerReady {
                        listener: e,
                        result: Ok(addr),
                    });
                }
            }
            TransportEvent::ListenFailed { listener, error } => {
                if let Some(&e) = net.listeners.get(&listener) {
                    if let Ok(mut l) = listeners.get_mut(e) {
                        l.error = Some(error.clone());
                    }
                    warn!("{error}");
                    ready.write(ListenerReady {
                        listener: e,
                        result: Err(error),
                    });
                }
            }
            TransportEvent::Accepted {
                listener,
                handle,
                peer,
                principal,
                token,
            } => {
                let listener_entity = net.listeners.get(&listener).copied();
                let permissions = listener_entity
                    .and_then(|e| listeners.get(e).ok())
                    .map(|l| (l.permissions)(principal.as_ref()))
                    .unwrap_or_default();
                let id = handle.id;
                let link = NoodlesLink {
                    id,
                    side: Side::Server,
                    status: LinkStatus::Preamble,
                    role: None,
                    peer_name: String::new(),
                    peer_addr: Some(peer),
                    extensions: Vec::new(),
                    peer_oob_ports: Vec::new(),
                    stats: LinkStats::default(),
                    listener: listener_entity,
                    principal,
                    token,
                    tls: None,
                    handle,
                };
                let e = commands.spawn(permissions).id();
                debug!("accepted a connection from {peer} as link {}", id.0);
                net.index.insert(id, e);
                fresh.insert(e, (link, LinkInbox::default()));
            }
            TransportEvent::Connected { link, peer } => {
                let Some(&e) = net.index.get(&link) else {
                    continue;
                };
                with_link(e, &mut fresh, &mut links, |l, _| {
                    l.peer_addr = peer;
                    l.status = LinkStatus::Preamble;
                });
            }
            TransportEvent::Link { link, event } => {
                let Some(&e) = net.index.get(&link) else {
                    continue;
                };
                match event {
                    LinkEvent::Established(est) => {
                        with_link(e, &mut fresh, &mut links, |l, _| {
                            l.status = LinkStatus::MainSequence;
                            l.role = Some(est.role);
                            l.peer_name = est.peer_name.clone();
                            l.extensions = est.extensions.clone();
                            l.peer_oob_ports = est.peer_oob_ports.clone();
                        });
                        info!(
                            "link {} open: we are {:?}, peer `{}`, extensions {:?}",
                            link.0, est.role, est.peer_name, est.extensions
                        );
                        opened.write(LinkOpened {
                            link: e,
                            role: est.role,
                            peer_name: est.peer_name,
                        });
                    }
                    LinkEvent::Message(m) => {
                        with_link(e, &mut fresh, &mut links, |_, inbox| {
                            inbox.messages.push_back(m)
                        });
                    }
                    LinkEvent::ProbeReply { name, icon } => {
                        probes.write(ProbeAnswered {
                            link: e,
                            name,
                            icon,
                        });
                    }
                    LinkEvent::Closed(reason) => {
                        with_link(e, &mut fresh, &mut links, |l, _| {
                            l.status = LinkStatus::Closed(reason.clone())
                        });
                        info!("link {} closed: {reason}", link.0);
                        net.index.remove(&link);
                        closed.write(LinkClosed { link: e, reason });
                        if config.despawn_closed_links {
                            commands.entity(e).insert(DespawnNextFrame);
                        }
                    }
                }
            }
        }
    }
    for (e, (link, inbox)) in fresh {
        commands.entity(e).insert((link, inbox));
    }
    for (mut l, _) in &mut links {
        let s = l.handle.stats();
        if l.stats != s {
            l.stats = s;
        }
    }
}

fn with_link(
    e: Entity,
    fresh: &mut HashMap<Entity, (NoodlesLink, LinkInbox)>,
    links: &mut Query<(&mut NoodlesLink, &mut LinkInbox)>,
    f: impl FnOnce(&mut NoodlesLink, &mut LinkInbox),
) {
    if let Some((l, i)) = fresh.get_mut(&e) {
        f(l, i);
    } else if let Ok((mut l, mut i)) = links.get_mut(e) {
        f(&mut l, &mut i);
    }
}

/// Close every link when the app exits, so peers get a close frame.
fn close_links_on_exit(mut exit: MessageReader<AppExit>, links: Query<&NoodlesLink>) {
    if exit.read().next().is_some() {
        for l in &links {
            l.close("application exiting");
        }
    }
}

/// Links, transport and the message router: the base every other plugin of this crate builds on.
/// Added by [`NoodlesPlugin`](crate::NoodlesPlugin), which fills it from its own fields.
///
/// On its own it makes a node that connects, listens, answers probes and keeps its links alive;
/// a main-sequence message whose kind no plugin handles closes its link with a reason.
#[derive(Debug, Clone)]
pub struct NetPlugin {
    /// The node's settings.
    pub config: NoodlesConfig,
}

impl Plugin for NetPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<bevy_tokio_tasks::TokioTasksPlugin>() {
            app.add_plugins(bevy_tokio_tasks::TokioTasksPlugin::default());
        }
        let runtime = app
            .world()
            .resource::<bevy_tokio_tasks::TokioTasksRuntime>()
            .runtime()
            .handle()
            .clone();
        schedule::configure(app);
        app.insert_resource(NoodlesNet::new(Transport::new(runtime), &self.config))
            .insert_resource(self.config.clone())
            .init_resource::<MessageHandlers>()
            .add_message::<LinkOpened>()
            .add_message::<LinkClosed>()
            .add_message::<ProbeAnswered>()
            .add_message::<ListenerReady>()
            .add_observer(start_listener)
            .add_observer(stop_listener)
            .add_observer(start_connect)
            .add_systems(
                PreUpdate,
                (
                    (sync_link_config, receive_transport)
                        .chain()
                        .in_set(NoodlesSystems::Receive),
                    route_downstream_links.in_set(NoodlesSystems::ApplyTransactions),
                    route_upstream_links.in_set(NoodlesSystems::Dispatch),
                ),
            )
            .add_systems(Last, close_links_on_exit);
    }
}

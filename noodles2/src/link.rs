//! The sans-IO link: one NOODLES2 connection as a deterministic state machine.
//!
//! A [`Link`] owns no socket, spawns nothing and reads no clock. It is fed frames
//! ([`Link::handle_frame`]) and the current time ([`Link::handle_timeout`]), and hands back frames to
//! send ([`Link::poll_transmit`]), events ([`Link::poll_event`]) and the next deadline
//! ([`Link::poll_timeout`]). The transport drives it; tests drive it with virtual time.
//!
//! It implements the spec's connection flow (`README.md`, *Connection Flow*; `preamble.jaw`):
//! the initiator is the Client, the acceptor the Server; only `PreMessage` is legal until the
//! preamble ends; the Client sends `Introduction` (or `Probe`), the Server answers
//! `IntroductionReply` (or `ProbeReply` and closes). With `authority_request` set, a Server that
//! agrees sends its own `Introduction` and the Client answers `IntroductionReply`; a Server that
//! does not agree closes. In the main sequence it enforces who may send what.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{
    DecodeError, EncodeError, ExtensionID, Introduction, IntroductionFlags, IntroductionHeader,
    IntroductionReply, MainSequenceMessage, OOBAssetChannels, OOBAssetInfo, PreMessage, Probe,
    ProbeReply, Wire,
};

/// The protocol version this crate speaks (`IntroductionHeader.protocol_version`).
pub const PROTOCOL_VERSION: u16 = 1;

/// The Core extension's id (`EXTENSION_CORE` in `core.jaw`).
pub const CORE_EXTENSION: u16 = crate::codec::EXTENSION_CORE;

/// Which end opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The initiator.
    Client,
    /// The acceptor.
    Server,
}

/// Which end holds authority on a link once the preamble is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The authority: sends `Transaction`s, answers proposals and RPC calls.
    Upstream,
    /// The mirror: receives `Transaction`s, may propose and invoke.
    Downstream,
}

impl Role {
    /// The opposite role: the peer's role on the same link.
    pub fn other(self) -> Role {
        match self {
            Role::Upstream => Role::Downstream,
            Role::Downstream => Role::Upstream,
        }
    }
}

/// What a Server does when a Client asks to be Upstream (`authority_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorityPolicy {
    /// Close the connection (the server stays the authority of its own world).
    #[default]
    Refuse,
    /// Agree: the Client becomes Upstream and this side its Downstream.
    Accept,
}

/// What a Client asks for in its first message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientIntent {
    /// Join as Downstream (the default).
    #[default]
    Join,
    /// Join and ask to be Upstream.
    JoinAsUpstream,
    /// Only ask for the session's name and icon, then close.
    Probe,
}

/// Per-link settings taken from the node's configuration.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Our name, sent in the introduction (and in `ProbeReply` as the session name).
    pub name: String,
    /// The session icon for `ProbeReply` (encoded image bytes; may be empty).
    pub icon: Bytes,
    /// Extensions we advertise. Core (0) must be among them.
    pub extensions: Vec<u16>,
    /// How long the preamble may take before the link is closed.
    pub preamble_timeout: Duration,
    /// Server only: what to do with `authority_request`.
    pub authority: AuthorityPolicy,
    /// OOB ports to advertise when this side becomes Upstream (empty: no OOB channels).
    pub oob_ports: Vec<u16>,
    /// Largest frame a Downstream may send us (proposals, calls; also any preamble frame).
    /// Default 16 MiB: proposals inline their buffers, everything else is small.
    pub max_frame_from_downstream: usize,
    /// Largest frame an Upstream may send us. Default 64 MiB: transactions are split at 1 MiB
    /// and large buffers go out of band, but a peer may inline bigger ones.
    pub max_frame_from_upstream: usize,
}

/// Default of [`LinkConfig::max_frame_from_downstream`].
pub const MAX_FRAME_FROM_DOWNSTREAM: usize = 16 << 20;
/// Default of [`LinkConfig::max_frame_from_upstream`].
pub const MAX_FRAME_FROM_UPSTREAM: usize = 64 << 20;

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            name: "bevy_noodles2".into(),
            icon: Bytes::new(),
            extensions: vec![CORE_EXTENSION],
            preamble_timeout: Duration::from_secs(10),
            authority: AuthorityPolicy::Refuse,
            oob_ports: Vec::new(),
            max_frame_from_downstream: MAX_FRAME_FROM_DOWNSTREAM,
            max_frame_from_upstream: MAX_FRAME_FROM_UPSTREAM,
        }
    }
}

/// The main-sequence message kinds, for role checks and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `Transaction` (tag 1): a batch of authoritative world changes, Upstream to Downstream.
    Transaction,
    /// `ProposedChangeTransaction` (tag 2): a Downstream's proposed changes, Downstream to
    /// Upstream.
    ProposedChangeTransaction,
    /// `ProposedTransactionReply` (tag 3): the Upstream's verdict on a proposal, Upstream to
    /// Downstream.
    ProposedTransactionReply,
    /// `RPCInvoke` (tag 4): a remote procedure call on an endpoint entity, Downstream to Upstream.
    RPCInvoke,
    /// `RPCReply` (tag 5): a result, stream item or error for an `RPCInvoke`, Upstream to
    /// Downstream.
    RPCReply,
}

impl MessageKind {
    /// From the first byte of an encoded `MainSequenceMessage`.
    pub fn from_discriminant(d: u8) -> Option<MessageKind> {
        Some(match d {
            1 => MessageKind::Transaction,
            2 => MessageKind::ProposedChangeTransaction,
            3 => MessageKind::ProposedTransactionReply,
            4 => MessageKind::RPCInvoke,
            5 => MessageKind::RPCReply,
            _ => return None,
        })
    }

    /// The kind of a decoded `MainSequenceMessage`.
    pub fn of(msg: &MainSequenceMessage) -> MessageKind {
        match msg {
            MainSequenceMessage::Transaction(_) => MessageKind::Transaction,
            MainSequenceMessage::ProposedChangeTransaction(_) => {
                MessageKind::ProposedChangeTransaction
            }
            MainSequenceMessage::ProposedTransactionReply(_) => {
                MessageKind::ProposedTransactionReply
            }
            MainSequenceMessage::RPCInvoke(_) => MessageKind::RPCInvoke,
            MainSequenceMessage::RPCReply(_) => MessageKind::RPCReply,
        }
    }

    /// The role that may send this kind: the Upstream sends transactions and replies, the Downstream
    /// proposals and invocations.
    pub fn sender(self) -> Role {
        match self {
            MessageKind::Transaction
            | MessageKind::ProposedTransactionReply
            | MessageKind::RPCReply => Role::Upstream,
            MessageKind::ProposedChangeTransaction | MessageKind::RPCInvoke => Role::Downstream,
        }
    }
}

/// A broken protocol rule (the reason a link was closed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// A frame could not be decoded as the message expected in the current phase (`PreMessage`
    /// during the preamble, `MainSequenceMessage` after it).
    #[error("undecodable frame: {0}")]
    Decode(DecodeError),
    /// A valid `PreMessage` arrived at the wrong point of the preamble: the message received and
    /// what was expected instead.
    #[error("{0} during the preamble, where {1} was expected")]
    UnexpectedPreMessage(&'static str, &'static str),
    /// The peer's `IntroductionHeader.protocol_version` differs from ours.
    #[error("protocol version mismatch: we speak {ours}, the peer {theirs}")]
    VersionMismatch {
        /// The version this crate speaks ([`PROTOCOL_VERSION`]).
        ours: u16,
        /// The version the peer announced.
        theirs: u16,
    },
    /// The Core extension is not advertised by both sides.
    #[error(
        "the Core extension (0x0000) is not in the shared capabilities (ours {ours:?}, theirs {theirs:?})"
    )]
    MissingCore {
        /// The extensions we advertise.
        ours: Vec<u16>,
        /// The extensions the peer advertised (`IntroductionHeader.capabilities`).
        theirs: Vec<u16>,
    },
    /// Server side: the Client set `authority_request` and our [`AuthorityPolicy`] is `Refuse`.
    #[error("the peer asked to be Upstream and this node's policy refuses")]
    AuthorityRefused,
    /// Client side: we set `authority_request`, but the Server answered with an
    /// `IntroductionReply` (keeping authority) instead of its own `Introduction`.
    #[error(
        "we asked to be Upstream but the server answered with IntroductionReply instead of agreeing"
    )]
    AuthorityIgnored,
    /// A frame larger than what its sender's role may send ([`LinkConfig`]).
    #[error("a frame of {size} bytes from the {from:?}, whose limit is {limit}")]
    FrameTooLarge {
        /// The frame's size.
        size: usize,
        /// The limit for frames from that role.
        limit: usize,
        /// The sender's role (`None` during the preamble).
        from: Option<Role>,
    },
    /// The peer sent a main-sequence message its role may not send (see [`MessageKind::sender`]).
    #[error("a {role:?} may not send {kind:?}")]
    RoleViolation {
        /// The peer's role.
        role: Role,
        /// The kind of message it sent.
        kind: MessageKind,
    },
    /// A `PreMessage` (named here) arrived in the main sequence.
    #[error("a preamble message ({0}) arrived after the preamble ended")]
    PreMessageAfterPreamble(&'static str),
    /// The peer sent a text websocket frame; all NOODLES2 frames are binary.
    #[error("text websocket frame (NOODLES2 frames are binary)")]
    TextFrame,
    /// Any other rule violation, described in text.
    #[error("{0}")]
    Other(String),
}

/// Why a link closed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloseReason {
    /// This node closed it (application request, probe finished, shutdown).
    #[error("closed locally: {0}")]
    Local(String),
    /// The peer closed it, with the reason it gave.
    #[error("closed by the peer: {0}")]
    Remote(String),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// The preamble did not finish in time.
    #[error("the preamble did not finish within {0:?}")]
    PreambleTimeout(Duration),
    /// The connection failed or the peer stopped reading.
    #[error("transport: {0}")]
    Transport(TransportError),
}

/// What went wrong below the protocol: connecting, the socket, or a peer that does not keep up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransportError {
    /// The connection could not be opened.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// Where to.
        url: String,
        /// Why (the websocket or I/O error, in text).
        reason: String,
    },
    /// Opening the connection took too long.
    #[error("connecting to {url} timed out after {timeout:?}")]
    ConnectTimeout {
        /// Where to.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The peer does not read: more bytes waited for it than the bound allows, for longer than
    /// the stall timeout (or more than the hard bound at once). No close frame is sent (it would
    /// wait behind the queue).
    #[error("the peer does not read: {queued} bytes were waiting for it (bound {limit})")]
    Stalled {
        /// Bytes queued for the peer when the link closed.
        queued: usize,
        /// The bound they exceeded.
        limit: usize,
    },
    /// The websocket failed (reset, protocol violation below NOODLES2, I/O error).
    #[error("websocket: {0}")]
    Websocket(String),
    /// Nothing arrived (no frame, no answer to our pings) for this long: the peer is gone
    /// without closing (a half-open connection) or cannot keep up.
    #[error("nothing received for {timeout:?}: the peer is gone or unreachable")]
    Idle {
        /// The idle timeout.
        timeout: Duration,
    },
}

/// A listener that could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ListenError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why (the I/O error, in text).
        reason: String,
    },
    /// The socket has no local address.
    #[error("no local address for {addr}: {reason}")]
    LocalAddr {
        /// The address asked for.
        addr: String,
        /// Why (the I/O error, in text).
        reason: String,
    },
    /// A `wss://` address was given without a certificate and key to serve it with.
    #[error("cannot listen on {addr}: wss:// needs a certificate and key (ServerTls)")]
    TlsRequired {
        /// The address asked for.
        addr: String,
    },
}

/// Where a link is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    /// Exchanging preamble messages.
    Preamble,
    /// Roles are decided; main-sequence messages flow.
    MainSequence,
    /// Closed; no more frames in or out.
    Closed(CloseReason),
}

/// What the preamble decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Established {
    /// Our role on this link.
    pub role: Role,
    /// The peer's name from its introduction.
    pub peer_name: String,
    /// Extensions both sides advertised (sorted).
    pub extensions: Vec<u16>,
    /// OOB ports the Upstream advertised (empty if none, or if we are the Upstream).
    pub peer_oob_ports: Vec<u16>,
}

/// Something that happened on a link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The preamble finished; the main sequence begins.
    Established(Established),
    /// A probe was answered (client side).
    ProbeReply {
        /// The session name the Server gave.
        name: String,
        /// The session icon (encoded image bytes; may be empty).
        icon: Bytes,
    },
    /// A main-sequence message from the peer, role-checked.
    Message(MainSequenceMessage),
    /// The link closed. No further events follow.
    Closed(CloseReason),
}

/// Errors from [`Link::send`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The link is still in the preamble or already closed.
    #[error("the link is not in the main sequence")]
    NotOpen,
    /// Our role may not send this kind of message (see [`MessageKind::sender`]).
    #[error("a {role:?} may not send {kind:?}")]
    Role {
        /// Our role on the link.
        role: Role,
        /// The kind of message we tried to send.
        kind: MessageKind,
    },
    /// The frame's first byte (`None` if the frame is empty) is not a `MainSequenceMessage` tag.
    #[error("not a main-sequence message (first byte {0:?})")]
    NotAMessage(Option<u8>),
    /// The message could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(EncodeError),
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Client: waiting for the server's answer to our first message.
    ClientAwaitReply { intent: ClientIntent },
    /// Server: waiting for the client's first message.
    ServerAwaitIntroduction,
    /// Server: agreed to an authority swap, sent our Introduction, waiting for the client's reply.
    ServerAwaitSwapReply {
        peer_name: String,
        extensions: Vec<u16>,
    },
}

/// One connection's protocol state. See the [module docs](self).
#[derive(Debug)]
pub struct Link {
    side: Side,
    config: LinkConfig,
    state: LinkState,
    stage: Option<Stage>,
    established: Option<Established>,
    deadline: Option<Instant>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<LinkEvent>,
}

fn encode_pre(msg: &PreMessage) -> Bytes {
    // Preamble messages are built from validated config (names are truncated to fit), so encoding
    // only fails on absurd configs; an empty frame then makes the peer close with a decode error.
    msg.encode_bytes().unwrap_or_default()
}

/// Cut a string to at most `max` bytes at a character boundary.
fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn pre_name(m: &PreMessage) -> &'static str {
    m.option_name()
}

impl Link {
    /// A link we initiated. Its first frame (`Introduction` or `Probe`) is ready to transmit.
    pub fn client(now: Instant, config: LinkConfig, intent: ClientIntent) -> Link {
        let mut link = Link::new(Side::Client, now, config);
        let first = match intent {
            ClientIntent::Probe => PreMessage::Probe(Probe),
            ClientIntent::Join | ClientIntent::JoinAsUpstream => {
                let header = link.header(intent == ClientIntent::JoinAsUpstream);
                PreMessage::Introduction(Introduction { header })
            }
        };
        link.transmits.push_back(encode_pre(&first));
        link.stage = Some(Stage::ClientAwaitReply { intent });
        link
    }

    /// A link we accepted. It waits for the client's first message.
    pub fn server(now: Instant, config: LinkConfig) -> Link {
        let mut link = Link::new(Side::Server, now, config);
        link.stage = Some(Stage::ServerAwaitIntroduction);
        link
    }

    fn new(side: Side, now: Instant, config: LinkConfig) -> Link {
        let deadline = Some(now + config.preamble_timeout);
        Link {
            side,
            config,
            state: LinkState::Preamble,
            stage: None,
            established: None,
            deadline,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether we opened ([`Side::Client`]) or accepted ([`Side::Server`]) this link.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Where the link is in its life: preamble, main sequence or closed.
    pub fn state(&self) -> &LinkState {
        &self.state
    }

    /// Our role, once the preamble is over.
    pub fn role(&self) -> Option<Role> {
        self.established.as_ref().map(|e| e.role)
    }

    /// What the preamble decided, once it is over (kept after the link closes).
    pub fn established(&self) -> Option<&Established> {
        self.established.as_ref()
    }

    /// Whether the link is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, LinkState::Closed(_))
    }

    fn header(&self, authority_request: bool) -> IntroductionHeader {
        IntroductionHeader {
            protocol_version: PROTOCOL_VERSION,
            flags: IntroductionFlags::default().with_authority_request(authority_request as u8),
            name: truncate_utf8(&self.config.name, u8::MAX as usize).into(),
            capabilities: self
                .config
                .extensions
                .iter()
                .map(|&e| ExtensionID::new(e))
                .collect(),
        }
    }

    fn oob_info(&self) -> OOBAssetInfo {
        if self.config.oob_ports.is_empty() {
            OOBAssetInfo::Void
        } else {
            OOBAssetInfo::OOBAssetChannels(OOBAssetChannels {
                ports: self.config.oob_ports.iter().copied().take(255).collect(),
            })
        }
    }

    /// The next instant at which [`Link::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            None
        } else {
            self.deadline
        }
    }

    /// Tell the link the time; closes it if the preamble deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (LinkState::Preamble, Some(d)) = (&self.state, self.deadline)
            && now >= d
        {
            self.close(CloseReason::PreambleTimeout(self.config.preamble_timeout));
        }
    }

    /// The next frame to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Close the link (idempotent). A `Closed` event is queued with the reason.
    pub fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.state = LinkState::Closed(reason.clone());
        self.deadline = None;
        self.events.push_back(LinkEvent::Closed(reason));
    }

    fn fail(&mut self, e: ProtocolError) {
        self.close(CloseReason::Protocol(e));
    }

    /// Feed one binary frame from the peer.
    pub fn handle_frame(&mut self, now: Instant, frame: Bytes) {
        let from = self.role().map(Role::other);
        let limit = match from {
            Some(Role::Upstream) => self.config.max_frame_from_upstream,
            _ => self.config.max_frame_from_downstream,
        };
        if !self.is_closed() && frame.len() > limit {
            return self.fail(ProtocolError::FrameTooLarge {
                size: frame.len(),
                limit,
                from,
            });
        }
        match self.state {
            LinkState::Closed(_) => {}
            LinkState::Preamble => {
                self.handle_timeout(now);
                if self.is_closed() {
                    return;
                }
                match PreMessage::decode(frame) {
                    Ok(msg) => self.handle_pre(msg),
                    Err(e) => self.fail(ProtocolError::Decode(e)),
                }
            }
            LinkState::MainSequence => self.handle_main(frame),
        }
    }

    fn handle_main(&mut self, frame: Bytes) {
        let Some(role) = self.role() else { return };
        let first = frame.first().copied();
        match MainSequenceMessage::decode(frame.clone()) {
            Ok(msg) => {
                let kind = MessageKind::of(&msg);
                if kind.sender() != role.other() {
                    self.fail(ProtocolError::RoleViolation {
                        role: role.other(),
                        kind,
                    });
                } else {
                    self.events.push_back(LinkEvent::Message(msg));
                }
            }
            Err(e) => {
                // Frames that are not main-sequence messages but are preamble messages get a clearer reason.
                let pre = if first == Some(0)
                    || MessageKind::from_discriminant(first.unwrap_or(0)).is_none()
                {
                    PreMessage::decode(frame).ok()
                } else {
                    None
                };
                match pre {
                    Some(p) => self.fail(ProtocolError::PreMessageAfterPreamble(pre_name(&p))),
                    None => self.fail(ProtocolError::Decode(e)),
                }
            }
        }
    }

    fn check_header(&mut self, h: &IntroductionHeader) -> Option<Vec<u16>> {
        if h.protocol_version != PROTOCOL_VERSION {
            self.fail(ProtocolError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: h.protocol_version,
            });
            return None;
        }
        let theirs: Vec<u16> = h.capabilities.iter().map(|e| e.id.get()).collect();
        let mut shared: Vec<u16> = self
            .config
            .extensions
            .iter()
            .copied()
            .filter(|e| theirs.contains(e))
            .collect();
        shared.sort_unstable();
        shared.dedup();
        if !shared.contains(&CORE_EXTENSION) {
            self.fail(ProtocolError::MissingCore {
                ours: self.config.extensions.clone(),
                theirs,
            });
            return None;
        }
        Some(shared)
    }

    fn establish(
        &mut self,
        role: Role,
        peer_name: String,
        extensions: Vec<u16>,
        peer_oob_ports: Vec<u16>,
    ) {
        let e = Established {
            role,
            peer_name,
            extensions,
            peer_oob_ports,
        };
        self.state = LinkState::MainSequence;
        self.deadline = None;
        self.stage = None;
        self.established = Some(e.clone());
        self.events.push_back(LinkEvent::Established(e));
    }

    fn handle_pre(&mut self, msg: PreMessage) {
        let stage = self.stage.clone();
        match (stage, msg) {
            // ---- server
            (Some(Stage::ServerAwaitIntroduction), PreMessage::Probe(_)) => {
                let reply = PreMessage::ProbeReply(ProbeReply {
                    name: truncate_utf8(&self.config.name, u8::MAX as usize).into(),
                    icon: self.config.icon.clone().into(),
                });
                self.transmits.push_back(encode_pre(&reply));
                self.close(CloseReason::Local("probe answered".into()));
            }
            (Some(Stage::ServerAwaitIntroduction), PreMessage::Introduction(intro)) => {
                let Some(shared) = self.check_header(&intro.header) else {
                    return;
                };
                let peer_name = intro.header.name.0.clone();
                if intro.header.flags.authority_request() != 0 {
                    match self.config.authority {
                        AuthorityPolicy::Refuse => self.fail(ProtocolError::AuthorityRefused),
                        AuthorityPolicy::Accept => {
                            let ours = PreMessage::Introduction(Introduction {
                                header: self.header(false),
                            });
                            self.transmits.push_back(encode_pre(&ours));
                            self.stage = Some(Stage::ServerAwaitSwapReply {
                                peer_name,
                                extensions: shared,
                            });
                        }
                    }
                } else {
                    let reply = PreMessage::IntroductionReply(IntroductionReply {
                        header: self.header(false),
                        large_assets: self.oob_info(),
                    });
                    self.transmits.push_back(encode_pre(&reply));
                    self.establish(Role::Upstream, peer_name, shared, Vec::new());
                }
            }
            (
                Some(Stage::ServerAwaitSwapReply { peer_name, .. }),
                PreMessage::IntroductionReply(reply),
            ) => {
                let Some(shared) = self.check_header(&reply.header) else {
                    return;
                };
                let name = if reply.header.name.is_empty() {
                    peer_name
                } else {
                    reply.header.name.0.clone()
                };
                self.establish(
                    Role::Downstream,
                    name,
                    shared,
                    oob_ports(&reply.large_assets),
                );
            }
            (Some(Stage::ServerAwaitIntroduction), other) => self.fail(
                ProtocolError::UnexpectedPreMessage(pre_name(&other), "Introduction or Probe"),
            ),
            (Some(Stage::ServerAwaitSwapReply { .. }), other) => self.fail(
                ProtocolError::UnexpectedPreMessage(pre_name(&other), "IntroductionReply"),
            ),
            // ---- client
            (
                Some(Stage::ClientAwaitReply {
                    intent: ClientIntent::Probe,
                }),
                PreMessage::ProbeReply(r),
            ) => {
                self.events.push_back(LinkEvent::ProbeReply {
                    name: r.name.0,
                    icon: r.icon.0,
                });
                self.close(CloseReason::Local("probe complete".into()));
            }
            (
                Some(Stage::ClientAwaitReply {
                    intent: ClientIntent::Join,
                }),
                PreMessage::IntroductionReply(reply),
            ) => {
                let Some(shared) = self.check_header(&reply.header) else {
                    return;
                };
                self.establish(
                    Role::Downstream,
                    reply.header.name.0.clone(),
                    shared,
                    oob_ports(&reply.large_assets),
                );
            }
            (
                Some(Stage::ClientAwaitReply {
                    intent: ClientIntent::JoinAsUpstream,
                }),
                PreMessage::Introduction(intro),
            ) => {
                let Some(shared) = self.check_header(&intro.header) else {
                    return;
                };
                let reply = PreMessage::IntroductionReply(IntroductionReply {
                    header: self.header(false),
                    large_assets: self.oob_info(),
                });
                self.transmits.push_back(encode_pre(&reply));
                self.establish(
                    Role::Upstream,
                    intro.header.name.0.clone(),
                    shared,
                    Vec::new(),
                );
            }
            (
                Some(Stage::ClientAwaitReply {
                    intent: ClientIntent::JoinAsUpstream,
                }),
                PreMessage::IntroductionReply(_),
            ) => self.fail(ProtocolError::AuthorityIgnored),
            (Some(Stage::ClientAwaitReply { intent }), other) => {
                let expected = match intent {
                    ClientIntent::Probe => "ProbeReply",
                    ClientIntent::Join => "IntroductionReply",
                    ClientIntent::JoinAsUpstream => "Introduction (authority granted)",
                };
                self.fail(ProtocolError::UnexpectedPreMessage(
                    pre_name(&other),
                    expected,
                ))
            }
            (None, other) => self.fail(ProtocolError::UnexpectedPreMessage(
                pre_name(&other),
                "nothing",
            )),
        }
    }

    /// Queue a main-sequence message, checking that our role may send it.
    pub fn send(&mut self, msg: &MainSequenceMessage) -> Result<(), SendError> {
        let bytes = msg.encode_bytes().map_err(SendError::Encode)?;
        self.send_encoded(bytes)
    }

    /// Queue an already encoded `MainSequenceMessage` (encoded once, shared by many links).
    pub fn send_encoded(&mut self, frame: Bytes) -> Result<(), SendError> {
        let role = match (&self.state, self.role()) {
            (LinkState::MainSequence, Some(r)) => r,
            _ => return Err(SendError::NotOpen),
        };
        check_outgoing(role, &frame)?;
        self.transmits.push_back(frame);
        Ok(())
    }
}

/// Whether `frame` is an encoded `MainSequenceMessage` that `role` may send (its first byte names
/// a kind whose [`MessageKind::sender`] is `role`).
pub fn check_outgoing(role: Role, frame: &[u8]) -> Result<(), SendError> {
    let kind = frame
        .first()
        .and_then(|&d| MessageKind::from_discriminant(d))
        .ok_or(SendError::NotAMessage(frame.first().copied()))?;
    if kind.sender() != role {
        return Err(SendError::Role { role, kind });
    }
    Ok(())
}

fn oob_ports(info: &OOBAssetInfo) -> Vec<u16> {
    match info {
        OOBAssetInfo::Void => Vec::new(),
        OOBAssetInfo::OOBAssetChannels(c) => c.ports.0.clone(),
    }
}

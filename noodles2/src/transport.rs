//! The websocket transport: accepts and opens connections with tokio-tungstenite, and drives one
//! sans-IO [`Link`] per connection in a tokio task. It decides no protocol rules; the link does.
//!
//! Channels: each connection has a link task (the [`Link`] state machine, reading the socket) and
//! a writer task (writing it). Once the link is in the main sequence, [`LinkHandle::send`] hands
//! frames straight to the writer, so sending wakes one task, not two; closing goes through the
//! link task, behind the frames already sent. Tasks report to the application through one
//! crossbeam channel that Bevy systems drain without blocking.
//!
//! Bounds are in bytes, both ways ([`TransportLimits`]):
//! - **Outgoing**: bytes handed to [`LinkHandle::send`] and not yet written. Above
//!   `max_queued_bytes` the link stops reading from its peer (so a peer that pipelines requests
//!   is slowed by TCP backpressure until it reads its replies); if it stays above for
//!   `stall_timeout`, or goes above [`QUEUE_HARD_FACTOR`] times the bound, the link closes with
//!   [`TransportError::Stalled`].
//! - **Incoming**: bytes of messages delivered to the application and not yet handled (it calls
//!   [`LinkHandle::release_inbound`]). Above `max_inbound_bytes` the link stops reading its
//!   socket until the application catches up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, accept_hdr_async_with_config, connect_async_tls_with_config,
};

use crate::auth::{AuthFn, AuthRefusal, AuthRequest, Authorizer, Principal};
use crate::tls::{ClientTls, ServerTls};

use crate::link::{
    ClientIntent, CloseReason, Link, LinkConfig, LinkEvent, ListenError, ProtocolError, Role,
    SendError, TransportError, check_outgoing,
};

/// Identifies a connection for the lifetime of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Identifies a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u64);

/// Byte and message counters of one link, updated by its tasks.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Payload bytes of binary frames received.
    pub bytes_in: AtomicU64,
    /// Payload bytes of binary frames sent.
    pub bytes_out: AtomicU64,
    /// Binary frames (NOODLES2 messages, preamble included) received.
    pub messages_in: AtomicU64,
    /// Binary frames (NOODLES2 messages, preamble included) sent.
    pub messages_out: AtomicU64,
    /// Round-trip time of the last answered ping in µs (0: none yet).
    pub rtt_micros: AtomicU64,
    /// Bytes handed to [`LinkHandle::send`] and not yet written to the socket.
    pub queued_bytes: AtomicU64,
    /// Bytes of messages delivered to the application and not yet released.
    pub inbound_bytes: AtomicU64,
}

/// A snapshot of [`LinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Payload bytes of binary frames received.
    pub bytes_in: u64,
    /// Payload bytes of binary frames sent.
    pub bytes_out: u64,
    /// Binary frames (NOODLES2 messages, preamble included) received.
    pub messages_in: u64,
    /// Binary frames (NOODLES2 messages, preamble included) sent.
    pub messages_out: u64,
    /// Round-trip time of the last answered websocket ping (`None` before the first pong).
    pub rtt: Option<Duration>,
    /// Bytes waiting to be written to the peer.
    pub queued_bytes: u64,
    /// Bytes of received messages the application has not handled yet.
    pub inbound_bytes: u64,
}

impl LinkCounters {
    /// Read the current counter values.
    pub fn snapshot(&self) -> LinkStats {
        LinkStats {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            rtt: match self.rtt_micros.load(Ordering::Relaxed) {
                0 => None,
                us => Some(Duration::from_micros(us)),
            },
            queued_bytes: self.queued_bytes.load(Ordering::Relaxed),
            inbound_bytes: self.inbound_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Size limits of the transport.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// Largest websocket message accepted from anyone (one NOODLES2 message per frame); the
    /// link then applies its role's limit ([`LinkConfig`]). Default 64 MiB.
    pub max_frame_size: usize,
    /// Bytes that may wait for a peer. Above this the link stops reading from the peer (its
    /// requests wait, TCP slows it down) and, if that lasts `stall_timeout`, closes; above
    /// [`QUEUE_HARD_FACTOR`] times this it closes at once.
    pub max_queued_bytes: usize,
    /// How long a peer may keep more than `max_queued_bytes` waiting before its link closes.
    pub stall_timeout: Duration,
    /// Bytes of received messages the application may have not handled yet; above this the link
    /// stops reading its socket until the application catches up.
    pub max_inbound_bytes: usize,
    /// How long connecting (TCP plus websocket handshake) may take.
    pub connect_timeout: Duration,
    /// Interval of websocket pings on every connection (`None`: none). The round-trip time of
    /// their pongs is [`LinkStats::rtt`].
    pub ping_interval: Option<Duration>,
    /// A connection on which nothing arrived (no frame, no pong) for this long is closed with
    /// [`TransportError::Idle`] (`None`: never). Detects peers that vanished without closing
    /// (half-open TCP). Must exceed `ping_interval` by a round trip at least.
    pub idle_timeout: Option<Duration>,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            max_frame_size: crate::link::MAX_FRAME_FROM_UPSTREAM,
            max_queued_bytes: 16 << 20,
            stall_timeout: Duration::from_secs(30),
            max_inbound_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(5)),
            idle_timeout: Some(Duration::from_secs(20)),
        }
    }
}

/// Bytes tungstenite reads from a link's socket at a time. Its reader zero-fills this much of its
/// buffer before every read attempt, including the attempts that find nothing to read (a link
/// task polls its socket whenever it wakes): at tungstenite's default of 128 KiB, when every sent
/// frame woke the link task, that cost an Upstream a 128 KiB memset per frame per Downstream, the
/// largest item of its fan-out profile. Large frames take more, smaller reads instead.
pub const READ_BUFFER: usize = 16 * 1024;

/// A link whose queued bytes exceed this many times [`TransportLimits::max_queued_bytes`] closes
/// at once (the memory a peer that does not read can hold is bounded by it).
pub const QUEUE_HARD_FACTOR: usize = 4;

impl TransportLimits {
    fn hard_queue_bound(&self) -> usize {
        self.max_queued_bytes.saturating_mul(QUEUE_HARD_FACTOR)
    }

    fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_frame_size))
            .max_frame_size(Some(self.max_frame_size))
            .read_buffer_size(READ_BUFFER)
    }
}

/// What the application asks of a link task (frames go to the writer, not through it).
#[derive(Debug)]
enum Command {
    Close(String),
}

/// Where a link is, as its handle sees it ([`LinkHandle::send`] reads it).
const STATE_PREAMBLE: u8 = 0;
const STATE_UPSTREAM: u8 = 1;
const STATE_DOWNSTREAM: u8 = 2;
const STATE_CLOSED: u8 = 3;

/// Why [`LinkHandle::send`] failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    /// The link has not reached the main sequence yet (its [`LinkEvent::Established`] has not
    /// been reported): nothing may be sent before.
    #[error("the link is not in the main sequence yet")]
    NotOpen,
    /// The frame is not a main-sequence message this side may send.
    #[error("{0}")]
    Refused(SendError),
    /// So many bytes wait for the peer (it is not reading) that this frame would pass the hard
    /// bound; it was not queued. The caller should close the link (see [`LinkHandle::fail`]).
    #[error(
        "{queued} bytes already wait for the peer (hard bound {limit}): it is not reading, so the link is closed"
    )]
    Full {
        /// Bytes waiting.
        queued: usize,
        /// The hard bound.
        limit: usize,
    },
    /// The connection task has ended; the link is closed.
    #[error("the link is closed")]
    Closed,
}

/// The application's end of one connection.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    /// The link this handle drives (the `link` of its [`TransportEvent::Link`] reports).
    pub id: LinkId,
    tx: mpsc::UnboundedSender<Command>,
    /// The writer task's queue: the application's frames go straight there.
    out: mpsc::UnboundedSender<Outgoing>,
    /// `STATE_*`: set by the link task before it reports the link established, or closed.
    state: Arc<AtomicU8>,
    counters: Arc<LinkCounters>,
    limits: TransportLimits,
    /// Wakes the link task when queued or inbound bytes crossed their bound.
    wake: Arc<Notify>,
    abort: Arc<std::sync::Mutex<Option<AbortHandle>>>,
    events: crossbeam_channel::Sender<TransportEvent>,
}

impl LinkHandle {
    /// Queue an encoded main-sequence frame without blocking; it goes out after every frame
    /// queued before it. Fails when the link is not in the main sequence (before its
    /// [`LinkEvent::Established`], or closed), when this side may not send the frame
    /// ([`link::check_outgoing`](crate::link::check_outgoing)), or when the peer has stopped
    /// reading past the hard bound.
    pub fn send(&self, frame: Bytes) -> Result<(), QueueError> {
        let role = match self.state.load(Ordering::Acquire) {
            STATE_UPSTREAM => Role::Upstream,
            STATE_DOWNSTREAM => Role::Downstream,
            STATE_CLOSED => return Err(QueueError::Closed),
            _ => return Err(QueueError::NotOpen),
        };
        check_outgoing(role, &frame).map_err(QueueError::Refused)?;
        let len = frame.len() as u64;
        let before = self.counters.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let hard_bound = self.limits.hard_queue_bound() as u64;
        if before + len > hard_bound {
            self.counters.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(QueueError::Full {
                queued: before as usize,
                limit: hard_bound as usize,
            });
        }
        self.out.send(Outgoing::Frame(frame, true)).map_err(|_| {
            self.counters.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            QueueError::Closed
        })?;
        // The link task stops reading (and starts its stall clock) once too much waits: it must
        // look now, even if nothing arrives to wake it.
        let bound = self.limits.max_queued_bytes as u64;
        if before <= bound && before + len > bound {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The application handled `bytes` of received messages: the link may read more.
    pub fn release_inbound(&self, bytes: usize) {
        let bytes = bytes as u64;
        let before = self
            .counters
            .inbound_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(bytes))
            })
            .unwrap_or(0);
        // Only a link that stopped reading needs waking.
        let bound = self.limits.max_inbound_bytes as u64;
        if before > bound && before.saturating_sub(bytes) <= bound {
            self.wake.notify_one();
        }
    }

    /// Close gracefully: a websocket close frame carries the reason (after what is queued).
    pub fn close(&self, reason: impl Into<String>) {
        if self.tx.send(Command::Close(reason.into())).is_err() {
            self.abort();
        }
    }

    /// Drop the connection at once.
    pub fn abort(&self) {
        if let Ok(mut a) = self.abort.lock()
            && let Some(a) = a.take()
        {
            a.abort();
        }
    }

    /// Drop the connection at once and report it closed with `reason` (used when the peer stops
    /// reading: a close frame could not get through).
    pub fn fail(&self, reason: CloseReason) {
        self.abort();
        let _ = self.events.send(TransportEvent::Link {
            link: self.id,
            event: LinkEvent::Closed(reason),
        });
    }

    /// The link's current byte and message counts.
    pub fn stats(&self) -> LinkStats {
        self.counters.snapshot()
    }
}

/// What the transport reports to the application.
#[derive(Debug)]
pub enum TransportEvent {
    /// A listener is bound and accepting.
    Listening {
        /// The listener, as returned by [`Transport::listen`].
        listener: ListenerId,
        /// The address actually bound (with the chosen port if port 0 was asked for).
        addr: SocketAddr,
    },
    /// A listener could not bind.
    ListenFailed {
        /// The listener, as returned by [`Transport::listen`].
        listener: ListenerId,
        /// What went wrong.
        error: ListenError,
    },
    /// A connection was accepted; its link is in the preamble.
    Accepted {
        /// The listener that accepted it.
        listener: ListenerId,
        /// The application's handle to the new link.
        handle: LinkHandle,
        /// The remote address.
        peer: SocketAddr,
        /// Who the listener's authorization hook admitted (`None` without a hook).
        principal: Option<Principal>,
        /// The bearer token the peer presented, if any (admitted by the hook).
        token: Option<String>,
    },
    /// An outgoing connection reached the websocket layer; its link is in the preamble.
    Connected {
        /// The link, as in the handle returned by [`Transport::connect`].
        link: LinkId,
        /// The remote address (`None` if it could not be read).
        peer: Option<SocketAddr>,
    },
    /// Something happened on a link. `LinkEvent::Closed` is always the last for a link.
    Link {
        /// The link it happened on.
        link: LinkId,
        /// What happened.
        event: LinkEvent,
    },
}

/// Spawns connection tasks on a tokio runtime and collects their reports.
pub struct Transport {
    runtime: tokio::runtime::Handle,
    events_tx: crossbeam_channel::Sender<TransportEvent>,
    events_rx: crossbeam_channel::Receiver<TransportEvent>,
    next_id: Arc<AtomicU64>,
}

impl Transport {
    /// A transport that spawns its tasks on `runtime`. Nothing runs until
    /// [`Transport::listen`] or [`Transport::connect`] is called.
    pub fn new(runtime: tokio::runtime::Handle) -> Transport {
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        Transport {
            runtime,
            events_tx,
            events_rx,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The tokio runtime the transport runs on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Take the next report, if any (never blocks).
    pub fn try_recv(&self) -> Option<TransportEvent> {
        self.events_rx.try_recv().ok()
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Listen on `addr` (`ws://HOST:PORT`, `wss://HOST:PORT` or `HOST:PORT`; port 0 picks a
    /// free port; the bound address arrives as [`TransportEvent::Listening`]). Every accepted
    /// connection runs a server [`Link`] built from `make_config`, called per connection. With
    /// `tls`, connections speak TLS (`wss://`); a `wss://` address without it fails with
    /// [`ListenError::TlsRequired`].
    pub fn listen(
        &self,
        addr: String,
        limits: TransportLimits,
        make_config: Arc<dyn Fn() -> LinkConfig + Send + Sync>,
        auth: Option<Authorizer>,
        tls: Option<ServerTls>,
    ) -> (ListenerId, AbortHandle) {
        let listener = ListenerId(self.next_id());
        let events = self.events_tx.clone();
        let ids = self.next_id.clone();
        let runtime = self.runtime.clone();
        let task = self.runtime.spawn(async move {
            if addr.starts_with("wss://") && tls.is_none() {
                let _ = events.send(TransportEvent::ListenFailed {
                    listener,
                    error: ListenError::TlsRequired { addr },
                });
                return;
            }
            let bind = strip_ws_scheme(&addr);
            let socket = match TcpListener::bind(bind).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = events.send(TransportEvent::ListenFailed {
                        listener,
                        error: ListenError::Bind {
                            addr: addr.clone(),
                            reason: e.to_string(),
                        },
                    });
                    return;
                }
            };
            match socket.local_addr() {
                Ok(a) => {
                    let _ = events.send(TransportEvent::Listening { listener, addr: a });
                }
                Err(e) => {
                    let _ = events.send(TransportEvent::ListenFailed {
                        listener,
                        error: ListenError::LocalAddr {
                            addr: addr.clone(),
                            reason: e.to_string(),
                        },
                    });
                    return;
                }
            }
            loop {
                let (stream, peer) = match socket.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept on {addr} failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let id = LinkId(ids.fetch_add(1, Ordering::Relaxed));
                let (handle, ends) = new_handle(id, &limits, events.clone());
                let abort_slot = handle.abort.clone();
                let accepted = Accepting {
                    listener,
                    config: make_config(),
                    handle,
                    ends,
                    events: events.clone(),
                    peer,
                    limits,
                    auth: auth.clone(),
                };
                let tls = tls.clone();
                let task = runtime.spawn(async move {
                    match tls {
                        None => accepted.run(stream).await,
                        Some(tls) => {
                            let handshake = tls.acceptor().accept(stream);
                            match tokio::time::timeout(limits.connect_timeout, handshake).await {
                                Ok(Ok(stream)) => accepted.run(stream).await,
                                Ok(Err(e)) => {
                                    tracing::debug!("TLS handshake with {peer} failed: {e}")
                                }
                                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                            }
                        }
                    }
                });
                if let Ok(mut slot) = abort_slot.lock() {
                    *slot = Some(task.abort_handle());
                }
            }
        });
        (listener, task.abort_handle())
    }

    /// Connect to `url` (`ws://HOST:PORT` or `wss://HOST:PORT`) as a client. The returned handle
    /// can close the link at once; it sends frames once the link reports
    /// [`LinkEvent::Established`] ([`QueueError::NotOpen`] before). A `wss://` URL trusts the
    /// roots of `tls` ([`ClientTls::default`] when `None`: the Mozilla roots).
    pub fn connect(
        &self,
        url: String,
        config: LinkConfig,
        intent: ClientIntent,
        limits: TransportLimits,
        (token, tls): (Option<String>, Option<ClientTls>),
    ) -> LinkHandle {
        let id = LinkId(self.next_id());
        let events = self.events_tx.clone();
        let (handle, ends) = new_handle(id, &limits, events.clone());
        let task = self.runtime.spawn(async move {
            let request = match client_request(&url, token.as_deref()) {
                Ok(r) => r,
                Err(reason) => {
                    let reason = CloseReason::Transport(TransportError::Connect {
                        url: url.clone(),
                        reason,
                    });
                    let _ = events.send(TransportEvent::Link {
                        link: id,
                        event: LinkEvent::Closed(reason),
                    });
                    return;
                }
            };
            let connector = tls.unwrap_or_default().connector();
            let connecting = connect_async_tls_with_config(
                request,
                Some(limits.ws_config()),
                true,
                Some(connector),
            );
            let ws = match tokio::time::timeout(limits.connect_timeout, connecting).await {
                Ok(Ok((ws, _response))) => ws,
                Ok(Err(e)) => {
                    let reason = CloseReason::Transport(TransportError::Connect {
                        url: url.clone(),
                        reason: e.to_string(),
                    });
                    let _ = events.send(TransportEvent::Link {
                        link: id,
                        event: LinkEvent::Closed(reason),
                    });
                    return;
                }
                Err(_) => {
                    let reason = CloseReason::Transport(TransportError::ConnectTimeout {
                        url: url.clone(),
                        timeout: limits.connect_timeout,
                    });
                    let _ = events.send(TransportEvent::Link {
                        link: id,
                        event: LinkEvent::Closed(reason),
                    });
                    return;
                }
            };
            let peer = match ws.get_ref() {
                MaybeTlsStream::Plain(s) => s.peer_addr().ok(),
                MaybeTlsStream::Rustls(s) => s.get_ref().0.peer_addr().ok(),
                _ => None,
            };
            let _ = events.send(TransportEvent::Connected { link: id, peer });
            let link = Link::client(Instant::now(), config, intent);
            run_link(ws, link, ends, events, id, limits).await;
        });
        if let Ok(mut slot) = handle.abort.lock() {
            *slot = Some(task.abort_handle());
        }
        handle
    }
}

/// An accepted TCP connection on its way to a link: the websocket upgrade (with the
/// authorization hook), then the link task.
struct Accepting {
    listener: ListenerId,
    config: LinkConfig,
    handle: LinkHandle,
    ends: TaskEnds,
    events: crossbeam_channel::Sender<TransportEvent>,
    peer: SocketAddr,
    limits: TransportLimits,
    auth: Option<Authorizer>,
}

impl Accepting {
    async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let Accepting {
            listener,
            config,
            handle,
            ends,
            events,
            peer,
            limits,
            auth,
        } = self;
        let Some((ws, admission)) = upgrade(
            stream,
            peer,
            auth.as_deref(),
            (limits.ws_config(), limits.connect_timeout),
            "",
        )
        .await
        else {
            return;
        };
        let link = Link::server(Instant::now(), config);
        let id = handle.id;
        if events
            .send(TransportEvent::Accepted {
                listener,
                handle,
                peer,
                principal: admission.principal,
                token: admission.token,
            })
            .is_err()
        {
            return;
        }
        run_link(ws, link, ends, events, id, limits).await;
    }
}

/// The websocket upgrade of an accepted connection, with the authorization hook: the websocket
/// and what the hook decided, or `None` (logged, with `what` before "connection" and the peer)
/// when the handshake fails, is refused or times out.
pub(crate) async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    auth: Option<&AuthFn>,
    (config, timeout): (WebSocketConfig, Duration),
    what: &str,
) -> Option<(WebSocketStream<S>, Admission)> {
    let mut admission = Admission::default();
    #[expect(
        clippy::result_large_err,
        reason = "tungstenite's handshake callback answers with its ErrorResponse"
    )]
    let check = |req: &Request, resp: Response| admission.check(auth, req, peer).map(|()| resp);
    let accepting = accept_hdr_async_with_config(stream, check, Some(config));
    match tokio::time::timeout(timeout, accepting).await {
        Ok(Ok(ws)) => Some((ws, admission)),
        Ok(Err(e)) => {
            match &admission.refused {
                Some(r) => tracing::info!("refused a {what}connection from {peer}: {r}"),
                None => tracing::debug!("{what}websocket handshake with {peer} failed: {e}"),
            }
            None
        }
        Err(_) => {
            tracing::debug!("{what}websocket handshake with {peer} timed out");
            None
        }
    }
}

/// What the authorization hook decided at a websocket upgrade.
#[derive(Default)]
pub(crate) struct Admission {
    /// Who was admitted (`None` without a hook).
    pub(crate) principal: Option<Principal>,
    /// The bearer token presented, if any.
    pub(crate) token: Option<String>,
    /// Why the upgrade was refused.
    pub(crate) refused: Option<AuthRefusal>,
}

impl Admission {
    /// Run the hook on an upgrade request: admit (noting the principal and token) or answer
    /// with the refusal's status.
    #[expect(
        clippy::result_large_err,
        reason = "tungstenite's handshake callback answers with its ErrorResponse"
    )]
    pub(crate) fn check(
        &mut self,
        auth: Option<&AuthFn>,
        req: &Request,
        peer: SocketAddr,
    ) -> Result<(), ErrorResponse> {
        let request = AuthRequest {
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
            peer,
        };
        self.token = request.bearer_token().map(str::to_string);
        let Some(auth) = auth else {
            return Ok(());
        };
        match auth(&request) {
            Ok(p) => {
                self.principal = Some(p);
                Ok(())
            }
            Err(r) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
                let mut resp = ErrorResponse::new(Some(r.reason.clone()));
                *resp.status_mut() = status;
                self.refused = Some(r);
                Err(resp)
            }
        }
    }
}

/// The upgrade request for `url`, with `Authorization: Bearer token` when a token is given.
pub fn client_request(url: &str, token: Option<&str>) -> Result<Request, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(t) = token {
        let value = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| "the token is not a valid header value".to_string())?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    Ok(request)
}

/// The connection tasks' ends of a link's channels and shared state.
struct TaskEnds {
    commands: mpsc::UnboundedReceiver<Command>,
    /// The writer's queue, and the link task's own sender into it.
    writes: mpsc::UnboundedReceiver<Outgoing>,
    out: mpsc::UnboundedSender<Outgoing>,
    state: Arc<AtomicU8>,
    counters: Arc<LinkCounters>,
    wake: Arc<Notify>,
}

fn new_handle(
    id: LinkId,
    limits: &TransportLimits,
    events: crossbeam_channel::Sender<TransportEvent>,
) -> (LinkHandle, TaskEnds) {
    let (tx, commands) = mpsc::unbounded_channel();
    // Unbounded: what waits here is counted in bytes (`queued_bytes`) and bounded by the hard
    // bound in `LinkHandle::send` and the link task's stall check.
    let (out, writes) = mpsc::unbounded_channel();
    let handle = LinkHandle {
        id,
        tx,
        out: out.clone(),
        state: Arc::new(AtomicU8::new(STATE_PREAMBLE)),
        counters: Arc::new(LinkCounters::default()),
        limits: *limits,
        wake: Arc::new(Notify::new()),
        abort: Arc::new(std::sync::Mutex::new(None)),
        events,
    };
    let ends = TaskEnds {
        commands,
        writes,
        out,
        state: handle.state.clone(),
        counters: handle.counters.clone(),
        wake: handle.wake.clone(),
    };
    (handle, ends)
}

enum Outgoing {
    /// A frame; `true` when it counts in the link's queued bytes (the application's frames).
    Frame(Bytes, bool),
    Ping(Bytes),
    Close(CloseCode, String),
    /// Stop without a close frame of ours (the handles' senders keep the queue open).
    End,
}

/// Ends the writer task and marks the link closed for its handles when the link task ends,
/// however it ends (returned, or aborted by [`LinkHandle::abort`]).
struct WriterGuard {
    writer: AbortHandle,
    state: Arc<AtomicU8>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.state.store(STATE_CLOSED, Ordering::Release);
        self.writer.abort();
    }
}

fn close_code(reason: &CloseReason) -> CloseCode {
    match reason {
        CloseReason::Protocol(ProtocolError::TextFrame) => CloseCode::Unsupported,
        CloseReason::Protocol(_) => CloseCode::Protocol,
        CloseReason::PreambleTimeout(_) => CloseCode::Policy,
        CloseReason::Transport(_) => CloseCode::Away,
        CloseReason::Local(_) | CloseReason::Remote(_) => CloseCode::Normal,
    }
}

/// A close reason cut to what a websocket close frame can carry (123 bytes).
fn close_text(reason: &CloseReason) -> String {
    let s = match reason {
        CloseReason::Local(r) => r.clone(),
        other => other.to_string(),
    };
    let mut end = s.len().min(123);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Drive one link over one websocket until it closes.
async fn run_link<S>(
    ws: WebSocketStream<S>,
    mut link: Link,
    ends: TaskEnds,
    events: crossbeam_channel::Sender<TransportEvent>,
    id: LinkId,
    limits: TransportLimits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let TaskEnds {
        mut commands,
        writes: mut wrx,
        out: wtx,
        state,
        counters,
        wake,
    } = ends;
    let (mut sink, mut stream) = ws.split();
    let writer_counters = counters.clone();
    let writer_wake = wake.clone();
    let queue_bound = limits.max_queued_bytes as u64;
    let writer = tokio::spawn(async move {
        while let Some(o) = wrx.recv().await {
            match o {
                Outgoing::Frame(b, counted) => {
                    let n = b.len() as u64;
                    // Fails once the peer's close frame arrived (data may not follow it): stop
                    // sending, but still answer the close below.
                    if sink.send(Message::Binary(b)).await.is_err() {
                        break;
                    }
                    if counted {
                        let before = writer_counters.queued_bytes.fetch_sub(n, Ordering::Relaxed);
                        // A link task that stopped reading for this may read again.
                        if before > queue_bound && before - n <= queue_bound {
                            writer_wake.notify_one();
                        }
                    }
                    writer_counters.bytes_out.fetch_add(n, Ordering::Relaxed);
                    writer_counters.messages_out.fetch_add(1, Ordering::Relaxed);
                }
                Outgoing::Ping(payload) => {
                    if sink.send(Message::Ping(payload)).await.is_err() {
                        break;
                    }
                }
                Outgoing::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
                Outgoing::End => break,
            }
        }
        // Flushes a close frame (ours, or tungstenite's answer to the peer's) and ends the
        // connection.
        let _ = sink.close().await;
    });
    let _guard = WriterGuard {
        writer: writer.abort_handle(),
        state: state.clone(),
    };

    // Liveness: pings at an interval, answered pongs give the round-trip time, and a link on
    // which nothing arrives for the idle timeout is closed.
    let mut last_heard = Instant::now();
    let mut pings = limits.ping_interval.map(|i| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + i, i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut ping_sent: Option<(u64, Instant)> = None;
    let mut ping_seq = 0u64;
    // Since when more than `max_queued_bytes` wait for the peer.
    let mut over_since: Option<Instant> = None;
    loop {
        // Flush what the link wants to send (its own frames: preamble), then hand its events to
        // the application.
        while let Some(frame) = link.poll_transmit() {
            let _ = wtx.send(Outgoing::Frame(frame, false));
        }
        let mut closed = None;
        while let Some(event) = link.poll_event() {
            match &event {
                // Before the application hears of it: from then on its frames go to the writer.
                LinkEvent::Established(e) => state.store(
                    match e.role {
                        Role::Upstream => STATE_UPSTREAM,
                        Role::Downstream => STATE_DOWNSTREAM,
                    },
                    Ordering::Release,
                ),
                LinkEvent::Closed(r) => {
                    state.store(STATE_CLOSED, Ordering::Release);
                    closed = Some(r.clone());
                }
                LinkEvent::Message(m) => {
                    use crate::codec::Wire;
                    counters
                        .inbound_bytes
                        .fetch_add(m.wire_len() as u64, Ordering::Relaxed);
                }
                _ => {}
            }
            if events
                .send(TransportEvent::Link { link: id, event })
                .is_err()
            {
                closed.get_or_insert(CloseReason::Local("application gone".into()));
            }
        }
        if let Some(reason) = closed {
            let code = close_code(&reason);
            // A close frame answers the peer's too (RFC 6455 §5.5.1); only a peer that stopped
            // reading, or a broken connection, gets none.
            let polite = !matches!(
                &reason,
                CloseReason::Transport(TransportError::Stalled { .. })
            );
            let _ = wtx.send(if polite {
                Outgoing::Close(code, close_text(&reason))
            } else {
                Outgoing::End
            });
            drop(wtx);
            // Give the writer a moment to deliver the close frame; a peer that does not read loses it.
            let abort = writer.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), writer)
                .await
                .is_err()
            {
                abort.abort();
            }
            return;
        }

        // Backpressure: while too much waits for the peer, or for the application, the socket is
        // not read; a peer that leaves too much unread for too long is closed.
        let now = Instant::now();
        let queued = counters.queued_bytes.load(Ordering::Relaxed) as usize;
        let over_out = queued > limits.max_queued_bytes;
        let over_in =
            counters.inbound_bytes.load(Ordering::Relaxed) as usize > limits.max_inbound_bytes;
        over_since = if over_out {
            over_since.or(Some(now))
        } else {
            None
        };
        if let Some(since) = over_since
            && now.saturating_duration_since(since) >= limits.stall_timeout
        {
            link.close(CloseReason::Transport(TransportError::Stalled {
                queued,
                limit: limits.max_queued_bytes,
            }));
            continue;
        }
        let paused = over_out || over_in;
        if paused {
            // Nothing is read meanwhile: silence is not the peer's fault.
            last_heard = now;
        }
        let stall_deadline = over_since.map(|s| s + limits.stall_timeout);
        let deadline = link.poll_timeout();
        let idle_deadline = limits.idle_timeout.map(|t| last_heard + t);
        tokio::select! {
            // Queued or inbound bytes crossed a bound (see `LinkHandle::send`).
            _ = wake.notified() => {}
            _ = sleep_until(stall_deadline) => {}
            msg = stream.next(), if !paused => {
                let now = Instant::now();
                last_heard = now;
                match msg {
                    Some(Ok(Message::Binary(b))) => {
                        counters.bytes_in.fetch_add(b.len() as u64, Ordering::Relaxed);
                        counters.messages_in.fetch_add(1, Ordering::Relaxed);
                        link.handle_frame(now, b);
                    }
                    Some(Ok(Message::Text(_))) => link.close(CloseReason::Protocol(ProtocolError::TextFrame)),
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| f.reason.to_string()).filter(|r| !r.is_empty()).unwrap_or_else(|| "no reason given".into());
                        link.close(CloseReason::Remote(why));
                    }
                    Some(Ok(Message::Pong(payload))) => {
                        if let Some((seq, at)) = ping_sent
                            && payload.as_ref() == &seq.to_le_bytes()[..]
                        {
                            let rtt = now.saturating_duration_since(at).as_micros().max(1);
                            counters.rtt_micros.store(rtt as u64, Ordering::Relaxed);
                            ping_sent = None;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => link.close(CloseReason::Transport(TransportError::Websocket(e.to_string()))),
                    None => link.close(CloseReason::Remote("connection closed without a close frame".into())),
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Close(reason)) => link.close(CloseReason::Local(reason)),
                None => link.close(CloseReason::Local("the application dropped the link".into())),
            },
            _ = sleep_until(deadline) => link.handle_timeout(Instant::now()),
            _ = tick(&mut pings) => {
                ping_seq += 1;
                if wtx.send(Outgoing::Ping(Bytes::copy_from_slice(&ping_seq.to_le_bytes()))).is_ok() {
                    ping_sent = Some((ping_seq, Instant::now()));
                }
            }
            _ = sleep_until(idle_deadline) => {
                if let Some(timeout) = limits.idle_timeout {
                    link.close(CloseReason::Transport(TransportError::Idle { timeout }));
                }
            }
        }
    }
}

/// The next tick of an optional interval (never, without one).
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// The socket address in a `ws://HOST:PORT` or `wss://HOST:PORT` url, or a plain `HOST:PORT`.
pub fn strip_ws_scheme(url: &str) -> &str {
    let s = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .unwrap_or(url);
    s.trim_end_matches('/')
}

/// The host part of a `ws://HOST:PORT` or `wss://HOST:PORT` url, or of `HOST:PORT` (an IPv6
/// host keeps its brackets).
pub fn url_host(url: &str) -> &str {
    let s = strip_ws_scheme(url);
    let s = s.split_once('/').map_or(s, |(authority, _)| authority);
    match s.rsplit_once(':') {
        Some((h, port)) if !port.contains(']') => h,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_addresses_of_urls() {
        assert_eq!(url_host("ws://127.0.0.1:0"), "127.0.0.1");
        assert_eq!(url_host("wss://example.org:443/path"), "example.org");
        assert_eq!(url_host("0.0.0.0:5000"), "0.0.0.0");
        assert_eq!(url_host("ws://[::1]:80/"), "[::1]");
        assert_eq!(url_host("[::1]"), "[::1]");
        assert_eq!(url_host("localhost"), "localhost");
        assert_eq!(strip_ws_scheme("wss://localhost:5000/"), "localhost:5000");
        assert_eq!(strip_ws_scheme("ws://127.0.0.1:1"), "127.0.0.1:1");
    }
}

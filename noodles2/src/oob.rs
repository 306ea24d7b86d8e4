//! Out-of-band (OOB) asset channels and `BufferFromURL` fetching: the transport side.
//!
//! The spec (`README.md`, *Assets and OOB Transfer*; `oob_asset.jaw`) lets an Upstream serve
//! large buffers on separate websockets whose ports it advertises in `IntroductionReply`
//! (`OOBAssetInfo`). On such a channel the client may only send `OOBRequest` and the server may
//! only send `OOBReply`; every request gets exactly one reply, with the whole content
//! (`OOBReplySuccess`) or the id and a UTF-8 reason (`OOBReplyFailure`). OOB connections must not
//! be kept with a node that has no main link open.
//!
//! This module owns sockets and tasks only; which buffers go out of band, and what the
//! Downstream does with the bytes, is decided by the asset layer (`assets::remote`).
//!
//! - [`OobStore`] + [`spawn_server`]: the Upstream's OOB websocket server. It answers requests
//!   from the bytes in the store, and accepts connections only from IP addresses that have a main
//!   link open (the protocol has no other way for an OOB client to identify itself); when the
//!   last main link from an address closes, its OOB connections are dropped.
//! - [`OobClient`]: the Downstream's one OOB connection per link, pipelining requests.
//! - `fetch_url` (feature `url`): a blocking HTTP(S) fetch (ureq) with size checks, for
//!   `BufferFromURL`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::auth::Authorizer;
use crate::codec::{
    OOBAssetID, OOBContent, OOBReply, OOBReplyFailure, OOBReplyHeader, OOBReplySuccess, OOBRequest,
    OOBRequestContent, OOBString, Wire,
};
use crate::tls::{ClientTls, ServerTls};

/// Largest `OOBRequest` frame the server reads (a request is 9 bytes).
const MAX_REQUEST_FRAME: usize = 1024;

/// Bytes an `OOBReply` adds around its content (variant tag, id, length prefix), with margin.
const REPLY_OVERHEAD: usize = 64;

/// A successful reply larger than this goes out as a fragmented websocket message (one
/// NOODLES2 message, RFC 6455 §5.4) of frames this large, each a slice of the stored bytes: the
/// server never copies the content whole (encoding it, then tungstenite buffering the frame,
/// took three times its size, and tungstenite's write buffer moved the unsent rest of a large
/// frame forward after every partial socket write).
pub const REPLY_FRAGMENT: usize = 256 * 1024;

/// The bytes an Upstream serves out of band, and which peers may ask for them.
#[derive(Debug, Default)]
pub struct OobStore {
    assets: RwLock<HashMap<u64, Bytes>>,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

#[derive(Debug, Default)]
struct Peer {
    /// Open main links from this address.
    links: usize,
    /// OOB connections from this address, by connection number.
    conns: HashMap<u64, AbortHandle>,
}

impl OobStore {
    /// Serve `bytes` under OOB id `id` (replaces what was there).
    pub fn insert(&self, id: u64, bytes: Bytes) {
        if let Ok(mut a) = self.assets.write() {
            a.insert(id, bytes);
        }
    }

    /// Stop serving OOB id `id`.
    pub fn remove(&self, id: u64) -> Option<Bytes> {
        self.assets.write().ok().and_then(|mut a| a.remove(&id))
    }

    /// The bytes served under `id`.
    pub fn get(&self, id: u64) -> Option<Bytes> {
        self.assets.read().ok().and_then(|a| a.get(&id).cloned())
    }

    /// Number of assets served.
    pub fn len(&self) -> usize {
        self.assets.read().map(|a| a.len()).unwrap_or(0)
    }

    /// Whether nothing is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A main link from `ip` opened: OOB connections from it are allowed.
    pub fn link_opened(&self, ip: IpAddr) {
        if let Ok(mut p) = self.peers.lock() {
            p.entry(ip).or_default().links += 1;
        }
    }

    /// A main link from `ip` closed: when it was the last one, drop that address's OOB
    /// connections (the spec forbids keeping them).
    pub fn link_closed(&self, ip: IpAddr) {
        let Ok(mut p) = self.peers.lock() else { return };
        let Some(peer) = p.get_mut(&ip) else { return };
        peer.links = peer.links.saturating_sub(1);
        if peer.links == 0
            && let Some(peer) = p.remove(&ip)
        {
            for (_, c) in peer.conns {
                c.abort();
            }
        }
    }

    /// Number of OOB connections open now.
    pub fn connections(&self) -> usize {
        self.peers
            .lock()
            .map(|p| p.values().map(|x| x.conns.len()).sum())
            .unwrap_or(0)
    }

    /// Register a connection from `ip` if a main link from it is open.
    fn admit(&self, ip: IpAddr, conn: u64, abort: AbortHandle) -> bool {
        let Ok(mut p) = self.peers.lock() else {
            return false;
        };
        match p.get_mut(&ip) {
            Some(peer) if peer.links > 0 => {
                peer.conns.insert(conn, abort);
                true
            }
            _ => false,
        }
    }

    fn forget(&self, ip: IpAddr, conn: u64) {
        if let Ok(mut p) = self.peers.lock()
            && let Some(peer) = p.get_mut(&ip)
        {
            peer.conns.remove(&conn);
        }
    }
}

/// The answer to one `OOBRequest` from the store: the content, or a failure naming the id.
pub fn answer(store: &OobStore, request: &OOBRequest) -> OOBReply {
    let OOBRequest::OOBRequestContent(OOBRequestContent { asset_id }) = request;
    let id = asset_id.id.get();
    match store.get(id) {
        Some(bytes) => OOBReply::OOBReplySuccess(OOBReplySuccess {
            header: OOBReplyHeader::new(OOBAssetID::new(id)),
            content: OOBContent(bytes),
        }),
        None => OOBReply::OOBReplyFailure(OOBReplyFailure {
            asset_id: OOBAssetID::new(id),
            reason: OOBString(format!("unknown OOB asset id {id}")),
        }),
    }
}

/// A successful reply above [`REPLY_FRAGMENT`] bytes as the frames of one fragmented websocket
/// message: the reply's head (variant tag, id, content length: what [`Wire::encode`] writes
/// before the content) with the first part of the content, then continuation frames slicing the
/// content without copying it. `None` for a reply small enough for one frame.
pub fn reply_fragments(
    reply: &OOBReply,
) -> Option<Vec<tokio_tungstenite::tungstenite::protocol::frame::Frame>> {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let OOBReply::OOBReplySuccess(s) = reply else {
        return None;
    };
    let content = &s.content.0;
    if content.len() <= REPLY_FRAGMENT {
        return None;
    }
    // The head is the encoding of the same reply with empty content, its length prefix (the
    // last 8 bytes, `u64` little-endian) set to the content's length.
    let mut head = OOBReply::OOBReplySuccess(OOBReplySuccess {
        header: s.header,
        content: OOBContent(Bytes::new()),
    })
    .encode()
    .ok()?;
    let at = head.len().checked_sub(8)?;
    head[at..].copy_from_slice(&(content.len() as u64).to_le_bytes());
    let first = REPLY_FRAGMENT - head.len();
    head.extend_from_slice(&content[..first]);
    let mut frames = vec![Frame::message(head, OpCode::Data(Data::Binary), false)];
    let mut start = first;
    while start < content.len() {
        let end = (start + REPLY_FRAGMENT).min(content.len());
        frames.push(Frame::message(
            content.slice(start..end),
            OpCode::Data(Data::Continue),
            end == content.len(),
        ));
        start = end;
    }
    Some(frames)
}

/// Serve `store` on an already bound listener (bind it synchronously, so its port can be
/// advertised before any main link opens). Returns the accept task's abort handle.
/// With `auth`, every connection must also pass the hook at its websocket upgrade (the same as
/// the main link's listener), so a process on an admitted address cannot fetch without
/// credentials. With `tls`, connections speak TLS (`wss://`), as the main listener's do.
pub fn spawn_server(
    runtime: &tokio::runtime::Handle,
    listener: std::net::TcpListener,
    store: Arc<OobStore>,
    handshake_timeout: Duration,
    (auth, tls): (Option<Authorizer>, Option<ServerTls>),
) -> AbortHandle {
    let rt = runtime.clone();
    runtime
        .spawn(async move {
            let addr = listener.local_addr().ok();
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|_| tokio::net::TcpListener::from_std(listener))
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("OOB listener {addr:?} unusable: {e}");
                    return;
                }
            };
            let mut next = 0u64;
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("OOB accept on {addr:?} failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                next += 1;
                let conn = next;
                let store = store.clone();
                // The task waits for its registration before it serves anything.
                let (go_tx, go_rx) = tokio::sync::oneshot::channel::<bool>();
                let task = rt.spawn(serve_connection(
                    (stream, tls.clone()),
                    peer,
                    store.clone(),
                    (handshake_timeout, auth.clone()),
                    go_rx,
                ));
                let admitted = store.admit(peer.ip(), conn, task.abort_handle());
                let _ = go_tx.send(admitted);
                let store2 = store.clone();
                rt.spawn(async move {
                    let _ = task.await;
                    store2.forget(peer.ip(), conn);
                });
            }
        })
        .abort_handle()
}

async fn serve_connection(
    (stream, tls): (tokio::net::TcpStream, Option<ServerTls>),
    peer: SocketAddr,
    store: Arc<OobStore>,
    options: (Duration, Option<Authorizer>),
    admitted: tokio::sync::oneshot::Receiver<bool>,
) {
    let Some(tls) = tls else {
        return serve_websocket(stream, peer, store, options, admitted).await;
    };
    match tokio::time::timeout(options.0, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => serve_websocket(stream, peer, store, options, admitted).await,
        Ok(Err(e)) => tracing::debug!("OOB TLS handshake with {peer} failed: {e}"),
        Err(_) => tracing::debug!("OOB TLS handshake with {peer} timed out"),
    }
}

async fn serve_websocket<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    store: Arc<OobStore>,
    (handshake_timeout, auth): (Duration, Option<Authorizer>),
    admitted: tokio::sync::oneshot::Receiver<bool>,
) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_REQUEST_FRAME))
        .max_frame_size(Some(MAX_REQUEST_FRAME));
    let upgrading = crate::transport::upgrade(
        stream,
        peer,
        auth.as_deref(),
        (config, handshake_timeout),
        "OOB ",
    );
    let Some((ws, _)) = upgrading.await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let close = |code: CloseCode, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        }))
    };
    if admitted.await != Ok(true) {
        tracing::debug!("OOB connection from {peer} refused: no main link from that address");
        let _ = sink
            .send(close(
                CloseCode::Policy,
                "no main link open from this address",
            ))
            .await;
        return;
    }
    tracing::debug!("OOB connection from {peer} open");
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Binary(b)) => {
                let request = match OOBRequest::decode(b) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!("OOB peer {peer} sent a bad request: {e}");
                        let _ = sink
                            .send(close(CloseCode::Protocol, "not an OOBRequest"))
                            .await;
                        return;
                    }
                };
                let reply = answer(&store, &request);
                if let OOBReply::OOBReplyFailure(f) = &reply {
                    tracing::debug!("OOB peer {peer}: {}", f.reason.0);
                }
                if let Some(frames) = reply_fragments(&reply) {
                    for frame in frames {
                        if sink.feed(Message::Frame(frame)).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
                let frame = match reply.encode_bytes() {
                    Ok(f) => f,
                    Err(e) => {
                        // Only content above 2^64 bytes could fail; answer with a failure.
                        let id = match &reply {
                            OOBReply::OOBReplySuccess(s) => s.header.asset_id.id.get(),
                            OOBReply::OOBReplyFailure(f) => f.asset_id.id.get(),
                        };
                        let failure = OOBReply::OOBReplyFailure(OOBReplyFailure {
                            asset_id: OOBAssetID::new(id),
                            reason: OOBString(format!("OOB asset {id} cannot be encoded: {e}")),
                        });
                        failure.encode_bytes().unwrap_or_default()
                    }
                };
                if sink.send(Message::Binary(frame)).await.is_err() {
                    return;
                }
            }
            Ok(Message::Text(_)) => {
                let _ = sink
                    .send(close(CloseCode::Unsupported, "text frames are not allowed"))
                    .await;
                return;
            }
            Ok(Message::Close(_)) => {
                let _ = sink.close().await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("OOB connection from {peer} failed: {e}");
                return;
            }
        }
    }
}

/// What a background fetch produced, for the ticket it was started with.
#[derive(Debug)]
pub struct FetchDone {
    /// The ticket the fetch was started with (e.g. in [`OobClient::request`]).
    pub ticket: u64,
    /// The asset's content, or why it could not be fetched.
    pub result: Result<Bytes, String>,
}

/// Where a Downstream opens its OOB channel: the Upstream's host and advertised port, over TLS
/// (`wss://`) when the main link is.
#[derive(Debug, Clone)]
pub struct OobTarget {
    /// The host: the main link's peer address for `ws://`, or the host name of its `wss://` URL
    /// (the name its certificate is checked against).
    pub host: String,
    /// The port from the Upstream's `OOBAssetInfo`.
    pub port: u16,
    /// The roots trusted, when the main link is `wss://`.
    pub tls: Option<ClientTls>,
}

impl OobTarget {
    /// A plain `ws://` channel to `addr`.
    pub fn plain(addr: SocketAddr) -> OobTarget {
        OobTarget {
            host: match addr.ip() {
                IpAddr::V6(ip) => format!("[{ip}]"),
                IpAddr::V4(ip) => ip.to_string(),
            },
            port: addr.port(),
            tls: None,
        }
    }

    /// The channel's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// The Downstream's OOB connection to one Upstream. Dropping it closes the connection.
#[derive(Debug)]
pub struct OobClient {
    requests: mpsc::UnboundedSender<(u64, u64)>,
    abort: AbortHandle,
    /// Why the connection ended, set before the request queue closes.
    failure: Arc<OnceLock<String>>,
}

impl Drop for OobClient {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl OobClient {
    /// Connect to `addr` in the background. Results of [`OobClient::request`] go to `results`.
    /// `max_bytes` bounds the content of one reply.
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        target: OobTarget,
        max_bytes: u64,
        connect_timeout: Duration,
        token: Option<String>,
        results: crossbeam_channel::Sender<FetchDone>,
    ) -> OobClient {
        let (tx, rx) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        let task = runtime.spawn(run_client(
            (target, token),
            max_bytes,
            connect_timeout,
            rx,
            results,
            failure.clone(),
        ));
        OobClient {
            requests: tx,
            abort: task.abort_handle(),
            failure,
        }
    }

    /// Ask for OOB asset `oob_id`; the answer arrives as a [`FetchDone`] with `ticket`.
    /// Returns false when the connection is gone (make a new client).
    pub fn request(&self, ticket: u64, oob_id: u64) -> bool {
        self.requests.send((ticket, oob_id)).is_ok()
    }

    /// Whether the connection task ended (after a failure).
    pub fn is_closed(&self) -> bool {
        self.requests.is_closed()
    }

    /// Why the connection ended, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
}

async fn run_client(
    addr: (OobTarget, Option<String>),
    max_bytes: u64,
    connect_timeout: Duration,
    mut requests: mpsc::UnboundedReceiver<(u64, u64)>,
    results: crossbeam_channel::Sender<FetchDone>,
    failure: Arc<OnceLock<String>>,
) {
    // Waiting tickets per OOB id (the same id may be asked for twice).
    let mut waiting: HashMap<u64, Vec<u64>> = HashMap::new();
    let reason = client_loop(
        addr,
        max_bytes,
        connect_timeout,
        &mut requests,
        &results,
        &mut waiting,
    )
    .await;
    // Everything still waiting, or queued, fails with the connection's reason.
    let _ = failure.set(reason.clone());
    requests.close();
    while let Ok((ticket, oob)) = requests.try_recv() {
        waiting.entry(oob).or_default().push(ticket);
    }
    for (oob, tickets) in waiting {
        for ticket in tickets {
            let _ = results.send(FetchDone {
                ticket,
                result: Err(format!("OOB asset {oob}: {reason}")),
            });
        }
    }
}

/// Runs the connection until it fails; returns why.
async fn client_loop(
    (target, token): (OobTarget, Option<String>),
    max_bytes: u64,
    connect_timeout: Duration,
    requests: &mut mpsc::UnboundedReceiver<(u64, u64)>,
    results: &crossbeam_channel::Sender<FetchDone>,
    waiting: &mut HashMap<u64, Vec<u64>>,
) -> String {
    let url = target.url();
    let limit = usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(REPLY_OVERHEAD);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let request = match crate::transport::client_request(&url, token.as_deref()) {
        Ok(r) => r,
        Err(e) => return format!("cannot open the OOB channel {url}: {e}"),
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(target.tls.unwrap_or_default().connector()),
    );
    let ws = match tokio::time::timeout(connect_timeout, connecting).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return format!("cannot open the OOB channel {url}: {e}"),
        Err(_) => return format!("opening the OOB channel {url} timed out"),
    };
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            req = requests.recv() => {
                let Some((ticket, oob)) = req else {
                    let _ = sink.close().await;
                    return "the OOB channel was closed by this node".into();
                };
                let first = !waiting.contains_key(&oob);
                waiting.entry(oob).or_default().push(ticket);
                if first {
                    let frame = OOBRequest::OOBRequestContent(OOBRequestContent {
                        asset_id: OOBAssetID::new(oob),
                    })
                    .encode_bytes()
                    .unwrap_or_default();
                    if let Err(e) = sink.send(Message::Binary(frame)).await {
                        return format!("OOB channel {url} failed: {e}");
                    }
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let reply = match OOBReply::decode(b) {
                        Ok(r) => r,
                        Err(e) => return format!("OOB channel {url} sent a malformed OOBReply: {e}"),
                    };
                    let (oob, result) = match reply {
                        OOBReply::OOBReplySuccess(s) => {
                            let content = s.content.0;
                            let r = if content.len() as u64 > max_bytes {
                                Err(format!("{} bytes exceed the limit of {max_bytes}", content.len()))
                            } else {
                                Ok(content)
                            };
                            (s.header.asset_id.id.get(), r)
                        }
                        OOBReply::OOBReplyFailure(f) => (
                            f.asset_id.id.get(),
                            Err(format!("the Upstream refused it: {}", f.reason.0)),
                        ),
                    };
                    let Some(tickets) = waiting.remove(&oob) else {
                        return format!("OOB channel {url} answered OOB asset {oob}, which was not requested");
                    };
                    for ticket in tickets {
                        let result = result.clone().map_err(|e| format!("OOB asset {oob}: {e}"));
                        let _ = results.send(FetchDone { ticket, result });
                    }
                }
                Some(Ok(Message::Text(_))) => return format!("OOB channel {url} sent a text frame"),
                Some(Ok(Message::Close(f))) => {
                    // Answer the close frame (RFC 6455 §5.5.1) before going.
                    let _ = sink.close().await;
                    let why = f.map(|f| f.reason.to_string()).filter(|r| !r.is_empty());
                    return format!("OOB channel {url} closed by the Upstream ({})", why.as_deref().unwrap_or("no reason given"));
                }
                Some(Ok(_)) => {}
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e))) => {
                    return format!("OOB channel {url}: a reply exceeds this node's limit of {max_bytes} bytes ({e})");
                }
                Some(Err(e)) => return format!("OOB channel {url} failed: {e}"),
                None => return format!("OOB channel {url} closed"),
            }
        }
    }
}

/// Fetch a `BufferFromURL` (blocking: run it on a blocking thread). The body must be exactly
/// `byte_size` bytes (spec: clients MUST reject the asset if the fetched size differs); a
/// `Content-Length` that differs fails before the body is read, and reading stops past
/// `byte_size`. Only `http` and `https` URLs are fetched. Feature `url`.
#[cfg(feature = "url")]
pub fn fetch_url(url: &str, byte_size: u64, timeout: Duration) -> Result<Bytes, String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http") | Some("https")) {
        return Err(format!("URL {url:?}: only http and https URLs are fetched"));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .max_redirects(5)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("URL {url}: {e}"))?;
    if let Some(n) = response.body().content_length()
        && n != byte_size
    {
        return Err(format!(
            "URL {url}: Content-Length {n} differs from the declared size {byte_size}"
        ));
    }
    // One byte past the declared size is enough to know it is too long.
    let body = response
        .body_mut()
        .with_config()
        .limit(byte_size.saturating_add(1))
        .read_to_vec()
        .map_err(|e| format!("URL {url}: {e}"))?;
    if body.len() as u64 != byte_size {
        return Err(format!(
            "URL {url}: {} bytes fetched, the asset declares {byte_size}",
            body.len()
        ));
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_replies_are_fragments_of_the_same_encoding() {
        let store = OobStore::default();
        let big: Bytes = (0..REPLY_FRAGMENT * 3 + 17).map(|i| i as u8).collect();
        store.insert(9, big.clone());
        store.insert(10, Bytes::from(vec![1u8; REPLY_FRAGMENT]));
        let ask = |id| {
            answer(
                &store,
                &OOBRequest::OOBRequestContent(OOBRequestContent {
                    asset_id: OOBAssetID::new(id),
                }),
            )
        };
        let reply = ask(9);
        let frames = reply_fragments(&reply).expect("fragmented");
        assert_eq!(frames.len(), 4, "head + content over 256 KiB frames");
        let mut joined = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.header().is_final, i == frames.len() - 1);
            assert!(f.payload().len() <= REPLY_FRAGMENT);
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(
            joined,
            reply.encode().unwrap(),
            "the same bytes as one frame"
        );
        match OOBReply::decode(Bytes::from(joined)).unwrap() {
            OOBReply::OOBReplySuccess(s) => assert_eq!(s.content.0, big),
            other => panic!("{other:?}"),
        }
        // The continuation frames slice the stored bytes instead of copying them.
        let stored = store.get(9).unwrap();
        let last = frames.last().unwrap().payload();
        assert_eq!(
            last.as_ptr(),
            stored[stored.len() - last.len()..].as_ptr(),
            "zero-copy"
        );
        // Small replies and failures stay one frame.
        assert!(reply_fragments(&ask(10)).is_none());
        assert!(reply_fragments(&ask(11)).is_none());
    }

    #[test]
    fn answers_known_and_unknown_ids() {
        let store = OobStore::default();
        store.insert(7, Bytes::from_static(b"hello"));
        let ask = |id| {
            OOBRequest::OOBRequestContent(OOBRequestContent {
                asset_id: OOBAssetID::new(id),
            })
        };
        match answer(&store, &ask(7)) {
            OOBReply::OOBReplySuccess(s) => {
                assert_eq!(s.header.asset_id.id.get(), 7);
                assert_eq!(&s.content.0[..], b"hello");
            }
            other => panic!("expected success, got {other:?}"),
        }
        match answer(&store, &ask(8)) {
            OOBReply::OOBReplyFailure(f) => {
                assert_eq!(f.asset_id.id.get(), 8);
                assert!(f.reason.0.contains('8'), "{}", f.reason.0);
            }
            other => panic!("expected failure, got {other:?}"),
        }
        store.remove(7);
        assert!(store.is_empty());
    }

    #[test]
    fn peers_are_counted_per_address() {
        let store = OobStore::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        store.link_opened(ip);
        store.link_opened(ip);
        store.link_closed(ip);
        assert_eq!(store.peers.lock().unwrap()[&ip].links, 1);
        store.link_closed(ip);
        assert!(store.peers.lock().unwrap().is_empty());
        store.link_closed(ip); // unknown address: no panic
    }

    #[cfg(feature = "url")]
    #[test]
    fn url_schemes_are_checked() {
        let e = fetch_url("file:///etc/passwd", 10, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("only http"), "{e}");
    }
}

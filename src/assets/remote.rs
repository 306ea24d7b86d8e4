//! Large assets: buffers served out of band (OOB) by the Upstream, and buffers the Downstream
//! fetches in the background (from the Upstream's OOB channel, or from a URL).
//!
//! Upstream: with [`OobConfig`] set (the default), the first [`NoodlesListener`] also binds an OOB
//! websocket listener on the same host (a free port), and its port is advertised in every
//! `IntroductionReply`. An app that does not listen but connects out as Upstream
//! ([`NoodlesConnect::as_upstream`]) binds one when it connects, on loopback for a loopback peer
//! and on every interface otherwise. Exported buffers larger than [`OobConfig::threshold`] are then sent as
//! `BufferSource::OOBAssetID` (the OOB id is the buffer's `AssetID`) and served from the
//! [`OobServer`]'s store until the buffer is deleted.
//!
//! Downstream: a buffer whose source is an OOB id or a URL is fetched on the tokio runtime
//! without blocking the apply system; the meshes and images that use it wait (see
//! [`AssetStats::pending`](super::AssetStats)) and are built when the bytes arrive. Progress is
//! in [`OobProgress`]. A failed fetch refuses that buffer (and the assets that use it) with a
//! logged reason naming it; nothing else is affected. A link's OOB connection closes with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use bytes::Bytes;
use tokio::task::AbortHandle;

use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;

use crate::link::{ClientIntent, Role};
use crate::net::{
    LinkClosed, LinkOpened, NoodlesConfig, NoodlesConnect, NoodlesLink, NoodlesListener, NoodlesNet,
};
use crate::oob::{FetchDone, OobClient, OobStore};

/// Serving large buffers out of band (Upstream). Set [`NoodlesPlugin::oob`](crate::NoodlesPlugin)
/// to `None` to send every buffer inline.
#[derive(Resource, Debug, Clone)]
pub struct OobConfig {
    /// Buffers with more bytes than this go out of band (default 64 KiB). Out of band, a large
    /// buffer travels on a connection of its own and does not hold up the transforms behind it on
    /// the main link, and a joining Downstream fetches it while it applies the world; inline, it is
    /// copied into the transaction on the Upstream's main thread.
    pub threshold: usize,
}

impl Default for OobConfig {
    fn default() -> Self {
        OobConfig {
            threshold: 64 << 10,
        }
    }
}

/// Fetching buffers that are not inline (Downstream): OOB ids and `BufferFromURL`.
#[derive(Resource, Debug, Clone)]
pub struct FetchConfig {
    /// Largest buffer fetched, by OOB or URL (default 1 GiB). Larger ones are refused.
    pub max_bytes: u64,
    /// How long one URL fetch may take (default 120 s).
    pub url_timeout: Duration,
    /// Fetch `BufferFromURL` at all (default true); when false such buffers are refused.
    pub fetch_urls: bool,
    /// URL fetches that run at once (default 4); the others wait their turn.
    pub max_url_fetches: usize,
    /// Declared bytes of URL fetches that run at once (default 1 GiB): a fetch waits until the
    /// ones running leave room for it (one runs whatever its size, below `max_bytes`). Out-of-band
    /// fetches are bounded by their link: one connection, one reply of at most `max_bytes` read
    /// at a time.
    pub max_url_bytes_in_flight: u64,
    /// Received images, meshes and environments decoded off the main thread at once (default
    /// 2); the others queue on the async compute pool and start as soon as one ends (all are
    /// counted in `AssetStats::decoding`). Each decode is bounded by the image limits (16,384
    /// per side, 64 Mpx), so this bounds the memory that decodes in flight take.
    pub max_decodes_in_flight: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            max_bytes: 1 << 30,
            url_timeout: Duration::from_secs(120),
            fetch_urls: true,
            max_url_fetches: 4,
            max_url_bytes_in_flight: 1 << 30,
            max_decodes_in_flight: 2,
        }
    }
}

/// A URL fetch waiting for its turn.
struct UrlJob {
    ticket: u64,
    url: String,
    byte_size: u64,
    timeout: Duration,
}

/// The Upstream's OOB server, once bound. Buffers exported out of band are in its store; apps
/// may also serve their own bytes with [`OobServer::insert`] and reference them from a
/// `BufferAsset` they send.
#[derive(Resource, Debug)]
pub struct OobServer {
    store: Arc<OobStore>,
    /// The bound address (port advertised in `IntroductionReply`).
    pub addr: SocketAddr,
    /// Buffers above this many bytes are exported out of band.
    pub threshold: usize,
    /// Whether it speaks TLS (`wss://`): when the listener it was bound with does.
    pub tls: bool,
    abort: AbortHandle,
}

impl OobServer {
    /// Serve `bytes` as OOB asset `id`.
    pub fn insert(&self, id: u64, bytes: Bytes) {
        self.store.insert(id, bytes);
    }
    /// Stop serving OOB asset `id`.
    pub fn remove(&self, id: u64) {
        self.store.remove(id);
    }
    /// Number of assets served.
    pub fn served(&self) -> usize {
        self.store.len()
    }
    /// Number of OOB connections open.
    pub fn connections(&self) -> usize {
        self.store.connections()
    }
    /// Is `id` served?
    pub fn contains(&self, id: u64) -> bool {
        self.store.get(id).is_some()
    }
    /// Stop accepting OOB connections (open ones finish their requests).
    pub fn stop(&self) {
        self.abort.abort();
    }
}

/// Progress of background buffer fetches on the Downstream (OOB and URL).
///
/// `assets_*` count buffers; `bytes_pending` is what the pending URL fetches declare (an OOB
/// asset's size is first known from its reply, which carries it whole), `bytes_done` what
/// arrived. `failed` counts refused fetches, `last_failure` names the last one.
#[derive(Resource, Debug, Default, Clone, PartialEq, Eq)]
pub struct OobProgress {
    /// Buffers still being fetched.
    pub assets_pending: u64,
    /// Buffers fetched.
    pub assets_done: u64,
    /// Bytes the pending URL fetches declare.
    pub bytes_pending: u64,
    /// Bytes that arrived.
    pub bytes_done: u64,
    /// Fetches that were refused.
    pub failed: u64,
    /// What the last refused fetch was and why, if any.
    pub last_failure: Option<String>,
}

impl OobProgress {
    /// True when nothing is being fetched.
    pub fn is_idle(&self) -> bool {
        self.assets_pending == 0
    }
}

struct Inflight {
    link: Entity,
    buffer: u64,
    declared: u64,
}

/// The Downstream's background fetches: one OOB connection per link, URL fetches on blocking
/// threads, results gathered through a channel the import system drains.
#[derive(Resource)]
pub(crate) struct RemoteFetch {
    runtime: tokio::runtime::Handle,
    connect_timeout: Duration,
    tx: crossbeam_channel::Sender<FetchDone>,
    rx: crossbeam_channel::Receiver<FetchDone>,
    clients: HashMap<Entity, OobClient>,
    inflight: HashMap<u64, Inflight>,
    /// The ticket whose result a buffer waits for.
    current: HashMap<(Entity, u64), u64>,
    next_ticket: u64,
    /// URL fetches waiting for their turn, and the running ones with their declared bytes.
    url_queue: std::collections::VecDeque<UrlJob>,
    url_running: HashMap<u64, u64>,
    /// The URL budget of the last request ([`FetchConfig`]).
    url_limits: (usize, u64),
}

/// A fetch that finished for a buffer still waiting for it.
pub(crate) struct Completed {
    pub link: Entity,
    pub buffer: u64,
    pub result: Result<Bytes, String>,
}

impl RemoteFetch {
    pub(crate) fn new(runtime: tokio::runtime::Handle, connect_timeout: Duration) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        RemoteFetch {
            runtime,
            connect_timeout,
            tx,
            rx,
            clients: HashMap::new(),
            inflight: HashMap::new(),
            current: HashMap::new(),
            next_ticket: 0,
            url_queue: std::collections::VecDeque::new(),
            url_running: HashMap::new(),
            url_limits: (4, 1 << 30),
        }
    }

    /// Start the waiting URL fetches the budget has room for, in arrival order.
    fn start_urls(&mut self) {
        let (max_fetches, max_bytes) = self.url_limits;
        while let Some(job) = self.url_queue.front() {
            if !self.inflight.contains_key(&job.ticket) {
                // Its link closed while it waited.
                self.url_queue.pop_front();
                continue;
            }
            let running: u64 = self.url_running.values().sum();
            let room = self.url_running.is_empty()
                || (self.url_running.len() < max_fetches.max(1)
                    && running.saturating_add(job.byte_size) <= max_bytes);
            if !room {
                break;
            }
            let Some(job) = self.url_queue.pop_front() else {
                break;
            };
            self.url_running.insert(job.ticket, job.byte_size);
            #[cfg(feature = "url")]
            {
                let tx = self.tx.clone();
                self.runtime.spawn_blocking(move || {
                    let result = crate::oob::fetch_url(&job.url, job.byte_size, job.timeout);
                    let _ = tx.send(FetchDone {
                        ticket: job.ticket,
                        result,
                    });
                });
            }
            #[cfg(not(feature = "url"))]
            let _ = (job.url, job.timeout);
        }
    }

    fn ticket(
        &mut self,
        link: Entity,
        buffer: u64,
        declared: u64,
        progress: &mut OobProgress,
    ) -> u64 {
        self.next_ticket += 1;
        let t = self.next_ticket;
        self.inflight.insert(
            t,
            Inflight {
                link,
                buffer,
                declared,
            },
        );
        self.current.insert((link, buffer), t);
        progress.assets_pending += 1;
        progress.bytes_pending += declared;
        t
    }

    /// Forget what `buffer` waited for (it was deleted or replaced); a late result is ignored.
    pub(crate) fn cancel(&mut self, link: Entity, buffer: u64) {
        self.current.remove(&(link, buffer));
    }

    /// Fetch OOB asset `oob` from the link's Upstream for buffer `buffer`.
    pub(crate) fn request_oob(
        &mut self,
        link: &NoodlesLink,
        link_entity: Entity,
        buffer: u64,
        oob: u64,
        config: &FetchConfig,
        progress: &mut OobProgress,
    ) -> Result<(), String> {
        let Some(&port) = link.peer_oob_ports.first() else {
            return Err(format!(
                "it is out of band (OOB asset {oob}) but the Upstream advertised no OOB channel"
            ));
        };
        let Some(target) = link.oob_target(port) else {
            return Err(format!(
                "it is out of band (OOB asset {oob}) but the Upstream's address is unknown"
            ));
        };
        let token = link.token().map(str::to_string);
        let ticket = self.ticket(link_entity, buffer, 0, progress);
        let mut failure = None;
        for _ in 0..2 {
            let runtime = self.runtime.clone();
            let tx = self.tx.clone();
            let connect_timeout = self.connect_timeout;
            let client = self.clients.entry(link_entity).or_insert_with(|| {
                debug!(
                    "opening the OOB channel {} for link {link_entity}",
                    target.url()
                );
                OobClient::spawn(
                    &runtime,
                    target.clone(),
                    config.max_bytes,
                    connect_timeout,
                    token.clone(),
                    tx,
                )
            });
            if client.request(ticket, oob) {
                return Ok(());
            }
            // The previous connection failed (a new one may have failed at once): open a new one.
            failure = client.failure().map(str::to_string);
            self.clients.remove(&link_entity);
        }
        let reason = failure.unwrap_or_else(|| "the OOB channel cannot be opened".into());
        let _ = self.tx.send(FetchDone {
            ticket,
            result: Err(format!("OOB asset {oob}: {reason}")),
        });
        Ok(())
    }

    /// Fetch `url` (declared `byte_size` bytes) for buffer `buffer`.
    pub(crate) fn request_url(
        &mut self,
        link: Entity,
        buffer: u64,
        url: String,
        byte_size: u64,
        config: &FetchConfig,
        progress: &mut OobProgress,
    ) -> Result<(), String> {
        if !config.fetch_urls {
            return Err(format!("it comes from URL {url} and URL fetching is off"));
        }
        if byte_size > config.max_bytes {
            return Err(format!(
                "URL {url} declares {byte_size} bytes, above the limit of {}",
                config.max_bytes
            ));
        }
        #[cfg(not(feature = "url"))]
        {
            let _ = (link, buffer, progress);
            Err(format!(
                "it comes from URL {url} and this build fetches no URLs (feature `url`)"
            ))
        }
        #[cfg(feature = "url")]
        {
            let ticket = self.ticket(link, buffer, byte_size, progress);
            self.url_limits = (config.max_url_fetches, config.max_url_bytes_in_flight);
            self.url_queue.push_back(UrlJob {
                ticket,
                url,
                byte_size,
                timeout: config.url_timeout,
            });
            self.start_urls();
            Ok(())
        }
    }

    /// Results that arrived, for buffers still waiting for them. Updates `progress`.
    pub(crate) fn poll(&mut self, progress: &mut OobProgress) -> Vec<Completed> {
        let mut out = Vec::new();
        while let Ok(done) = self.rx.try_recv() {
            // A finished URL fetch makes room for the next, whether its result is still wanted.
            if self.url_running.remove(&done.ticket).is_some() {
                self.start_urls();
            }
            let Some(f) = self.inflight.remove(&done.ticket) else {
                continue;
            };
            progress.assets_pending = progress.assets_pending.saturating_sub(1);
            progress.bytes_pending = progress.bytes_pending.saturating_sub(f.declared);
            if self.current.get(&(f.link, f.buffer)) != Some(&done.ticket) {
                continue;
            }
            self.current.remove(&(f.link, f.buffer));
            match &done.result {
                Ok(b) => {
                    progress.assets_done += 1;
                    progress.bytes_done += b.len() as u64;
                }
                Err(e) => {
                    progress.failed += 1;
                    progress.last_failure = Some(format!("buffer asset {}: {e}", f.buffer));
                }
            }
            out.push(Completed {
                link: f.link,
                buffer: f.buffer,
                result: done.result,
            });
        }
        out
    }

    /// A link closed: close its OOB connection and drop what it waited for.
    fn link_closed(&mut self, link: Entity, progress: &mut OobProgress) {
        self.clients.remove(&link);
        self.current.retain(|(l, _), _| *l != link);
        self.inflight.retain(|_, f| {
            if f.link == link {
                progress.assets_pending = progress.assets_pending.saturating_sub(1);
                progress.bytes_pending = progress.bytes_pending.saturating_sub(f.declared);
                false
            } else {
                true
            }
        });
    }

    /// Number of OOB connections this Downstream holds.
    pub(crate) fn connections(&self) -> usize {
        self.clients.values().filter(|c| !c.is_closed()).count()
    }
}

/// Bind the OOB listener with the first main listener (same host), synchronously, so its port is
/// advertised to every link that listener accepts.
fn start_oob_server(
    add: On<Add, NoodlesListener>,
    listeners: Query<&NoodlesListener>,
    oob: Option<Res<OobConfig>>,
    mut config: ResMut<NoodlesConfig>,
    net: Res<NoodlesNet>,
    existing: Option<Res<OobServer>>,
    mut commands: Commands,
) {
    let (Some(oob), Ok(l)) = (oob, listeners.get(add.entity)) else {
        return;
    };
    // Serving already (the advertised port is set synchronously, the resource a little later).
    if !config.oob_ports.is_empty() {
        let Some(server) = existing else { return };
        if server.tls != l.tls.is_some() {
            warn!(
                "the OOB channel follows the first listener ({}); links of the listener on {} \
                 fetch over it too",
                if server.tls { "wss://" } else { "ws://" },
                l.addr
            );
        }
        return;
    }
    let runtime = net.transport.runtime();
    // The OOB channel admits what the listener admits, over TLS when it does.
    let host = crate::transport::url_host(&l.addr);
    let access = (l.auth.clone(), l.tls.clone());
    if let Some(server) = bind_oob_server(host, &oob, runtime, &config, access) {
        config.oob_ports = vec![server.addr.port()];
        net.set_link_config(config.link_config());
        commands.insert_resource(server);
    }
}

/// `on_add` hook of [`NoodlesConnect`]: an app that connects out asking to be Upstream (a game
/// pushing its world to a viewer that listens) serves OOB too. A hook, not an observer, because
/// hooks run before observers: the port is in [`NoodlesConfig`] before the net layer's observer
/// reads it to open the connection, so the `IntroductionReply` advertises it.
fn start_oob_server_for_upstream_connect(mut world: DeferredWorld, ctx: HookContext) {
    let Some(c) = world.get::<NoodlesConnect>(ctx.entity) else {
        return;
    };
    if c.intent != ClientIntent::JoinAsUpstream {
        return;
    }
    if c.url.starts_with("wss://") {
        // Our OOB channel would need a certificate of ours; buffers go inline over the TLS link.
        debug!(
            "no OOB channel for the wss:// link to {}: buffers go inline",
            c.url
        );
        return;
    }
    let host = oob_host_towards(&c.url);
    let (Some(oob), Some(config), Some(net)) = (
        world.get_resource::<OobConfig>(),
        world.get_resource::<NoodlesConfig>(),
        world.get_resource::<NoodlesNet>(),
    ) else {
        return;
    };
    if !config.oob_ports.is_empty() {
        return;
    }
    // Our OOB channel admits the token we present to the peer (the peer's fetches present the
    // token of their link to us).
    let auth = c
        .token
        .clone()
        .map(|t| crate::auth::bearer_tokens([(t, crate::auth::Principal::new("link peer"))]));
    let runtime = net.transport.runtime();
    let Some(server) = bind_oob_server(&host, oob, runtime, config, (auth, None)) else {
        return;
    };
    let port = server.addr.port();
    let mut config = world.resource_mut::<NoodlesConfig>();
    config.oob_ports = vec![port];
    let link_config = config.link_config();
    world.resource::<NoodlesNet>().set_link_config(link_config);
    world.commands().insert_resource(server);
}

/// Where to bind the OOB listener of an app that connects to `url`: loopback for a loopback
/// peer, every interface otherwise (connections are admitted only from the addresses of open
/// Upstream links).
fn oob_host_towards(url: &str) -> String {
    let host = crate::transport::url_host(url)
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => ip.to_string(),
        Ok(std::net::IpAddr::V6(_)) => "[::]".into(),
        _ if host == "localhost" => "127.0.0.1".into(),
        _ => "0.0.0.0".into(),
    }
}

/// Bind an OOB websocket listener on `host` (a free port) and serve it on `runtime`.
/// `None` (logged) when it cannot bind: buffers are then sent inline.
fn bind_oob_server(
    host: &str,
    oob: &OobConfig,
    runtime: &tokio::runtime::Handle,
    config: &NoodlesConfig,
    (auth, tls): (
        Option<crate::auth::Authorizer>,
        Option<crate::tls::ServerTls>,
    ),
) -> Option<OobServer> {
    let bind = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:0")
    } else {
        format!("{host}:0")
    };
    let listener = match std::net::TcpListener::bind(&bind) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot bind the OOB listener on {bind}: {e}; buffers are sent inline");
            return None;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!("OOB listener on {bind} has no address: {e}; buffers are sent inline");
            return None;
        }
    };
    let store = Arc::new(OobStore::default());
    let abort = crate::oob::spawn_server(
        runtime,
        listener,
        store.clone(),
        config.limits.connect_timeout,
        (auth, tls.clone()),
    );
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    info!("serving OOB assets on {scheme}://{addr}");
    Some(OobServer {
        store,
        addr,
        tls: tls.is_some(),
        threshold: oob.threshold,
        abort,
    })
}

/// Keeps the OOB side in step with main links: the server admits addresses with an open
/// Upstream link, and a Downstream's OOB connection, fetches and buffer bytes end with its link.
#[expect(
    clippy::too_many_arguments,
    reason = "one system follows links for the server, the fetches and the import"
)]
fn track_oob_links(
    mut opened: MessageReader<LinkOpened>,
    mut closed: MessageReader<LinkClosed>,
    links: Query<&NoodlesLink>,
    server: Option<Res<OobServer>>,
    mut fetch: Option<ResMut<RemoteFetch>>,
    mut progress: ResMut<OobProgress>,
    mut import: Option<ResMut<super::AssetImport>>,
    mut peers: Local<HashMap<Entity, std::net::IpAddr>>,
) {
    for o in opened.read() {
        if o.role != Role::Upstream {
            continue;
        }
        if let (Some(server), Ok(l)) = (&server, links.get(o.link))
            && let Some(a) = l.peer_addr
        {
            server.store.link_opened(a.ip());
            peers.insert(o.link, a.ip());
        }
    }
    for c in closed.read() {
        if let Some(ip) = peers.remove(&c.link)
            && let Some(server) = &server
        {
            server.store.link_closed(ip);
        }
        if let Some(f) = fetch.as_mut() {
            f.link_closed(c.link, &mut progress);
        }
        if let Some(i) = import.as_mut() {
            i.forget_link(c.link);
        }
    }
}

/// Number of OOB connections this node holds as a Downstream (for overlays and tests).
pub fn oob_client_connections(world: &World) -> usize {
    world
        .get_resource::<RemoteFetch>()
        .map(|f| f.connections())
        .unwrap_or(0)
}

pub(crate) fn build(app: &mut App) {
    let runtime = app
        .world()
        .resource::<NoodlesNet>()
        .transport
        .runtime()
        .clone();
    let connect_timeout = app
        .world()
        .resource::<NoodlesConfig>()
        .limits
        .connect_timeout;
    if app
        .world_mut()
        .register_component_hooks::<NoodlesConnect>()
        .try_on_add(start_oob_server_for_upstream_connect)
        .is_none()
    {
        warn!(
            "NoodlesConnect already has an on_add hook: an app that connects as Upstream sends buffers inline"
        );
    }
    app.init_resource::<OobProgress>()
        .init_resource::<FetchConfig>()
        .insert_resource(RemoteFetch::new(runtime, connect_timeout))
        .add_observer(start_oob_server)
        .add_systems(
            PreUpdate,
            track_oob_links.in_set(crate::schedule::NoodlesSystems::ApplyTransactions),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oob_binds_towards_the_peer() {
        assert_eq!(oob_host_towards("ws://127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(oob_host_towards("ws://localhost:5000"), "127.0.0.1");
        assert_eq!(oob_host_towards("ws://[::1]:5000"), "::1");
        assert_eq!(oob_host_towards("ws://192.168.1.20:5000"), "0.0.0.0");
        assert_eq!(oob_host_towards("ws://[fe80::1]:5000"), "[::]");
        assert_eq!(oob_host_towards("ws://viewer.example:5000"), "0.0.0.0");
    }
}

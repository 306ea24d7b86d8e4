//! [`NoodlesPlugin`]: the one plugin an app adds. It composes the plugin of each feature:
//! [`NetPlugin`] (links, transport, the message router), [`MirrorPlugin`], [`AssetsPlugin`],
//! the Core features ([`AnimationPlugin`](crate::animation::AnimationPlugin),
//! [`BillboardPlugin`](crate::billboard::BillboardPlugin),
//! [`InstancesPlugin`](crate::instances::InstancesPlugin),
//! [`ParametersPlugin`](crate::parameters::ParametersPlugin),
//! [`InteractionPlugin`](crate::interaction::InteractionPlugin),
//! [`Text3dPlugin`](crate::text::Text3dPlugin)), [`ProposalsPlugin`] and [`RpcPlugin`]. An app
//! that wants fewer adds [`NetPlugin`] and the ones it needs itself.

use std::time::Duration;

use bevy::prelude::*;
use bytes::Bytes;

use crate::assets::{AssetsPlugin, FetchConfig, OobConfig};
use crate::link::{AuthorityPolicy, CORE_EXTENSION};
use crate::mirror::MirrorPlugin;
use crate::net::{NetPlugin, NoodlesConfig};
use crate::proposals::ProposalsPlugin;
use crate::rpc::RpcPlugin;
use crate::transport::TransportLimits;

/// Adds NOODLES2 to an app: links and transport, mirroring, assets, proposals and RPC (the five
/// feature plugins, configured from these fields).
///
/// A config struct with public fields and [`Default`]:
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_noodles2::prelude::*;
///
/// App::new()
///     .add_plugins(MinimalPlugins)
///     .add_plugins(NoodlesPlugin { session_name: "my game".into(), ..default() })
///     .add_systems(Startup, |mut commands: Commands| {
///         commands.spawn(NoodlesListener::new("ws://127.0.0.1:50000"));
///     })
///     .run();
/// ```
#[derive(Debug, Clone)]
pub struct NoodlesPlugin {
    /// Session name, sent in introductions and answered to probes.
    pub session_name: String,
    /// Session icon (encoded image bytes) answered to probes.
    pub icon: Bytes,
    /// Extensions this node speaks; Core (0) is always added.
    pub extensions: Vec<u16>,
    /// How long a connection may take to finish the preamble (default 10 s).
    pub preamble_timeout: Duration,
    /// Largest frame accepted from an Upstream, and from anyone during the websocket handshake
    /// (default 64 MiB: transactions are split at 1 MiB and large buffers go out of band).
    pub max_frame_size: usize,
    /// Largest frame accepted from a Downstream (default 16 MiB: proposals inline their buffers,
    /// calls are small). A larger one closes the link with `ProtocolError::FrameTooLarge`.
    pub max_frame_from_downstream: usize,
    /// Bytes that may wait for a peer (default 16 MiB). Above this the link stops reading from
    /// the peer, so a peer that pipelines requests is slowed until it reads its replies; if it
    /// stays above for `stall_timeout`, or goes above 4 times this, the link closes.
    pub max_queued_bytes: usize,
    /// How long a peer may keep more than `max_queued_bytes` waiting (default 30 s).
    pub stall_timeout: Duration,
    /// Bytes of received messages this app may have not handled yet before the link stops
    /// reading its socket (default 16 MiB): a peer that sends faster than the app handles is
    /// slowed by TCP, not buffered without limit.
    pub max_inbound_bytes: usize,
    /// How long opening a connection may take (default 10 s).
    pub connect_timeout: Duration,
    /// Websocket pings on every link at this interval (default 5 s; `None`: none). Their
    /// round-trip time is `NoodlesLink::stats.rtt`.
    pub ping_interval: Option<Duration>,
    /// A link on which nothing arrived (no frame, no pong) for this long is closed (default
    /// 20 s; `None`: never): detects peers that vanished without closing.
    pub idle_timeout: Option<Duration>,
    /// What to answer a client that asks to be Upstream (default: refuse).
    pub authority: AuthorityPolicy,
    /// Despawn link entities one frame after they close (default true).
    pub despawn_closed_links: bool,
    /// World mirroring settings (send rate, transaction size, what happens on link close).
    pub mirror: crate::mirror::MirrorConfig,
    /// Large buffers out of band (Upstream): with `Some` (the default), the first listener also
    /// binds an OOB websocket listener and buffers above the threshold (64 KiB) are served there.
    /// `None`: every buffer is sent inline.
    pub oob: Option<OobConfig>,
    /// Fetching OOB and URL buffers (Downstream): size limit, URL timeout.
    pub fetch: FetchConfig,
    /// Streaming RPC calls one link may have unfinished at once (held by handlers through
    /// [`RpcResponder`](crate::rpc::RpcResponder)); a call beyond is answered at once with
    /// [`rpc::codes::BUSY`](crate::rpc::codes::BUSY). Default
    /// [`rpc::MAX_CALLS_IN_FLIGHT`](crate::rpc::MAX_CALLS_IN_FLIGHT).
    pub max_calls_in_flight: usize,
}

impl Default for NoodlesPlugin {
    fn default() -> Self {
        let limits = TransportLimits::default();
        NoodlesPlugin {
            session_name: "bevy_noodles2".into(),
            icon: Bytes::new(),
            extensions: vec![CORE_EXTENSION],
            preamble_timeout: Duration::from_secs(10),
            max_frame_size: limits.max_frame_size,
            max_frame_from_downstream: crate::link::MAX_FRAME_FROM_DOWNSTREAM,
            max_queued_bytes: limits.max_queued_bytes,
            stall_timeout: limits.stall_timeout,
            max_inbound_bytes: limits.max_inbound_bytes,
            connect_timeout: limits.connect_timeout,
            ping_interval: limits.ping_interval,
            idle_timeout: limits.idle_timeout,
            authority: AuthorityPolicy::Refuse,
            despawn_closed_links: true,
            mirror: crate::mirror::MirrorConfig::default(),
            oob: Some(OobConfig::default()),
            fetch: FetchConfig::default(),
            max_calls_in_flight: crate::rpc::MAX_CALLS_IN_FLIGHT,
        }
    }
}

impl NoodlesPlugin {
    /// The resource form of this configuration.
    pub fn config(&self) -> NoodlesConfig {
        let mut extensions = self.extensions.clone();
        if !extensions.contains(&CORE_EXTENSION) {
            extensions.insert(0, CORE_EXTENSION);
        }
        NoodlesConfig {
            session_name: self.session_name.clone(),
            icon: self.icon.clone(),
            extensions,
            preamble_timeout: self.preamble_timeout,
            max_frame_from_downstream: self.max_frame_from_downstream,
            limits: TransportLimits {
                max_frame_size: self.max_frame_size,
                max_queued_bytes: self.max_queued_bytes,
                stall_timeout: self.stall_timeout,
                max_inbound_bytes: self.max_inbound_bytes,
                connect_timeout: self.connect_timeout,
                ping_interval: self.ping_interval,
                idle_timeout: self.idle_timeout,
            },
            authority: self.authority,
            despawn_closed_links: self.despawn_closed_links,
            oob_ports: Vec::new(),
            max_calls_in_flight: self.max_calls_in_flight,
        }
    }
}

impl Plugin for NoodlesPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            NetPlugin {
                config: self.config(),
            },
            MirrorPlugin {
                config: self.mirror.clone(),
            },
            AssetsPlugin {
                oob: self.oob.clone(),
                fetch: self.fetch.clone(),
            },
            crate::animation::AnimationPlugin,
            crate::billboard::BillboardPlugin,
            crate::instances::InstancesPlugin,
            crate::interaction::InteractionPlugin,
            crate::parameters::ParametersPlugin,
            crate::text::Text3dPlugin,
            ProposalsPlugin,
            RpcPlugin,
        ));
    }
}

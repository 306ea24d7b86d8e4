//! [`NoodlesPlugin`]: the one plugin an app adds.

use std::time::Duration;

use bevy::prelude::*;
use bytes::Bytes;

use crate::assets::{FetchConfig, OobConfig};
use crate::link::{AuthorityPolicy, CORE_EXTENSION};
use crate::net::{self, NoodlesConfig, NoodlesNet};
use crate::transport::{Transport, TransportLimits};

/// System sets of the plugin, so apps can order their own systems around mirroring.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoodlesSystems {
    /// `PreUpdate`: transport reports become link state, messages land in inboxes.
    Receive,
    /// `PreUpdate`, after `Receive`: incoming transactions, proposals and calls are applied.
    Apply,
    /// `PostUpdate`: changes of shared entities are gathered, encoded once and sent.
    Send,
}

/// Adds NOODLES2 to an app: links, transport and (with the mirror layer) world mirroring.
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
    /// Largest websocket message accepted (default 256 MiB).
    pub max_frame_size: usize,
    /// Frames that may wait for a slow peer before its link closes (default 1024).
    pub queue_len: usize,
    /// How long opening a connection may take (default 10 s).
    pub connect_timeout: Duration,
    /// What to answer a client that asks to be Upstream (default: refuse).
    pub authority: AuthorityPolicy,
    /// Despawn link entities one frame after they close (default true).
    pub despawn_closed_links: bool,
    /// World mirroring settings (send rate, transaction size, what happens on link close).
    pub mirror: crate::mirror::MirrorConfig,
    /// Large buffers out of band (Upstream): with `Some` (the default), the first listener also
    /// binds an OOB websocket listener and buffers above the threshold (1 MiB) are served there.
    /// `None`: every buffer is sent inline.
    pub oob: Option<OobConfig>,
    /// Fetching OOB and URL buffers (Downstream): size limit, URL timeout.
    pub fetch: FetchConfig,
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
            queue_len: limits.queue_len,
            connect_timeout: limits.connect_timeout,
            authority: AuthorityPolicy::Refuse,
            despawn_closed_links: true,
            mirror: crate::mirror::MirrorConfig::default(),
            oob: Some(OobConfig::default()),
            fetch: FetchConfig::default(),
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
            limits: TransportLimits {
                max_frame_size: self.max_frame_size,
                queue_len: self.queue_len,
                connect_timeout: self.connect_timeout,
            },
            authority: self.authority,
            despawn_closed_links: self.despawn_closed_links,
            oob_ports: Vec::new(),
        }
    }
}

impl Plugin for NoodlesPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<bevy_tokio_tasks::TokioTasksPlugin>() {
            app.add_plugins(bevy_tokio_tasks::TokioTasksPlugin::default());
        }
        let config = self.config();
        let runtime = app
            .world()
            .resource::<bevy_tokio_tasks::TokioTasksRuntime>()
            .runtime()
            .handle()
            .clone();
        app.insert_resource(NoodlesNet::new(Transport::new(runtime), &config))
            .insert_resource(config)
            .add_message::<net::LinkOpened>()
            .add_message::<net::LinkClosed>()
            .add_message::<net::ProbeAnswered>()
            .add_message::<net::ListenerReady>()
            .configure_sets(
                PreUpdate,
                (NoodlesSystems::Receive, NoodlesSystems::Apply).chain(),
            )
            .configure_sets(PostUpdate, NoodlesSystems::Send)
            .add_observer(net::start_listener)
            .add_observer(net::stop_listener)
            .add_observer(net::start_connect)
            .add_systems(
                PreUpdate,
                (net::sync_link_config, net::receive_transport)
                    .chain()
                    .in_set(NoodlesSystems::Receive),
            )
            .add_systems(Last, net::close_links_on_exit);
        crate::mirror::build(app, self.mirror.clone());
        crate::proposals::build(app);
        crate::rpc::build(app);
        app.init_resource::<crate::assets::IncomingAssets>();
        if let Some(oob) = &self.oob {
            app.insert_resource(oob.clone());
        }
        app.insert_resource(self.fetch.clone());
        crate::assets::remote::build(app);
    }

    fn finish(&self, app: &mut App) {
        // After every plugin is built: mirror assets if the app has Bevy's asset collections.
        crate::assets::sync::build(app);
    }
}

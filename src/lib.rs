#![doc = include_str!("../README.md")]

pub mod assets;
pub mod demo;
#[cfg(feature = "render")]
pub mod display;
pub mod mirror;
pub mod net;
pub mod plugin;
pub mod proposals;
pub mod rpc;
pub mod schedule;

/// The protocol crate this plugin is built on (the codec, links, transport), for applications
/// that need more of it than the re-exports below.
pub use noodles2;
pub use noodles2::{codec, link, oob, transport};

pub use plugin::NoodlesPlugin;
pub use schedule::NoodlesSystems;

/// The types most apps need.
pub mod prelude {
    pub use crate::assets::{
        AssetStats, AssetsPlugin, FetchConfig, OobConfig, OobProgress, OobServer,
    };
    pub use crate::link::{AuthorityPolicy, ClientIntent, CloseReason, Role};
    pub use crate::mirror::{
        AuthorityClock, Global, MirrorAppExt, MirrorComponent, MirrorConfig, MirrorPlugin,
        Mirrored, NoodlesId, Shared, TimeSync,
    };
    pub use crate::net::{
        LinkClosed, LinkInbox, LinkOpened, LinkStatus, ListenerReady, NetPlugin, NoodlesConfig,
        NoodlesConnect, NoodlesLink, NoodlesListener, ProbeAnswered,
    };
    pub use crate::plugin::NoodlesPlugin;
    pub use crate::proposals::{
        Placeholder, Proposal, ProposalApplied, ProposalDecision, ProposalPolicy, ProposalRejected,
        ProposalReply, Proposals, ProposalsPlugin,
    };
    pub use crate::rpc::{
        RpcAppExt, RpcCall, RpcClient, RpcEndpoint, RpcFailure, RpcPlugin, RpcReplyKind,
        RpcReplyReceived, RpcResponder, RpcResult,
    };
    pub use crate::schedule::NoodlesSystems;
}

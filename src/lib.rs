#![doc = include_str!("../README.md")]

pub mod assets;
pub mod codec;
pub mod demo;
pub mod link;
pub mod mirror;
pub mod net;
pub mod oob;
pub mod plugin;
pub mod proposals;
pub mod rpc;
pub mod transport;

pub use plugin::{NoodlesPlugin, NoodlesSystems};

/// The types most apps need.
pub mod prelude {
    pub use crate::assets::{FetchConfig, OobConfig, OobProgress, OobServer};
    pub use crate::link::{AuthorityPolicy, ClientIntent, CloseReason, Role};
    pub use crate::mirror::{
        AuthorityClock, Global, MirrorAppExt, MirrorComponent, Mirrored, NoodlesId, Shared,
        TimeSync,
    };
    pub use crate::net::{
        LinkClosed, LinkInbox, LinkOpened, LinkStatus, ListenerReady, NoodlesConfig,
        NoodlesConnect, NoodlesLink, NoodlesListener, ProbeAnswered,
    };
    pub use crate::plugin::{NoodlesPlugin, NoodlesSystems};
    pub use crate::proposals::{
        Placeholder, Proposal, ProposalApplied, ProposalDecision, ProposalPolicy, ProposalRejected,
        ProposalReply, Proposals,
    };
    pub use crate::rpc::{
        RpcAppExt, RpcCall, RpcClient, RpcEndpoint, RpcFailure, RpcReplyKind, RpcReplyReceived,
        RpcResponder, RpcResult,
    };
}

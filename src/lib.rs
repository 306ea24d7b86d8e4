#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod animation;
pub mod assets;
pub mod billboard;
pub mod demo;
pub mod diagnostics;
#[cfg(feature = "render")]
pub mod display;
pub mod instances;
pub mod interaction;
pub mod mirror;
pub mod net;
pub mod parameters;
pub mod plugin;
pub mod proposals;
pub mod rpc;
pub mod schedule;
pub mod text;
#[cfg(feature = "viewer")]
pub mod viewer;

/// The protocol crate this plugin is built on (the codec, links, transport), for applications
/// that need more of it than the re-exports below.
pub use noodles2;
pub use noodles2::{auth, codec, link, oob, tls, transport};

pub use plugin::NoodlesPlugin;
pub use schedule::NoodlesSystems;

/// The types most apps need.
pub mod prelude {
    pub use crate::animation::{
        AnimSampler, AnimationPlugin, AnimatorLayer, AuthorityTime, ClipChannel, ClipTarget,
        NoodlesAnimator, NoodlesClip,
    };
    pub use crate::assets::{
        AssetStats, AssetsPlugin, FetchConfig, OobConfig, OobProgress, OobServer, RawAssets,
    };
    pub use crate::auth::{AuthRefusal, AuthRequest, Authorizer, Principal};
    pub use crate::billboard::{Billboard, BillboardCamera, BillboardPlugin};
    pub use crate::diagnostics::NoodlesDiagnosticsPlugin;
    pub use crate::instances::{Instance, InstanceSet, Instances, InstancesPlugin};
    pub use crate::interaction::{
        Activate, AxisLimit, AxisLimits, CanRotate, CanScale, CanSelect, CanTranslate,
        InteractionPlugin, Interactive, IsSelected,
    };
    pub use crate::link::{
        AuthorityPolicy, ClientIntent, CloseReason, ListenError, Role, TransportError,
    };
    pub use crate::mirror::{
        AssetRefusal, AuthorityClock, Global, LinkClosedPolicy, MirrorAppExt, MirrorComponent,
        MirrorConfig, MirrorError, MirrorFns, MirrorPlugin, MirrorStats, Mirrored,
        MorphTargetWeights, RawComponents, Shared, SharedId, TimeSync, UnmappedPayloads,
    };
    pub use crate::net::{
        Grant, LinkClosed, LinkInbox, LinkOpened, LinkPermissions, LinkStatus, ListenerReady,
        NetPlugin, NoodlesConfig, NoodlesConnect, NoodlesLink, NoodlesListener, ProbeAnswered,
    };
    pub use crate::parameters::{
        ParamDefinition, ParamEdits, ParamState, ParamTree, ParamValue, Parameter, ParameterRoot,
        ParametersPlugin,
    };
    pub use crate::plugin::NoodlesPlugin;
    pub use crate::proposals::{
        AssetPlaceholder, Placeholder, Proposal, ProposalApplied, ProposalContext,
        ProposalDecision, ProposalError, ProposalPolicy, ProposalRejected, ProposalReply,
        Proposals, ProposalsPlugin, ProposedChange, ProposedEntity,
    };
    pub use crate::rpc::{
        ArgumentError, RpcAppExt, RpcCall, RpcClient, RpcEndpoint, RpcFailure, RpcPlugin,
        RpcReplyKind, RpcReplyReceived, RpcResponder, RpcResult,
    };
    pub use crate::schedule::NoodlesSystems;
    pub use crate::text::{Text3d, Text3dPlugin};
    pub use crate::tls::{ClientTls, ServerTls, TlsError};
}

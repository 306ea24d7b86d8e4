//! [`NoodlesSystems`]: the phases of a NOODLES2 frame, configured in one place.
//!
//! Every system of the plugin runs in exactly one of these sets, and the sets of a schedule are
//! chained, so an app can put its own systems between any two phases:
//!
//! ```
//! use bevy::prelude::*;
//! use bevy_noodles2::prelude::*;
//!
//! fn react_to_mirrored_changes() {}
//! fn move_shared_things() {}
//!
//! App::new().add_systems(
//!     PreUpdate,
//!     react_to_mirrored_changes
//!         .after(NoodlesSystems::ImportAssets)
//!         .before(NoodlesSystems::Dispatch),
//! )
//! .add_systems(PostUpdate, move_shared_things.before(NoodlesSystems::ExportAssets));
//! ```
//!
//! | schedule | phase | what runs |
//! | --- | --- | --- |
//! | `PreUpdate` | [`Receive`](NoodlesSystems::Receive) | transport reports become link entities and state; main-sequence messages land in each link's ordered inbox |
//! | | [`ApplyTransactions`](NoodlesSystems::ApplyTransactions) | links where this node is Downstream are routed: transactions applied whole, proposal and RPC replies delivered, in arrival order |
//! | | [`ImportAssets`](NoodlesSystems::ImportAssets) | received asset bodies (and fetched OOB/URL bytes) become Bevy assets; components waiting for them are completed |
//! | | [`Dispatch`](NoodlesSystems::Dispatch) | links where this node is Upstream are routed: proposals decided and applied, RPC calls handed to their handlers, in arrival order |
//! | `PostUpdate` | [`Animate`](NoodlesSystems::Animate) | every [`NoodlesAnimator`](crate::animation::NoodlesAnimator) is evaluated at the authority time and written to its targets (before transform propagation); on the Upstream, Bevy `AnimationPlayer`s are turned into animators |
//! | | [`ExportAssets`](NoodlesSystems::ExportAssets) | on send ticks, assets that shared entities started using, or that changed, are exported (encoded once; large images off the main thread) |
//! | | [`Collect`](NoodlesSystems::Collect) | change detection of shared entities' registered components |
//! | | [`Send`](NoodlesSystems::Send) | gathered changes are encoded into transactions and handed to every link; replies flushed |
//!
//! This module depends on nothing else in the crate.

use bevy::prelude::*;

/// The phases of the plugin, chained in the order listed within each schedule.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoodlesSystems {
    /// `PreUpdate`: transport reports become link state; messages land in link inboxes.
    Receive,
    /// `PreUpdate`: messages on links where this node is Downstream (transactions, proposal and
    /// RPC replies) are handled in arrival order.
    ApplyTransactions,
    /// `PreUpdate`: received asset bodies become Bevy assets.
    ImportAssets,
    /// `PreUpdate`: messages on links where this node is Upstream (proposals, RPC calls) are
    /// handled in arrival order.
    Dispatch,
    /// `PostUpdate`: animators are evaluated (before transform propagation).
    Animate,
    /// `PostUpdate`: assets used by shared entities are exported.
    ExportAssets,
    /// `PostUpdate`: changes of shared entities are gathered by change detection.
    Collect,
    /// `PostUpdate`: gathered changes are encoded once and sent to every link.
    Send,
}

/// Chain the phases (idempotent: every feature plugin calls it, so each works on its own).
pub(crate) fn configure(app: &mut App) {
    app.configure_sets(
        PreUpdate,
        (
            NoodlesSystems::Receive,
            NoodlesSystems::ApplyTransactions,
            NoodlesSystems::ImportAssets,
            NoodlesSystems::Dispatch,
        )
            .chain(),
    )
    .configure_sets(
        PostUpdate,
        (
            NoodlesSystems::Animate,
            NoodlesSystems::ExportAssets,
            NoodlesSystems::Collect,
            NoodlesSystems::Send,
        )
            .chain(),
    )
    .configure_sets(
        PostUpdate,
        NoodlesSystems::Animate.before(bevy::transform::TransformSystems::Propagate),
    );
}

//! OpenKruiseGame-compatible resource types, group `game.kruise.io/v1alpha1`.
//!
//! [`GameServerSet`] (`gss`) and [`GameServer`] (`gs`) mirror OKG's
//! `apis/v1alpha1` Go types field for field, so their JSON is what OKG's CRDs
//! accept; [`crd::crds`] builds the matching CustomResourceDefinitions.
//! Free-text fields with well-known values (`spec.opsState`,
//! `status.currentState`) stay `String`s; [`OpsState`] and [`GameServerState`]
//! name the known values.

pub mod crd;
mod gameserver;
mod gameserverset;
/// The one stable hash.
pub mod hash;
pub mod image;
/// Object names as kube-apiserver validates them.
pub mod names;

use std::fmt;

pub use crd::{crds, crds_yaml};
pub use gameserver::{
    GameServer, GameServerCondition, GameServerContainer, GameServerSpec, GameServerStatus,
    NetworkAddress, NetworkPort, NetworkPortRange, NetworkStatus, ServiceQualityCondition,
};
pub use gameserverset::{
    AllocationOverflow, GameServerSet, GameServerSetSpec, GameServerSetStatus, GameServerTemplate,
    InPlaceUpdateStrategy, Lifecycle, LifecycleHook, Network, NetworkConfParam, Parameters,
    RollingUpdateStrategy, ScaleStrategy, ServiceQuality, ServiceQualityAction, UpdateStrategy,
};
pub use image::{ImageRef, images_match, normalise_image};

/// `t` as Kubernetes writes a `metav1.Time`: RFC 3339 in UTC, in whole
/// seconds.
pub fn kube_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Annotation with a server's capacity, from the set's `parameters.maxPlayers`
/// (the embedded fleet's stand-in for the `MAX_PLAYERS` container env).
pub const MAX_PLAYERS_ANNOTATION: &str = "gameops.io/max-players";

/// Label on every GameServer (and its pod) naming the owning GameServerSet.
pub const OWNER_GSS_LABEL: &str = "game.kruise.io/owner-gss";

/// Pod labels OpenKruiseGame's GameServer controller copies from the
/// GameServer's spec (kruise-game apis/v1alpha1/gameserver_types.go
/// `GameServerOpsStateKey`, `GameServerDeletePriorityKey`,
/// `GameServerUpdatePriorityKey`); its GameServerSet controller reads them
/// to pick what to delete or update first.
pub const POD_OPS_STATE_LABEL: &str = "game.kruise.io/gs-opsState";
/// See [`POD_OPS_STATE_LABEL`].
pub const POD_DELETION_PRIORITY_LABEL: &str = "game.kruise.io/gs-deletion-priority";
/// See [`POD_OPS_STATE_LABEL`].
pub const POD_UPDATE_PRIORITY_LABEL: &str = "game.kruise.io/gs-update-priority";

/// Label on each GameServer with the hash of the set's template and
/// parameters it was created from (as Kubernetes's `controller-revision-hash`).
pub const REVISION_LABEL: &str = "gameops.io/revision";

/// Label `"true"` on a GameServer that is draining (`NoDisruption`): it is
/// never allocated again and goes once its players leave.
pub const DRAINING_LABEL: &str = "gameops.io/draining";

/// Annotation with the RFC 3339 time a GameServer started draining.
pub const DRAINING_SINCE_ANNOTATION: &str = "gameops.io/draining-since";

/// Annotation with the RFC 3339 time the allocator started a server's match.
pub const MATCH_STARTED_ANNOTATION: &str = "gameops.io/match-started";

/// Fields gameops adds to OKG's GameServerSet schema (JSON paths); the
/// README lists each, and objects without them validate against OKG's CRD.
pub const GAMESERVERSET_EXTENSIONS: &[&str] = &[
    ".spec.parameters",
    ".spec.allocationOverflow",
    ".spec.updateStrategy.drainTimeoutSeconds",
    ".spec.updateStrategy.rollingUpdate.maxSurge",
];

/// Fields gameops adds to OKG's GameServer schema (JSON paths).
pub const GAMESERVER_EXTENSIONS: &[&str] = &[".status.players", ".status.maxPlayers"];

/// Defines a fieldless enum of known string values with `ALL`, `as_str`, `parse` and `Display`.
macro_rules! known_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every known value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The value as written in the resource.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                }
            }

            /// The known value spelled exactly `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

known_values! {
    /// Known values of a GameServer's `spec.opsState`.
    OpsState {
        /// No operations state; the default (also for an absent or unknown value).
        None,
        /// Players are on the server.
        Allocated,
        /// The server may be deleted on scale-down.
        WaitToBeDeleted,
        /// The server is under maintenance.
        Maintaining,
        /// The server is to be deleted now.
        Kill,
    }
}

known_values! {
    /// Known values of a GameServer's `status.currentState` / `status.desiredState`.
    GameServerState {
        /// State not known.
        Unknown,
        /// The pod is being created.
        Creating,
        /// The pod is ready.
        Ready,
        /// The pod is not ready.
        NotReady,
        /// A container is crash-looping.
        Crash,
        /// The pod is being updated.
        Updating,
        /// The pod is being deleted.
        Deleting,
        /// The pre-delete lifecycle hook holds the pod.
        PreDelete,
        /// The in-place-update lifecycle hook holds the pod.
        PreUpdate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip_through_strings() {
        for v in OpsState::ALL {
            assert_eq!(OpsState::parse(v.as_str()), Some(*v));
        }
        for v in GameServerState::ALL {
            assert_eq!(GameServerState::parse(&v.to_string()), Some(*v));
        }
        assert_eq!(OpsState::WaitToBeDeleted.as_str(), "WaitToBeDeleted");
        assert_eq!(GameServerState::PreUpdate.as_str(), "PreUpdate");
        assert_eq!(OpsState::parse("allocated"), None);
        assert_eq!(OpsState::ALL.len(), 5);
        assert_eq!(GameServerState::ALL.len(), 9);
    }
}

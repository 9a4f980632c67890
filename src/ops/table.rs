//! The op table: every op of the executor plugin with its arguments (names,
//! types, which are required or exactly-one-of), the ranges of its numbers,
//! its literal defaults and its outputs, defined once. Dispatch
//! ([`super::run`]) and the ops, `gameops lint`, the runner's pre-check
//! ([`super::check`]) and the README drift test all read it.

pub use super::args::{Arg, Literal, Range, Ty};

use super::args::{Entries, Flag, Image, Int, OpsState, TagFilter, Text, Then, Whole, op_args};
use super::progress::MAX_TIMEOUT_SECONDS;
use super::select::Selector;

/// The ops, one variant each: dispatch matches on it, so an op in the
/// table without code (or code without a row) does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `patchImage`.
    PatchImage,
    /// `scale`.
    Scale,
    /// `waitReady`.
    WaitReady,
    /// `setOpsState`.
    SetOpsState,
    /// `drain`.
    Drain,
    /// `rollback`.
    Rollback,
    /// `status`.
    Status,
    /// `unlock`.
    Unlock,
    /// `removeRetired`.
    RemoveRetired,
    /// `resolveTag`.
    ResolveTag,
    /// `promoteTag`.
    PromoteTag,
}

/// `waitReady.crashThreshold` when left out.
pub const CRASH_THRESHOLD: u64 = 1;
/// `rollback.steps` when left out (and no `toImage`).
pub const ROLLBACK_STEPS: u64 = 1;
/// `setOpsState.dryRun` when left out.
pub const DRY_RUN: bool = false;
/// `patchImage.allowRollingUpdate` when left out.
pub const ALLOW_ROLLING_UPDATE: bool = false;
/// `setOpsState.allowCustomState` when left out.
pub const ALLOW_CUSTOM_STATE: bool = false;
/// `removeRetired.timeoutSeconds` when left out.
pub const REMOVE_RETIRED_TIMEOUT: u64 = 300;
/// `drain.scaleDown` when left out.
pub const SCALE_DOWN: bool = false;

/// One op: its arguments, the groups of which exactly one (or at most one)
/// must be given, and its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSpec {
    /// Which op.
    pub op: Op,
    /// Its key under `plugin.gameops`.
    pub name: &'static str,
    /// Takes `gameServerSet` (required), `namespace` and `cluster`
    /// ([`COMMON`]); the registry ops do not.
    pub on_set: bool,
    /// Its own arguments (for an op on a set: besides [`COMMON`]).
    pub args: &'static [Arg],
    /// Groups of which exactly one must be given (a group of one: a
    /// required argument).
    pub exactly_one: &'static [&'static [&'static str]],
    /// Groups of which at most one may be given.
    pub at_most_one: &'static [&'static [&'static str]],
    /// The output parameters it gives.
    pub outputs: &'static [&'static str],
}

impl OpSpec {
    /// Every argument it takes: [`COMMON`] (for an op on a set), then its own.
    pub fn all_args(&self) -> impl Iterator<Item = &'static Arg> + use<> {
        let common: &'static [Arg] = if self.on_set { COMMON } else { &[] };
        common.iter().chain(self.args)
    }
}

op_args! {
    /// The arguments every op on a set takes (`gameServerSet` is required).
    Common {
        /// The GameServerSet to act on.
        game_server_set "gameServerSet": Text,
        /// Its namespace (default: the workflow's).
        namespace "namespace": Text,
        /// The cluster (default: the plugin's first).
        cluster "cluster": Text,
    }
    /// `patchImage`'s own arguments.
    PatchImageArgs {
        /// The new image.
        image "image": Image,
        /// The container (default: the template's first).
        container "container": Text,
        /// Patch a set whose update strategy is not `OnDelete` anyway.
        allow_rolling_update "allowRollingUpdate": Flag.default(Literal::Flag(ALLOW_ROLLING_UPDATE)),
    }
    /// `scale`'s own arguments.
    ScaleArgs {
        /// The new replicas.
        replicas "replicas": Int.range(0, MAX, REPLICAS),
        /// Or a change to the current replicas.
        delta "delta": Int,
    }
    /// `waitReady`'s own arguments.
    WaitReadyArgs {
        /// The image (default: the template's first container's).
        image "image": Image,
        /// Ready servers needed.
        count "count": Whole,
        /// Or a percentage of `spec.replicas`, rounded up.
        percent "percent": Whole.range(0, 100, PERCENT),
        /// How long to wait, from the first request.
        timeout_seconds "timeoutSeconds": Whole.range(1, DAY, TIMEOUT),
        /// Crashed servers of the image that fail the wait at once.
        crash_threshold "crashThreshold": Whole
            .range(1, MAX, CRASHES)
            .default(Literal::Whole(CRASH_THRESHOLD)),
    }
    /// `setOpsState`'s own arguments.
    SetOpsStateArgs {
        /// Which servers.
        select "select": Selector,
        /// The opsState to set.
        ops_state "opsState": OpsState,
        /// At most this many (lowest ordinals first).
        limit "limit": Whole,
        /// Report only.
        dry_run "dryRun": Flag.default(Literal::Flag(DRY_RUN)),
        /// Set an opsState OpenKruiseGame does not define anyway.
        allow_custom_state "allowCustomState": Flag.default(Literal::Flag(ALLOW_CUSTOM_STATE)),
    }
    /// `drain`'s own arguments.
    DrainArgs {
        /// Drain servers running none of these (`CONTAINER/IMAGE`).
        not_image "notImage": Entries,
        /// Or those running any of these.
        image "image": Entries,
        /// How long to keep waiting, from the first request.
        timeout_seconds "timeoutSeconds": Whole.range(1, DAY, TIMEOUT),
        /// `WaitToBeDeleted` or `Kill`.
        then "then": Then,
        /// Lower `spec.replicas` by the number moved.
        scale_down "scaleDown": Flag.default(Literal::Flag(SCALE_DOWN)),
    }
    /// `rollback`'s own arguments.
    RollbackArgs {
        /// Restore the newest history entry with this image.
        to_image "toImage": Image,
        /// Or go this many changes back.
        steps "steps": Whole
            .range(1, MAX, STEPS)
            .default(Literal::Whole(ROLLBACK_STEPS)),
        /// The container (default: the template's first).
        container "container": Text,
    }
    /// `status` takes no arguments of its own.
    StatusArgs {}
    /// `unlock`'s own arguments.
    UnlockArgs {
        /// How the workflow ended, for the image history.
        outcome "outcome": Text,
    }
    /// `removeRetired`'s own arguments.
    RemoveRetiredArgs {
        /// How long to wait for OKG to see the marks.
        timeout_seconds "timeoutSeconds": Whole
            .range(1, DAY, TIMEOUT)
            .default(Literal::Whole(REMOVE_RETIRED_TIMEOUT)),
    }
    /// `resolveTag`'s arguments.
    ResolveTagArgs {
        /// A configured environment.
        environment "environment": Text,
        /// Or a repository (`host/path`) ...
        repository "repository": Text,
        /// ... with a filter (Flux OCIArtifactTag fields, plus pattern/extract/order).
        filter "filter": TagFilter,
    }
    /// `promoteTag`'s arguments.
    PromoteTagArgs {
        /// `host/path`.
        repository "repository": Text,
        /// The tag or digest to promote.
        from "from": Text,
        /// The tag to point at it.
        to "to": Text,
    }
}

/// The arguments every op on a set takes.
pub const COMMON: &[Arg] = Common::ARGS;

/// The opsStates OpenKruiseGame knows.
pub const OPS_STATES: [&str; 5] = [
    "None",
    "Allocated",
    "WaitToBeDeleted",
    "Maintaining",
    "Kill",
];

/// The values of `drain`'s `then`.
pub const THEN: [&str; 2] = ["WaitToBeDeleted", "Kill"];

const DAY: i128 = MAX_TIMEOUT_SECONDS as i128;
const MAX: i128 = i128::MAX;
const TIMEOUT: &str = "give 1 to {max} seconds";
const REPLICAS: &str = "replicas cannot be negative";
const PERCENT: &str = "give 0 to 100 (of spec.replicas)";
const CRASHES: &str = "must be at least 1 (crashed servers that fail the wait)";
const STEPS: &str = "must be at least 1 (1: the image before the last change)";

/// Every op, in the order messages list them.
pub const OPS: [OpSpec; 11] = [
    OpSpec {
        op: Op::PatchImage,
        name: "patchImage",
        on_set: true,
        args: PatchImageArgs::ARGS,
        exactly_one: &[&["image"]],
        at_most_one: &[],
        outputs: &["previousImage", "revision"],
    },
    OpSpec {
        op: Op::Scale,
        name: "scale",
        on_set: true,
        args: ScaleArgs::ARGS,
        exactly_one: &[&["replicas", "delta"]],
        at_most_one: &[],
        outputs: &["replicas"],
    },
    OpSpec {
        op: Op::WaitReady,
        name: "waitReady",
        on_set: true,
        args: WaitReadyArgs::ARGS,
        exactly_one: &[&["count", "percent"], &["timeoutSeconds"]],
        at_most_one: &[],
        outputs: &["ready"],
    },
    OpSpec {
        op: Op::SetOpsState,
        name: "setOpsState",
        on_set: true,
        args: SetOpsStateArgs::ARGS,
        exactly_one: &[&["select"], &["opsState"]],
        at_most_one: &[],
        outputs: &["count", "names"],
    },
    OpSpec {
        op: Op::Drain,
        name: "drain",
        on_set: true,
        args: DrainArgs::ARGS,
        exactly_one: &[&["notImage", "image"], &["timeoutSeconds"], &["then"]],
        at_most_one: &[],
        outputs: &["drained", "remaining"],
    },
    OpSpec {
        op: Op::Rollback,
        name: "rollback",
        on_set: true,
        args: RollbackArgs::ARGS,
        exactly_one: &[],
        at_most_one: &[&["toImage", "steps"]],
        outputs: &["image", "previousImage", "revision"],
    },
    OpSpec {
        op: Op::Status,
        name: "status",
        on_set: true,
        args: StatusArgs::ARGS,
        exactly_one: &[],
        at_most_one: &[],
        outputs: &["summary", "total", "ready"],
    },
    OpSpec {
        op: Op::Unlock,
        name: "unlock",
        on_set: true,
        args: UnlockArgs::ARGS,
        exactly_one: &[],
        at_most_one: &[],
        outputs: &["freed"],
    },
    OpSpec {
        op: Op::RemoveRetired,
        name: "removeRetired",
        on_set: true,
        args: RemoveRetiredArgs::ARGS,
        exactly_one: &[],
        at_most_one: &[],
        outputs: &["removed", "replicas"],
    },
    OpSpec {
        op: Op::ResolveTag,
        name: "resolveTag",
        on_set: false,
        args: ResolveTagArgs::ARGS,
        exactly_one: &[&["environment", "repository"]],
        at_most_one: &[],
        outputs: &["tag", "digest", "image"],
    },
    OpSpec {
        op: Op::PromoteTag,
        name: "promoteTag",
        on_set: false,
        args: PromoteTagArgs::ARGS,
        exactly_one: &[&["repository"], &["from"], &["to"]],
        at_most_one: &[],
        outputs: &["image", "digest", "previousDigest", "changed"],
    },
];

/// The op called `name`.
pub fn find(name: &str) -> Option<&'static OpSpec> {
    OPS.iter().find(|o| o.name == name)
}

/// The names of every op, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    OPS.iter().map(|o| o.name)
}

/// `patchImage, scale, ...`: the ops, for messages.
pub fn listing() -> String {
    names().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_names_arguments_of_its_op() {
        for spec in &OPS {
            for group in spec.exactly_one.iter().chain(spec.at_most_one) {
                for name in *group {
                    assert!(
                        spec.all_args().any(|a| a.name == *name),
                        "{}: {name}",
                        spec.name
                    );
                }
            }
        }
        assert_eq!(find("scale").map(|s| s.op), Some(Op::Scale));
        for spec in &OPS {
            for arg in spec.all_args() {
                let fits = match arg.default {
                    None => true,
                    Some(Literal::Flag(_)) => arg.ty == Ty::Flag,
                    Some(Literal::Whole(n)) => {
                        arg.ty == Ty::Whole
                            && arg
                                .range
                                .is_none_or(|r| (r.min..=r.max).contains(&i128::from(n)))
                    }
                };
                assert!(
                    fits,
                    "{}.{}: default of the wrong type",
                    spec.name, arg.name
                );
            }
        }
        assert!(listing().starts_with("patchImage, scale, waitReady"));
    }
}

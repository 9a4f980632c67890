//! `scale`: set a GameServerSet's replicas, absolutely (`replicas`) or
//! relative to the current value (`delta`), once per call however often
//! Argo sends it. Outputs `replicas`.

use std::collections::BTreeMap;

use serde_json::json;

use super::ledger::{self, Change};
use super::{Call, Outcome};

use super::table::ScaleArgs as Args;

/// The replicas `args` asks for, given the current ones.
fn target(args: &Args, current: i32) -> Result<i32, String> {
    let wanted = match (args.replicas, args.delta) {
        (Some(r), None) => r,
        (None, Some(d)) => i64::from(current) + d,
        _ => return Err("plugin.gameops.scale takes exactly one of replicas (the new count) or delta (a change, e.g. 3 or -2)".into()),
    };
    if wanted < 0 {
        return Err(format!(
            "plugin.gameops.scale would set replicas to {wanted} (currently {current}); replicas cannot be negative"
        ));
    }
    i32::try_from(wanted)
        .map_err(|_| format!("plugin.gameops.scale: {wanted} replicas is too many"))
}

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Outcome {
    ledger::mutate(call, |gss| {
        let current = gss.spec.replicas;
        let replicas = target(&args, current)?;
        Ok(Change {
            patch: json!({"spec": {"replicas": replicas}}),
            message: format!(
                "scaled {}/{} from {current} to {replicas} replicas",
                call.namespace, call.game_server_set
            ),
            outputs: BTreeMap::from([("replicas".to_owned(), replicas.to_string())]),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_or_relative_never_negative() {
        let a = |replicas, delta| Args { replicas, delta };
        assert_eq!(target(&a(Some(6), None), 3), Ok(6));
        assert_eq!(target(&a(None, Some(3)), 3), Ok(6));
        assert_eq!(target(&a(None, Some(-2)), 3), Ok(1));
        assert!(
            target(&a(None, Some(-4)), 3)
                .unwrap_err()
                .contains("cannot be negative")
        );
        assert!(
            target(&a(Some(1), Some(1)), 3)
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(target(&a(None, None), 3).is_err());
    }
}

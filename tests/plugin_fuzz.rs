//! Property test of the executor plugin's HTTP surface: arbitrary bodies
//! and arbitrary op arguments never crash it and never get a status other
//! than 200, 400 or 403 (any other status would fail an Argo node with an
//! unreadable message).

mod common;

use common::{MINECRAFT_GSS, Server};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-zA-Z0-9/:._ -]{0,12}".prop_map(Value::String),
        Just(json!("minecraft")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,14}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Arguments an op might get: real argument names with arbitrary values.
fn op_args() -> impl Strategy<Value = Value> {
    let names = [
        "gameServerSet",
        "namespace",
        "cluster",
        "image",
        "container",
        "replicas",
        "delta",
        "count",
        "percent",
        "timeoutSeconds",
        "select",
        "opsState",
        "limit",
        "dryRun",
        "notImage",
        "then",
        "scaleDown",
        "toImage",
        "steps",
        "crashThreshold",
    ];
    proptest::collection::btree_map(proptest::sample::select(names.to_vec()), json_value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn op_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "patchImage",
            "scale",
            "waitReady",
            "setOpsState",
            "drain",
            "rollback",
            "status"
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z]{0,10}",
    ]
}

fn post(http: &reqwest::blocking::Client, url: &str, body: String, token: Option<&str>) -> u16 {
    let mut request = http
        .post(url)
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .expect("the plugin keeps answering")
        .status()
        .as_u16()
}

/// One server for every property (owned here, so it stops with the test).
/// The controller is off: a fuzzed `replicas` only changes a number.
#[test]
fn the_plugin_answers_only_200_400_or_403() {
    let server = Server::start(&["--in-memory"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let token =
        std::fs::read_to_string(server.data_dir().join("plugin-token")).expect("plugin token");
    let url = format!(
        "http://127.0.0.1:{}/api/v1/template.execute",
        server.service_port
    );
    let http = reqwest::blocking::Client::new();
    let config = ProptestConfig::with_cases(128);

    TestRunner::new(config.clone())
        .run(&json_value(), |body| {
            let status = post(&http, &url, body.to_string(), Some(&token));
            prop_assert!(status == 200 || status == 400, "status {status} for {body}");
            Ok(())
        })
        .expect("arbitrary JSON bodies get 200 or 400");

    TestRunner::new(config.clone())
        .run(&proptest::collection::vec(any::<u8>(), 0..64), |bytes| {
            let status = post(
                &http,
                &url,
                String::from_utf8_lossy(&bytes).into_owned(),
                Some(&token),
            );
            prop_assert!(status == 200 || status == 400, "status {status}");
            Ok(())
        })
        .expect("arbitrary bytes get 200 or 400");

    TestRunner::new(config.clone())
        .run(
            &(op_name(), op_args(), "[a-z0-9]{1,8}"),
            |(op, args, uid)| {
                let body = json!({
                    "workflow": {"metadata": {"name": "fuzz", "namespace": "default", "uid": uid}},
                    "template": {"name": "fuzz", "plugin": {"gameops": {op.clone(): args.clone()}}},
                });
                prop_assert_eq!(
                    post(&http, &url, body.to_string(), Some(&token)),
                    200,
                    "{} {}",
                    op,
                    args
                );
                Ok(())
            },
        )
        .expect("arbitrary op arguments get a 200");

    TestRunner::new(config)
        .run(&json_value(), |body| {
            prop_assert_eq!(post(&http, &url, body.to_string(), None), 403);
            Ok(())
        })
        .expect("without the token everything is 403");

    // Still serving after all of it.
    let status = post(
        &http,
        &url,
        json!({"template": {"name": "x"}}).to_string(),
        Some(&token),
    );
    assert_eq!(status, 200);
}

//! The ops' GameServer cache against the real API server: it answers per
//! set, it always holds the plugin's own writes when it answers, and it
//! follows changes made by others.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use gameops::api::{GameServer, GameServerSpec, OWNER_GSS_LABEL};
use gameops::informer::ServerCache;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn server(set: &str, ordinal: u32) -> GameServer {
    let mut gs = GameServer::new(
        &format!("{set}-{ordinal}"),
        GameServerSpec {
            ops_state: Some("None".into()),
            ..Default::default()
        },
    );
    gs.metadata.labels = Some(BTreeMap::from([(
        OWNER_GSS_LABEL.to_owned(),
        set.to_owned(),
    )]));
    gs
}

fn ops_state<'a>(servers: &'a [Arc<GameServer>], name: &str) -> Option<&'a str> {
    servers
        .iter()
        .find(|g| g.metadata.name.as_deref() == Some(name))
        .and_then(|g| g.spec.ops_state.as_deref())
}

#[tokio::test]
async fn the_cache_answers_per_set_and_holds_its_own_writes() {
    let srv = Server::start(&["--in-memory"]);
    let client = srv.client().await;
    let api: Api<GameServer> = Api::namespaced(client.clone(), "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &server("a", i))
            .await
            .expect("create a");
    }
    for i in 0..5 {
        api.create(&PostParams::default(), &server("b", i))
            .await
            .expect("create b");
    }
    let cache = ServerCache::new(client);
    let a = cache
        .servers("default", "a")
        .await
        .expect("the cache answers");
    assert_eq!(a.len(), 20, "only set a's servers");
    assert!(a.iter().all(|g| {
        g.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("a-"))
    }));
    let b = cache
        .servers("default", "b")
        .await
        .expect("the cache answers");
    assert_eq!(b.len(), 5);
    assert_eq!(
        cache.servers("default", "nope").await.map(|s| s.len()),
        Some(0)
    );

    assert!(
        a.iter().all(|g| g.metadata.managed_fields.is_none()
            || g.metadata
                .managed_fields
                .as_ref()
                .is_some_and(Vec::is_empty)),
        "the cache drops managedFields, which the ops never read"
    );

    // Each write, once recorded, is in the very next read: 100 times over,
    // alternating states, with no wait in between.
    for round in 0..100u32 {
        let name = format!("a-{}", round % 20);
        let state = if round % 2 == 0 {
            "Maintaining"
        } else {
            "WaitToBeDeleted"
        };
        let written = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"opsState": state}})),
            )
            .await
            .expect("patch");
        cache.wrote("default", &written);
        let a = cache
            .servers("default", "a")
            .await
            .expect("the cache answers");
        assert_eq!(
            ops_state(&a, &name),
            Some(state),
            "round {round}: the cache answered without the plugin's own write"
        );
    }
}

#[tokio::test]
async fn the_cache_follows_changes_made_by_others() {
    let srv = Server::start(&["--in-memory"]);
    let client = srv.client().await;
    let api: Api<GameServer> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &server("a", 0))
        .await
        .expect("create");
    let cache = ServerCache::new(client);
    assert_eq!(
        cache.servers("default", "a").await.map(|s| s.len()),
        Some(1)
    );
    srv.kubectl_ok(
        &[
            "patch",
            "gs",
            "a-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
    srv.kubectl_ok(&["delete", "gs", "a-0"], None);
    api.create(&PostParams::default(), &server("a", 1))
        .await
        .expect("create");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = cache
            .servers("default", "a")
            .await
            .expect("the cache answers");
        let names: Vec<&str> = a
            .iter()
            .filter_map(|g| g.metadata.name.as_deref())
            .collect();
        if names == ["a-1"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never saw a-0 deleted and a-1 created: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

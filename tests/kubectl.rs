//! The real `kubectl` (/usr/bin/kubectl) against `gameops serve`: the seed
//! scenario's own commands and every verb users run on GameServerSets and
//! GameServers.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{MINECRAFT_GSS, Server};

/// Creates GameServer `name` owned by the `minecraft` set (as the
/// controller will) and gives it OKG's Ready status.
fn create_gs(server: &Server, name: &str, owner_uid: &str) {
    let manifest = format!(
        "apiVersion: game.kruise.io/v1alpha1
kind: GameServer
metadata:
  name: {name}
  namespace: default
  labels: {{game.kruise.io/owner-gss: minecraft}}
  ownerReferences:
  - {{apiVersion: game.kruise.io/v1alpha1, kind: GameServerSet, name: minecraft, uid: {owner_uid}, controller: true, blockOwnerDeletion: true}}
spec:
  opsState: None
  containers:
  - {{name: minecraft, image: registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2}}
"
    );
    server.kubectl_ok(&["create", "-f", "-"], Some(&manifest));
    server.kubectl_ok(
        &[
            "patch", "gs", name, "--subresource=status", "--type=merge", "-p",
            r#"{"status":{"currentState":"Ready","desiredState":"Ready","deletionPriority":0,"updatePriority":0}}"#,
        ],
        None,
    );
}

/// The seed's starting state: the set applied verbatim and its three servers.
fn seed(server: &Server) -> String {
    let out = server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    assert_eq!(out.trim(), "gameserverset.game.kruise.io/minecraft created");
    let uid = server.kubectl_ok(
        &["get", "gss", "minecraft", "-o", "jsonpath={.metadata.uid}"],
        None,
    );
    for i in 0..3 {
        create_gs(server, &format!("minecraft-{i}"), &uid);
    }
    uid
}

fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn seed_commands_show_okg_columns() {
    let server = Server::start(&[]);
    seed(&server);
    let out = server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
    assert_eq!(out.trim(), "gameserver.game.kruise.io/minecraft-0 patched");
    let table = rows(&server.kubectl_ok(&["get", "gs"], None));
    assert_eq!(table[0], ["NAME", "STATE", "OPSSTATE", "DP", "UP", "AGE"]);
    assert_eq!(
        table[1][..5],
        ["minecraft-0", "Ready", "Allocated", "0", "0"]
    );
    assert_eq!(table[2][..5], ["minecraft-1", "Ready", "None", "0", "0"]);
    assert_eq!(table[3][..5], ["minecraft-2", "Ready", "None", "0", "0"]);
    assert!(
        table[1][5].ends_with('s'),
        "AGE is formatted by the server: {:?}",
        table[1]
    );
    let gss = rows(&server.kubectl_ok(&["get", "gss"], None));
    assert_eq!(
        gss[0],
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "UPDATED",
            "READY",
            "MAINTAINING",
            "WAITTOBEDELETED",
            "PREDELETE",
            "AGE"
        ]
    );
    assert_eq!(gss[1][..2], ["minecraft", "3"]);
}

#[test]
fn get_yaml_apply_twice_and_server_side_apply() {
    let server = Server::start(&[]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let yaml = server.kubectl_ok(&["get", "gss", "minecraft", "-o", "yaml"], None);
    for needle in [
        "apiVersion: game.kruise.io/v1alpha1",
        "kind: GameServerSet",
        "generation: 1",
        "resourceVersion:",
        "uid:",
        "image: registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2",
        "type: OnDelete",
        "kubectl.kubernetes.io/last-applied-configuration",
    ] {
        assert!(yaml.contains(needle), "missing {needle} in\n{yaml}");
    }
    let same = server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    assert_eq!(
        same.trim(),
        "gameserverset.game.kruise.io/minecraft unchanged"
    );
    let changed = MINECRAFT_GSS.replace("replicas: 3", "replicas: 4");
    let out = server.kubectl_ok(&["apply", "-f", "-"], Some(&changed));
    assert_eq!(
        out.trim(),
        "gameserverset.game.kruise.io/minecraft configured"
    );
    let generation = server.kubectl_ok(
        &[
            "get",
            "gss",
            "minecraft",
            "-o",
            "jsonpath={.metadata.generation} {.spec.replicas}",
        ],
        None,
    );
    assert_eq!(generation, "2 4");

    let ssa = "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {name: ssa, namespace: default}
spec: {replicas: 2, gameServerTemplate: {spec: {containers: [{name: c, image: 'x:v1'}]}}}
";
    let out = server.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(ssa));
    assert_eq!(
        out.trim(),
        "gameserverset.game.kruise.io/ssa serverside-applied"
    );
    let out = server.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&ssa.replace("replicas: 2", "replicas: 5")),
    );
    assert_eq!(
        out.trim(),
        "gameserverset.game.kruise.io/ssa serverside-applied"
    );
    let managed = server.kubectl_ok(
        &["get", "gss", "ssa", "--show-managed-fields", "-o", "jsonpath={.spec.replicas} {.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}"],
        None,
    );
    assert_eq!(managed, "5 kubectl Apply");
}

/// Field ownership as kube-apiserver keeps it (structured-merge-diff
/// `merge/update.go`), seen through kubectl: Flux and Argo CD both apply
/// server-side, each under its own field manager.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one story: apply, share, conflict, force, stop applying, scale"
)]
fn server_side_apply_tracks_field_ownership() {
    let server = Server::start(&[]);
    let flux = "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {name: owned, namespace: default, labels: {team: blue, tier: game}}
spec: {replicas: 2, gameServerTemplate: {spec: {containers: [{name: c, image: 'x:v1'}]}}}
";
    let apply = |manager: &str, yaml: &str, extra: &[&str]| {
        let mut args = vec![
            "apply",
            "--server-side",
            "--field-manager",
            manager,
            "-f",
            "-",
        ];
        args.extend_from_slice(extra);
        server.kubectl_stdin(&args, Some(yaml))
    };
    let get = |path: &str| {
        server.kubectl_ok(
            &["get", "gss", "owned", "-o", &format!("jsonpath={path}")],
            None,
        )
    };
    assert!(apply("flux", flux, &[]).status.success());
    // The same value from another manager is shared, not a conflict.
    let argocd = "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {name: owned, namespace: default}
spec: {replicas: 2}
";
    assert!(apply("argocd", argocd, &[]).status.success());
    // A different value is a conflict that names the owner and the field,
    // and changes nothing.
    let refused = apply("argocd", &argocd.replace("replicas: 2", "replicas: 5"), &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"flux\": .spec.replicas"),
        "{stderr}"
    );
    assert_eq!(get("{.spec.replicas}"), "2");
    // Forced, the field changes hands.
    assert!(
        apply(
            "argocd",
            &argocd.replace("replicas: 2", "replicas: 5"),
            &["--force-conflicts"]
        )
        .status
        .success()
    );
    assert_eq!(get("{.spec.replicas}"), "5");
    let owners = server.kubectl_ok(
        &["get", "gss", "owned", "--show-managed-fields", "-o", "json"],
        None,
    );
    let owners: serde_json::Value = serde_json::from_str(&owners).expect("json");
    let flux_fields = owners["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|e| e["manager"] == "flux")
        .expect("flux still owns fields")["fieldsV1"]
        .clone();
    assert!(
        flux_fields["f:spec"].get("f:replicas").is_none(),
        "{flux_fields}"
    );
    assert!(
        flux_fields["f:metadata"]["f:labels"]
            .get("f:team")
            .is_some(),
        "{flux_fields}"
    );
    // Flux stops applying a label it alone owned: the label goes; the
    // replicas it no longer owns stay as Argo CD applied them.
    let flux = flux
        .replace("team: blue, ", "")
        .replace("replicas: 2, ", "");
    assert!(apply("flux", &flux, &[]).status.success());
    assert_eq!(get("{.metadata.labels}"), r#"{"tier":"game"}"#);
    assert_eq!(get("{.spec.replicas}"), "5");
    // A client-side write takes the fields it changes from every applier;
    // without --field-manager its manager is the User-Agent's product.
    server.kubectl_ok(&["scale", "gss", "owned", "--replicas", "7"], None);
    let refused = apply("argocd", &argocd.replace("replicas: 2", "replicas: 5"), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("conflict with \"kubectl\" with subresource \"scale\""),
        "{stderr}"
    );
    assert_eq!(get("{.spec.replicas}"), "7");
}

/// Events expire as kube-apiserver's `--event-ttl` has them (each write
/// gives an event a lease of that length); a bad TTL refuses to start.
#[test]
fn events_expire_after_the_event_ttl() {
    let server = Server::start(&["--event-ttl", "5s"]);
    let event = "apiVersion: v1
kind: Event
metadata: {name: minecraft.ttl, namespace: default}
involvedObject: {kind: GameServerSet, name: minecraft, namespace: default}
reason: Scaled
message: scaled to 4
type: Normal
";
    server.kubectl_ok(&["create", "-f", "-"], Some(event));
    let names = || server.kubectl_ok(&["get", "events", "-o", "name"], None);
    assert_eq!(names().trim(), "event/minecraft.ttl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !names().trim().is_empty() {
        assert!(Instant::now() < deadline, "the event outlived its TTL");
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["serve", "--in-memory", "--event-ttl", "soon"])
        .output()
        .expect("run gameops");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("\"soon\" is not a positive duration"), "{err}");
}

#[test]
fn watch_prints_the_change() {
    let server = Server::start(&[]);
    seed(&server);
    let mut child = Command::new("kubectl")
        .args(["get", "gs", "-w"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("KUBECACHEDIR", server.dir.path().join("kubecache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial listing: header plus three rows.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(
            rx.recv_timeout(Duration::from_secs(20))
                .expect("initial rows"),
        );
    }
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-2",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"WaitToBeDeleted"}}"#,
        ],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut change = None;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.starts_with("minecraft-2")
        {
            change = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let change = change.expect("kubectl get -w printed the change");
    let cells: Vec<&str> = change.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["minecraft-2", "Ready", "WaitToBeDeleted", "0", "0"]
    );
}

#[test]
fn create_duplicate_json_patch_scale_and_strategic_merge() {
    let server = Server::start(&[]);
    server.kubectl_ok(&["create", "-f", "-"], Some(MINECRAFT_GSS));
    let dup = server.kubectl_stdin(&["create", "-f", "-"], Some(MINECRAFT_GSS));
    assert!(!dup.status.success());
    let err = String::from_utf8_lossy(&dup.stderr);
    assert!(
        err.contains("AlreadyExists")
            && err.contains(r#"gameserversets.game.kruise.io "minecraft" already exists"#),
        "{err}"
    );

    server.kubectl_ok(
        &["patch", "gss", "minecraft", "--type=json", "-p",
          r#"[{"op":"replace","path":"/spec/gameServerTemplate/spec/containers/0/image","value":"registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new"}]"#],
        None,
    );
    let image = server.kubectl_ok(
        &[
            "get",
            "gss",
            "minecraft",
            "-o",
            "jsonpath={.spec.gameServerTemplate.spec.containers[0].image}",
        ],
        None,
    );
    assert_eq!(
        image,
        "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new"
    );

    let out = server.kubectl_ok(&["scale", "gss", "minecraft", "--replicas=6"], None);
    assert_eq!(out.trim(), "gameserverset.game.kruise.io/minecraft scaled");
    let replicas = server.kubectl_ok(
        &["get", "gss", "minecraft", "-o", "jsonpath={.spec.replicas}"],
        None,
    );
    assert_eq!(replicas, "6");

    // kubectl's default patch type is strategic merge: refused with 415 for custom resources.
    let smp = server.kubectl_stdin(
        &[
            "patch",
            "gss",
            "minecraft",
            "-p",
            r#"{"spec":{"replicas":1}}"#,
        ],
        None,
    );
    assert!(!smp.status.success());
    assert!(
        String::from_utf8_lossy(&smp.stderr)
            .contains("application/strategic-merge-patch+json is not supported")
    );
    let replicas = server.kubectl_ok(
        &["get", "gss", "minecraft", "-o", "jsonpath={.spec.replicas}"],
        None,
    );
    assert_eq!(replicas, "6", "a refused patch changes nothing");
}

/// `kubectl delete --cascade=foreground` as on kube-apiserver (store.go
/// `updateForGracefulDeletionAndFinalizers`; garbagecollector.go
/// `processDeletingDependentsItem`): the set stays, terminating with the
/// `foregroundDeletion` finalizer, while a server that blocks it is still
/// there (here held by a finalizer of its own), and goes once it is gone.
/// `{.metadata.finalizers} {.metadata.deletionTimestamp}` of `object`.
fn terminating(server: &Server, object: &str) -> String {
    let path = "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}";
    server.kubectl_ok(&["get", object, "-o", path], None)
}

#[test]
fn foreground_deletion_waits_for_the_dependents() {
    let mut server = Server::start(&[]);
    seed(&server);
    let hold = |finalizers: &str| {
        let patch = format!(r#"{{"metadata":{{"finalizers":{finalizers}}}}}"#);
        let args = ["patch", "gs", "minecraft-1", "--type=merge", "-p", &patch];
        server.kubectl_ok(&args, None);
    };
    hold(r#"["example.com/hold"]"#);
    let delete = [
        "delete",
        "gss",
        "minecraft",
        "--cascade=foreground",
        "--wait=false",
    ];
    server.kubectl_ok(&delete, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = server.kubectl_ok(&["get", "gs", "-o", "name"], None);
        if left.trim() == "gameserver.game.kruise.io/minecraft-1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the free servers were not deleted: {left}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let set = terminating(&server, "gss/minecraft");
    assert!(
        set.starts_with(r#"["foregroundDeletion"] 20"#),
        "the set waits: {set}"
    );
    let held = terminating(&server, "gs/minecraft-1");
    assert!(
        held.contains(" 20"),
        "the held server is terminating: {held}"
    );
    // A restart in the middle (SIGKILL): the set still waits for its
    // dependent, as the collector resumes every waiting owner on start.
    server.restart();
    let set_after = terminating(&server, "gss/minecraft");
    assert_eq!(set_after, set, "the restart changed the waiting set");
    // Released, the server goes, and then the set.
    let hold = |finalizers: &str| {
        let patch = format!(r#"{{"metadata":{{"finalizers":{finalizers}}}}}"#);
        let args = ["patch", "gs", "minecraft-1", "--type=merge", "-p", &patch];
        server.kubectl_ok(&args, None);
    };
    hold("null");
    server.kubectl_ok(
        &["wait", "--for=delete", "gss/minecraft", "--timeout=20s"],
        None,
    );
    assert_eq!(
        server.kubectl_ok(&["get", "gs", "-o", "name"], None).trim(),
        ""
    );
    // Deleting again what is already gone is a 404, as on a cluster.
    let again = server.kubectl(&["delete", "gss", "minecraft", "--cascade=foreground"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("NotFound"));
}

#[test]
fn delete_cascades_to_owned_gameservers() {
    let server = Server::start(&[]);
    seed(&server);
    let out = server.kubectl_ok(&["delete", "gss", "minecraft"], None);
    assert_eq!(
        out.trim(),
        r#"gameserverset.game.kruise.io "minecraft" deleted"#
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = server.kubectl_ok(&["get", "gs", "-o", "name"], None);
        if left.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "owned GameServers were not collected: {left}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn explain_describe_and_events() {
    let server = Server::start(&[]);
    let uid = seed(&server);
    let explain = server.kubectl_ok(&["explain", "gss.spec.replicas"], None);
    assert!(explain.contains("KIND:       GameServerSet"), "{explain}");
    assert!(explain.contains("FIELD: replicas <integer>"), "{explain}");
    let explain = server.kubectl_ok(&["explain", "gs.spec"], None);
    assert!(explain.contains("opsState"), "{explain}");

    let event = format!(
        "apiVersion: v1
kind: Event
metadata: {{name: minecraft.scaled, namespace: default}}
involvedObject: {{apiVersion: game.kruise.io/v1alpha1, kind: GameServerSet, name: minecraft, namespace: default, uid: {uid}}}
reason: ScaledUp
message: created minecraft-3
type: Normal
source: {{component: gameops-controller}}
count: 1
"
    );
    server.kubectl_ok(&["create", "-f", "-"], Some(&event));
    let describe = server.kubectl_ok(&["describe", "gss", "minecraft"], None);
    assert!(describe.contains("Name:         minecraft"), "{describe}");
    assert!(describe.contains("Type:  OnDelete"), "{describe}");
    let events_section = describe.split("Events:").nth(1).unwrap_or("");
    assert!(
        events_section.contains("ScaledUp")
            && events_section.contains("gameops-controller")
            && events_section.contains("created minecraft-3"),
        "{describe}"
    );
    let events = rows(&server.kubectl_ok(&["get", "events"], None));
    assert_eq!(
        events[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert_eq!(
        events[1][1..5],
        ["Normal", "ScaledUp", "gameserverset/minecraft", "created"]
    );
    let filtered = server.kubectl_ok(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=other",
            "-o",
            "name",
        ],
        None,
    );
    assert!(filtered.trim().is_empty(), "{filtered}");
}

#[test]
fn field_and_label_selectors() {
    let server = Server::start(&[]);
    seed(&server);
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
    let names = server.kubectl_ok(
        &[
            "get",
            "gs",
            "--field-selector",
            "spec.opsState=Allocated",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(names.trim(), "gameserver.game.kruise.io/minecraft-1");
    let names = server.kubectl_ok(
        &[
            "get",
            "gs",
            "--field-selector",
            "spec.opsState!=Allocated,status.currentState=Ready",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(names.lines().count(), 2);
    let names = server.kubectl_ok(
        &[
            "get",
            "gs",
            "-l",
            "game.kruise.io/owner-gss in (minecraft)",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(names.lines().count(), 3);
    let names = server.kubectl_ok(
        &[
            "get",
            "gs",
            "-l",
            "game.kruise.io/owner-gss notin (minecraft)",
            "-o",
            "name",
        ],
        None,
    );
    assert!(names.trim().is_empty());
    let all = server.kubectl_ok(&["get", "gs", "-A", "-o", "name"], None);
    assert_eq!(all.lines().count(), 3);
    let bad = server.kubectl_stdin(&["get", "gs", "--field-selector", "spec.bogus=1"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("field label not supported"));
}

#[test]
fn named_clusters_are_independent_contexts() {
    let server = Server::start(&["--cluster", "eu-west", "--cluster", "us-east"]);
    server.kubectl_ok(
        &["--context", "eu-west", "apply", "-f", "-"],
        Some(MINECRAFT_GSS),
    );
    let eu = server.kubectl_ok(&["--context", "eu-west", "get", "gss", "-o", "name"], None);
    assert_eq!(eu.trim(), "gameserverset.game.kruise.io/minecraft");
    let us = server.kubectl_ok(&["--context", "us-east", "get", "gss", "-o", "name"], None);
    assert!(
        us.trim().is_empty(),
        "us-east must not see eu-west's objects: {us}"
    );
    let current = server.kubectl_ok(&["config", "current-context"], None);
    assert_eq!(current.trim(), "eu-west");
}

/// `kubectl auth can-i` works as against a cluster where the user is an
/// administrator (kubectl sends the reviews as protobuf).
#[test]
fn auth_can_i_answers_yes_for_the_administrator() {
    let server = Server::start(&["--in-memory"]);
    for args in [
        &["auth", "can-i", "create", "gss"][..],
        &["auth", "can-i", "delete", "pods", "-n", "game"][..],
        &[
            "auth",
            "can-i",
            "patch",
            "gameservers.game.kruise.io",
            "--subresource=status",
        ][..],
    ] {
        let out = server.kubectl_ok(args, None);
        assert_eq!(out.trim(), "yes", "{args:?}");
    }
    let list = server.kubectl_ok(&["auth", "can-i", "--list"], None);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some("*.*") && l.contains("[*]")),
        "{list}"
    );
}

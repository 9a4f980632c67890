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

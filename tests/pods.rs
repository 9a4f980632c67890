//! Pods as OpenKruiseGame and kubelet keep them, in the embedded fleet:
//! seed 001's `check-pods-ready` script, read verbatim from the seed,
//! gives the right answer before and after a release; `kubectl get pods`
//! shows kubelet's columns (kubernetes pkg/printers/internalversion
//! `printPod`); a deleted pod comes back and its server starts over; the
//! pods go with their set (garbage collection).

mod common;

use std::time::{Duration, Instant};

use common::seed::{self, NEW_IMAGE};
use common::{MINECRAFT_GSS, Server};

/// Runs seed 001's script against the server: (succeeded, stdout).
fn check_pods_ready(server: &Server) -> (bool, String) {
    seed::check_pods_ready(&server.kubeconfig(), server.dir.path())
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pod_rows(server: &Server) -> Vec<Vec<String>> {
    server
        .kubectl_ok(&["get", "pods", "--no-headers"], None)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn fleet() -> Server {
    Server::start_fleet(&["--sim-startup-ms", "300", "--sim-jitter-ms", "200"])
}

fn ready_pods(server: &Server, n: usize) {
    until(&format!("{n} pods are 1/1 Running"), || {
        let rows = pod_rows(server);
        rows.len() == n && rows.iter().all(|r| r[1] == "1/1" && r[2] == "Running")
    });
}

#[test]
fn seed_001s_check_pods_ready_script_runs_unchanged_and_answers_right() {
    let server = fleet();
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    // Before the release no pod runs the new image: the script fails.
    let (ok, out) = check_pods_ready(&server);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("Ready Pods with image {NEW_IMAGE}: 0")),
        "{out}"
    );
    // The seed's first two steps, as kubectl runs them.
    server.kubectl_ok(
        &["patch", "gss", "minecraft", "--type=merge", "-p",
          &format!(r#"{{"spec":{{"gameServerTemplate":{{"spec":{{"containers":[{{"name":"minecraft","image":"{NEW_IMAGE}"}}]}}}}}}}}"#)],
        None,
    );
    server.kubectl_ok(&["scale", "gss", "minecraft", "--replicas=6"], None);
    // OnDelete: old pods keep their image, the three new ones start on the new.
    until(
        "the script counts three ready pods of the new image",
        || check_pods_ready(&server).0,
    );
    let (_, out) = check_pods_ready(&server);
    assert!(
        out.contains(&format!("Ready Pods with image {NEW_IMAGE}: 3")),
        "{out}"
    );
    let images = server.kubectl_ok(
        &[
            "get",
            "pods",
            "-l",
            "game.kruise.io/owner-gss=minecraft",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image}{\"\\n\"}{end}",
        ],
        None,
    );
    for i in 0..3 {
        assert!(
            images.contains(&format!(
                "minecraft-{i}=registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2\n"
            )),
            "{images}"
        );
    }
    for i in 3..6 {
        assert!(
            images.contains(&format!("minecraft-{i}={NEW_IMAGE}\n")),
            "{images}"
        );
    }
    // Run again right away: the same answer.
    assert!(check_pods_ready(&server).0);
}

#[test]
fn pods_carry_okg_labels_and_follow_their_server() {
    let server = fleet();
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"WaitToBeDeleted"}}"#,
        ],
        None,
    );
    until("OKG's opsState label reaches the pod", || {
        server
            .kubectl_ok(
                &[
                    "get",
                    "pods",
                    "-l",
                    "game.kruise.io/gs-opsState=WaitToBeDeleted",
                    "-o",
                    "name",
                ],
                None,
            )
            .trim()
            == "pod/minecraft-1"
    });
    let owner = server.kubectl_ok(
        &[
            "get",
            "pod",
            "minecraft-0",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        ],
        None,
    );
    assert_eq!(owner, "GameServer/minecraft-0");
    let describe = server.kubectl_ok(&["describe", "pod", "minecraft-0"], None);
    assert!(describe.contains("Status:       Running"), "{describe}");
    assert!(
        describe.contains("game.kruise.io/owner-gss=minecraft"),
        "{describe}"
    );
    assert!(describe.contains("QoS Class:"), "{describe}");
}

#[test]
fn a_deleted_pod_comes_back_and_its_server_starts_over() {
    let server = fleet();
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    let uid = |s: &Server| {
        s.kubectl_ok(
            &[
                "get",
                "pod",
                "minecraft-2",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
            None,
        )
    };
    let before = uid(&server);
    let since = |s: &Server| {
        s.kubectl_ok(
            &[
                "get",
                "gs",
                "minecraft-2",
                "-o",
                "jsonpath={.status.lastTransitionTime}",
            ],
            None,
        )
    };
    let ready_since = since(&server);
    std::thread::sleep(Duration::from_millis(1100));
    let out = server.kubectl_ok(&["delete", "pod", "minecraft-2"], None);
    assert_eq!(out.trim(), "pod \"minecraft-2\" deleted");
    until("a new minecraft-2 pod exists", || {
        let out = server.kubectl(&[
            "get",
            "pod",
            "minecraft-2",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        out.status.success()
            && !out.stdout.is_empty()
            && String::from_utf8_lossy(&out.stdout) != before
    });
    ready_pods(&server, 3);
    // The server went through Creating again: Ready since later than before.
    until("minecraft-2 is Ready again", || {
        server.kubectl_ok(
            &[
                "get",
                "gs",
                "minecraft-2",
                "-o",
                "jsonpath={.status.currentState}",
            ],
            None,
        ) == "Ready"
    });
    assert!(
        since(&server) > ready_since,
        "{} > {ready_since}",
        since(&server)
    );
}

#[test]
fn a_crashing_image_shows_crash_loop_back_off_with_restarts() {
    let server = Server::start_fleet(&[
        "--sim-startup-ms",
        "200",
        "--sim-jitter-ms",
        "0",
        "--sim-crash-image",
        "1\\.12\\.2$",
    ]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    until("a pod shows CrashLoopBackOff with a restart", || {
        pod_rows(&server)
            .iter()
            .any(|r| r.len() >= 4 && r[1] == "0/1" && r[2] == "CrashLoopBackOff" && r[3] != "0")
    });
}

/// kube-apiserver's `ValidatePodUpdate` (kubernetes
/// pkg/apis/core/validation/validation.go): a pod's image may change in
/// place (OKG's in-place update does that), the rest of its spec may not,
/// and a refused update changes nothing.
#[test]
fn a_pods_spec_is_immutable_but_for_images() {
    let server = fleet();
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    let policy = || {
        server.kubectl_ok(
            &[
                "get",
                "pod",
                "minecraft-0",
                "-o",
                "jsonpath={.spec.restartPolicy}",
            ],
            None,
        )
    };
    let refused = server.kubectl(&[
        "patch",
        "pod",
        "minecraft-0",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/restartPolicy","value":"Never"}]"#,
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(r#"Pod "minecraft-0" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"#),
        "{err}"
    );
    assert_eq!(policy(), "Always", "nothing changed");
    let more = server.kubectl(&[
        "patch", "pod", "minecraft-0", "--type=json", "-p",
        r#"[{"op":"add","path":"/spec/containers/-","value":{"name":"extra","image":"busybox:1"}}]"#,
    ]);
    let err = String::from_utf8_lossy(&more.stderr);
    assert!(
        err.contains("spec.containers: Forbidden: pod updates may not add or remove containers"),
        "{err}"
    );
    server.kubectl_ok(
        &[
            "patch",
            "pod",
            "minecraft-0",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/activeDeadlineSeconds","value":600}]"#,
        ],
        None,
    );
}

/// Strategic merge on a Pod, as kube-apiserver applies it to built-in
/// types (apimachinery `strategicpatch`): what `kubectl set image` and
/// plain `kubectl patch` send. A custom resource still answers 415.
#[test]
fn kubectl_set_image_and_patch_use_strategic_merge_on_pods() {
    let server = Server::start(&["--in-memory"]);
    server.kubectl_ok(&["run", "web", "--image=nginx:1", "--labels=app=web"], None);
    let image = || {
        server.kubectl_ok(
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.containers[0].image} {.metadata.labels}",
            ],
            None,
        )
    };
    let out = server.kubectl_ok(&["set", "image", "pod/web", "web=nginx:2"], None);
    assert_eq!(out.trim(), "pod/web image updated");
    assert_eq!(image(), r#"nginx:2 {"app":"web"}"#);
    server.kubectl_ok(
        &["patch", "pod", "web", "-p", r#"{"metadata":{"labels":{"tier":"front"}},"spec":{"containers":[{"name":"web","image":"nginx:3"}]}}"#],
        None,
    );
    assert_eq!(image(), r#"nginx:3 {"app":"web","tier":"front"}"#);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let refused = server.kubectl(&[
        "patch",
        "gss",
        "minecraft",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    assert!(
        !refused.status.success(),
        "no strategic merge on a custom resource"
    );
}

#[test]
fn the_pods_go_with_their_set() {
    let server = fleet();
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    server.kubectl_ok(&["delete", "gss", "minecraft"], None);
    until("no pod is left", || pod_rows(&server).is_empty());
    // In the foreground, kubectl returns once the set is gone, and the set
    // goes only after its servers and their pods (GameServer and Pod refs
    // block their owners' deletion, as OKG sets them).
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    server.kubectl_ok(
        &[
            "delete",
            "gss",
            "minecraft",
            "--cascade=foreground",
            "--timeout=30s",
        ],
        None,
    );
    assert!(pod_rows(&server).is_empty(), "pods left after the set");
    assert_eq!(
        server.kubectl_ok(&["get", "gs", "-o", "name"], None).trim(),
        ""
    );
}

/// `gameops fleet` attached to an API server without a fleet of its own
/// (as to kube-apiserver) plays OKG and kubelet there: servers and their
/// pods come up. Arguments it cannot use refuse to start, naming them.
#[test]
fn gameops_fleet_attaches_to_another_server_and_refuses_bad_arguments() {
    use std::process::{Command, Stdio};
    let server = Server::start(&["--in-memory"]);
    let gameops = env!("CARGO_BIN_EXE_gameops");
    for (args, says) in [
        (
            &["fleet", "--no-controller", "--no-simulator"][..],
            "nothing to run",
        ),
        (
            &["fleet", "--cluster", "no-equals-sign"][..],
            "is not NAME=KUBECONFIG",
        ),
        (
            &["fleet", "--sim-crash-image", "("][..],
            "--sim-crash-image",
        ),
    ] {
        let out = Command::new(gameops)
            .args(args)
            .env("KUBECONFIG", server.kubeconfig())
            .output()
            .expect("gameops runs");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let mut fleet = Command::new(gameops)
        .args(["fleet", "--sim-startup-ms", "200", "--sim-jitter-ms", "0"])
        .env("KUBECONFIG", server.kubeconfig())
        .stderr(Stdio::null())
        .spawn()
        .expect("gameops fleet starts");
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    ready_pods(&server, 3);
    let _ = fleet.kill();
    let _ = fleet.wait();
}

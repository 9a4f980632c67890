//! The API server listens on loopback by default; off loopback it refuses to
//! start without a token, and with a token every request must carry it.

mod common;

use std::process::Command;

use common::{MINECRAFT_GSS, Server, free_port};

#[test]
fn non_loopback_without_token_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["serve", "--in-memory", "--api-listen"])
        .arg(format!("0.0.0.0:{}", free_port()))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .output()
        .expect("run gameops");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-token-file"), "{err}");
}

#[test]
fn a_missing_or_empty_token_file_refuses_to_start_naming_the_flag_and_file() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing-token");
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, " \n").expect("write");
    for (file, why) in [(&missing, "does not exist"), (&empty, "is empty")] {
        // gameops serve --api-token-file
        let out = Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["serve", "--in-memory", "--api-listen"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--api-token-file")
            .arg(file)
            .output()
            .expect("run gameops");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let shown = file.display().to_string();
        assert!(
            err.contains("--api-token-file") && err.contains(&shown) && err.contains(why),
            "{err}"
        );
        // gameops run --plugin-token-file: the same reader, the same answer.
        let out = Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["run", "seamless-release", "--plugin", "http://127.0.0.1:9"])
            .args([
                "--templates",
                concat!(env!("CARGO_MANIFEST_DIR"), "/workflow-templates"),
            ])
            .arg("--plugin-token-file")
            .arg(file)
            .output()
            .expect("run gameops");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--plugin-token-file") && err.contains(&shown) && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn token_is_required_on_every_request_and_written_to_the_kubeconfig() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("token");
    let token_arg = token_file.to_string_lossy().into_owned();
    let server = Server::start(&["--api-token-file", &token_arg]);
    // With a token the API speaks TLS, with a CA kept in the data directory.
    let ca = std::fs::read(server.data_dir().join("tls/ca.crt")).expect("CA written");
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM CA"))
        .build()
        .expect("client");
    let plain = server.url().replace("http://", "https://");
    let url = format!("{plain}/apis/game.kruise.io/v1alpha1/gameservers");
    let anonymous = http.get(&url).send().expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = http
        .get(&url)
        .bearer_auth("s3cret-tokeN")
        .send()
        .expect("request");
    assert_eq!(wrong.status().as_u16(), 401);
    let right = http
        .get(&url)
        .bearer_auth("s3cret-token")
        .send()
        .expect("request");
    assert_eq!(right.status().as_u16(), 200);
    // kubectl works through the written kubeconfig, which carries the token.
    let out = server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    assert!(out.contains("created"));
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).expect("kubeconfig");
    assert!(kubeconfig.contains("token: s3cret-token"));
    assert!(kubeconfig.contains("certificate-authority-data:"));
    assert!(kubeconfig.contains("server: https://127.0.0.1:"));
    let insecure = reqwest::blocking::Client::new()
        .get(&url)
        .bearer_auth("s3cret-token")
        .send();
    assert!(
        insecure.is_err(),
        "a client that does not trust the CA must not connect"
    );
}

#[tokio::test]
async fn kube_rs_connects_over_tls_with_the_token() {
    use kube::api::{Api, PostParams};
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "kube-rs-token").expect("token");
    let token_arg = token_file.to_string_lossy().into_owned();
    let server = Server::start(&["--api-token-file", &token_arg]);
    let client = server.client().await;
    let api: Api<gameops::api::GameServerSet> = Api::namespaced(client, "default");
    let gss: gameops::api::GameServerSet =
        serde_yaml_ng::from_str(MINECRAFT_GSS).expect("seed yaml");
    let created = api
        .create(&PostParams::default(), &gss)
        .await
        .expect("create over TLS");
    assert_eq!(created.spec.replicas, 3);
}

/// Issue 13: the data directory holds the store, the TLS key and the
/// plugin's token, so everything in it is private to its owner, as etcd
/// keeps its data directory (0700 directories, 0600 files).
#[test]
fn the_data_directory_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("api-token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let server = Server::start(&["--api-token-file", &token.to_string_lossy()]);
    let mut seen = Vec::new();
    let mut todo = vec![server.data_dir()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            todo.extend(
                std::fs::read_dir(&path)
                    .expect("list")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
        seen.push(path);
    }
    let names: Vec<String> = seen
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(names.iter().any(|n| n == "plugin-token"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "tls"),
        "the TLS key is in there too: {names:?}"
    );
    assert!(
        seen.len() >= 5,
        "the store, TLS material and token: {names:?}"
    );
}

#[test]
fn a_service_port_off_loopback_without_token_refuses_to_start() {
    let service = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["serve", "--in-memory", "--api-listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--listen")
        .arg(format!("0.0.0.0:{service}"))
        .output()
        .expect("run gameops");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--listen 0.0.0.0:") && err.contains("--api-token-file"),
        "{err}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", service)).is_err(),
        "nothing listens"
    );
}

/// With a token, the allocator hands out servers only to whoever carries
/// it (the same token as the API's; the plugin and Flux have their own).
#[test]
fn with_a_token_the_allocator_requires_it() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("token");
    let token_arg = token_file.to_string_lossy().into_owned();
    let server = Server::start_fleet(&["--in-memory", "--api-token-file", &token_arg]);
    let url = format!("http://127.0.0.1:{}/v1/allocate", server.service_port);
    let body = r#"{"namespace": "default", "selectors": [{"gameServerSet": "minecraft"}]}"#;
    let http = reqwest::blocking::Client::new();
    let send = |token: Option<&str>| {
        let mut request = http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().expect("an answer")
    };
    let anonymous = send(None);
    assert_eq!(anonymous.status().as_u16(), 401);
    let answer: serde_json::Value = anonymous.json().expect("json");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("--api-token-file")),
        "{answer}"
    );
    assert_eq!(send(Some("wrong")).status().as_u16(), 401);
    let right = send(Some("s3cret-token"));
    assert_ne!(right.status().as_u16(), 401, "the token opens it");
}

/// A client that sends half a body, half its headers, or nothing at all,
/// and stalls is cut off after 30 s (the body timeout; hyper's header read
/// timeout; the first-byte timeout), on the API port, the service port and
/// the plugin sidecar's port, instead of holding its connection for ever.
#[test]
fn a_stalled_request_body_is_cut_off() {
    use std::io::{Read, Write};
    let server = Server::start(&["--in-memory"]);
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).expect("kubeconfig");
    let sidecar = common::sidecar::Sidecar::start(&kubeconfig, &[]);
    let silent = |port: u16| {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(45)))
            .expect("timeout");
        tcp
    };
    let mut silent_api = silent(server.api_port);
    let mut silent_service = silent(server.service_port);
    let mut silent_sidecar = silent(sidecar.port);
    let half = |port: u16, path: &str| {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            tcp,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"half\":"
        )
        .expect("write");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(45)))
            .expect("timeout");
        tcp
    };
    let mut api = half(
        server.api_port,
        "/apis/game.kruise.io/v1alpha1/namespaces/default/gameserversets",
    );
    let mut service = half(server.service_port, "/v1/allocate");
    let half_headers = |port: u16| {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(45)))
            .expect("timeout");
        tcp
    };
    let mut api_headers = half_headers(server.api_port);
    let mut service_headers = half_headers(server.service_port);
    let started = std::time::Instant::now();
    for tcp in [
        &mut api,
        &mut service,
        &mut api_headers,
        &mut service_headers,
        &mut silent_api,
        &mut silent_service,
        &mut silent_sidecar,
    ] {
        let mut answer = String::new();
        // The server answers (408) and closes, or just closes: either way
        // the read ends before the client's own 45 s timeout.
        let _ = tcp.read_to_string(&mut answer);
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(44),
        "the server cut the stalled requests off"
    );
}

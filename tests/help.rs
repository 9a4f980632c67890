//! What `--help` and the first error messages tell a user: each
//! subcommand lists only the flags that do something for it, a default is
//! said once, the service port's text says what it serves, no colour codes
//! reach a pipe, and common slips get a sentence that says what to do.

use std::process::{Command, Output};

const SUBCOMMANDS: &[&str] = &[
    "serve",
    "crds",
    "plugin",
    "resolve",
    "run",
    "demo",
    "status",
    "history",
    "unlock",
    "fleet",
    "lint",
    "completions",
];

fn gameops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(args)
        .env_remove("GAMEOPS_CONFIG")
        .env_remove("GAMEOPS_CONFIG_YAML")
        .output()
        .expect("gameops starts")
}

fn help(sub: &str) -> String {
    let out = gameops(&[sub, "--help"]);
    assert!(out.status.success(), "{sub} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The long help's options, one block each (flag line and its text).
fn options(help: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(trimmed);
            b.push('\n');
        }
    }
    blocks
}

#[test]
fn each_subcommand_lists_only_the_flags_it_uses() {
    for sub in SUBCOMMANDS {
        let text = help(sub);
        let uses_config = ["serve", "plugin", "resolve", "run"].contains(sub);
        assert_eq!(
            text.contains("--config <FILE>"),
            uses_config,
            "{sub}:\n{text}"
        );
        assert_eq!(
            text.contains("--config-yaml"),
            uses_config,
            "{sub}:\n{text}"
        );
        let logs = ["serve", "plugin", "resolve", "run", "demo", "fleet"].contains(sub);
        assert_eq!(text.contains("--log-format"), logs, "{sub}:\n{text}");
        for block in options(&text) {
            assert!(
                block.matches("default:").count() <= 1,
                "{sub}: a default said twice:\n{block}"
            );
            assert!(
                !block.contains("later"),
                "{sub}: a promise, not a fact:\n{block}"
            );
        }
    }
}

#[test]
fn the_service_port_says_what_it_serves() {
    let text = help("serve");
    let listen = options(&text)
        .into_iter()
        .find(|b| b.starts_with("--listen "))
        .expect("--listen");
    for path in [
        "/api/v1/template.execute",
        "/v1/allocate",
        "/flux/v1/inputs",
        "/metrics",
        "/healthz",
    ] {
        assert!(listen.contains(path), "{listen}");
    }
}

#[test]
fn nothing_sent_to_a_pipe_carries_colour_codes() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["status", "--nope"],
        &["run", "nope"],
    ] {
        let out = gameops(args);
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !all.contains(&0x1b),
            "{args:?}: {}",
            String::from_utf8_lossy(&all)
        );
    }
}

#[test]
fn common_slips_get_a_sentence_that_says_what_to_do() {
    let token = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(token.path(), "t").expect("token");
    let out = gameops(&[
        "run",
        "seamless-release",
        "--plugin",
        "127.0.0.1:4355",
        "--plugin-token-file",
        &token.path().display().to_string(),
        "-p",
        "image=game:2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--plugin 127.0.0.1:4355 is not a URL")
            && err.contains("--plugin http://127.0.0.1:4355"),
        "{err}"
    );
    assert!(!err.contains("builder error"), "{err}");

    let empty = tempfile::tempdir().expect("dir");
    let out = gameops(&["lint", &empty.path().display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("holds no WorkflowTemplates") && err.contains("nothing to check"),
        "{err}"
    );

    // Outside a checkout: the built-in templates, said so; an unknown name
    // points at --templates.
    let out = Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["run", "no-such-template"])
        .current_dir(empty.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("Using the WorkflowTemplates built into gameops"),
        "{err}"
    );
    assert!(
        err.contains("it has: multi-region-release, promote, rollback, seamless-release")
            && err.contains("--templates DIR"),
        "{err}"
    );
}

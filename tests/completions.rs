//! `gameops completions bash|zsh|fish`: scripts the shells accept, which
//! complete gameops's subcommands and flags.

use std::process::Command;

fn completions(shell: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["completions", shell])
        .output()
        .expect("gameops runs")
}

/// What bash completes for the words `line` (the last one being completed),
/// with the script `gameops completions bash` prints loaded.
fn bash_completes(line: &[&str]) -> Vec<String> {
    let script = String::from_utf8(completions("bash").stdout).expect("UTF-8");
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let probe = format!(
        "{script}\nCOMP_WORDS=({words}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}\n_gameops gameops '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        line.len() - 1,
        line.join(" "),
        line[line.len() - 1],
        line[line.len() - 2],
    );
    let out = Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    let found = bash_completes(&["gameops", "com"]);
    assert_eq!(found, ["completions"], "{found:?}");
    let found = bash_completes(&["gameops", "fleet", "--no-"]);
    assert!(found.contains(&"--no-controller".to_owned()), "{found:?}");
}

#[test]
fn each_shell_gets_a_script_and_others_are_refused_naming_the_choices() {
    for (shell, marker) in [
        ("bash", "complete -F _gameops"),
        ("zsh", "#compdef gameops"),
        ("fish", "complete -c gameops"),
    ] {
        let out = completions(shell);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
    }
    // The same command twice prints the same script.
    assert_eq!(completions("zsh").stdout, completions("zsh").stdout);
    let out = completions("powershell");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("possible values: bash, zsh, fish"), "{err}");
    assert!(out.stdout.is_empty(), "nothing printed on a refusal");
}

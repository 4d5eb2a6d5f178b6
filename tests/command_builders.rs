//! Hostile names through every remote command builder: `Argv` (`new`, `arg`, `args`, `script`),
//! `shell_quote`, and the Compose builders (`up`, `down`, for Compose v1 and v2). sshd hands the command line to the remote
//! user's shell, so each built command line is given to a local POSIX shell behind
//! `printf '%s\0'`, and the arguments that come back must be exactly the vector that was built,
//! one for one: nothing split, joined, expanded, globbed or run.
//!
//! NUL cannot be in a process argument at all, so it is left out of the strings.

use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rcfleet::remote::{shell_quote, Argv, Compose, ComposeCli};

const HOSTILE: &[&str] = &[
    "",
    " ",
    "plain",
    "two words",
    "  leading and trailing  ",
    "it's",
    "'",
    "''",
    "'''",
    "\"double\"",
    "\"",
    "$HOME",
    "${PATH}",
    "$1 $@ $* $# $? $$ $! $0",
    "$(touch /tmp/rcfleet-pwned)",
    "`touch /tmp/rcfleet-pwned`",
    "{{ .Name }}",
    "{a,b}",
    "a; touch /tmp/rcfleet-pwned",
    "a && b || c",
    "a | cat",
    "a > /tmp/rcfleet-pwned",
    "< /etc/passwd",
    "a &",
    "line1\nline2",
    "\n",
    "\r\n",
    "tab\there",
    "\\",
    "back\\slash\\",
    "\\'",
    "*",
    "*?[a]",
    "~",
    "~root",
    "#comment",
    "a #comment",
    "-n",
    "-e",
    "--",
    "--rm",
    "!",
    "!!",
    "a=b",
    "A=b c",
    "%s%n",
    "\u{7}\u{1b}[31m",
    "\u{7f}",
    "ünïcødé ✓",
    "\u{202e}rtl",
    "/opt/rcfleet/chat",
    "/opt/rcfleet/chat/",
    "chat-app1-0",
];

/// The shells to check with: `sh` always; `bash` too when present (root's login shell on many
/// servers, and what sshd runs the command line with there).
fn shells() -> Vec<&'static str> {
    let mut shells = vec!["sh"];
    if Command::new("bash").arg("-c").arg("true").status().is_ok_and(|s| s.success()) {
        shells.push("bash");
    }
    shells
}

/// What a shell gives back when the command line is run behind `printf '%s\0'`: every word,
/// after the shell's own parsing, unchanged by printf.
fn words_back(shell: &str, command_line: &str) -> Vec<String> {
    let output = Command::new(shell)
        .arg("-c")
        .arg(format!("printf '%s\\0' {command_line}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent-home")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run the shell");
    assert!(
        output.status.success(),
        "{shell} failed on {command_line:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut words: Vec<String> = output
        .stdout
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).expect("utf-8 back"))
        .collect();
    assert_eq!(words.pop().as_deref(), Some(""), "output ends with NUL");
    words
}

fn assert_round_trip(argv: &Argv) {
    let command_line = argv.to_command_line();
    assert_eq!(argv.to_string(), command_line, "Display is the command line");
    for shell in shells() {
        assert_eq!(words_back(shell, &command_line), argv.as_slice(), "{shell}: {command_line:?}");
    }
}

/// Every builder, given `a`, `b`, `c` wherever it takes a caller's string.
fn built(a: &str, b: &str, c: &str) -> Vec<Argv> {
    let mut all = vec![
        Argv::new(a),
        Argv::new("docker").arg(a).arg(b).arg(c),
        Argv::new("rm").args(["-rf", "--", a, b]),
        Argv::new("docker").args(vec![a.to_string(), b.to_string(), c.to_string()]),
        Argv::script(a, &[b, c]),
        Argv::script(r#"test -d "$1" && cat -- "$2""#, &[a, b, c]),
    ];
    for cli in [ComposeCli::V1, ComposeCli::V2] {
        let compose = Compose::new(cli, a, b);
        for services in [&[][..], &[c][..], &[a, b, c][..]] {
            all.push(compose.up(services));
        }
        all.push(compose.down());
    }
    all
}

#[test]
fn hostile_names_through_every_builder_come_back_exactly() {
    let n = HOSTILE.len();
    // Every hostile string in every position, paired with its neighbours.
    for i in 0..n {
        let (a, b, c) = (HOSTILE[i], HOSTILE[(i + 1) % n], HOSTILE[(i + 7) % n]);
        for argv in built(a, b, c) {
            assert_round_trip(&argv);
        }
    }
    assert!(!std::path::Path::new("/tmp/rcfleet-pwned").exists(), "a hostile string ran a command");
}

/// The Compose builders put the caller's folder, project, file and services where Compose
/// expects them, each as one argument.
#[test]
fn compose_arguments_stay_whole() {
    for (i, dir) in HOSTILE.iter().enumerate() {
        let project = HOSTILE[(i + 3) % HOSTILE.len()];
        let service = HOSTILE[(i + 11) % HOSTILE.len()];
        for (cli, prefix) in [(ComposeCli::V2, &["docker", "compose"][..]), (ComposeCli::V1, &["docker-compose"][..])] {
            let compose = Compose::new(cli, dir, project);
            let path = format!("{}/compose.yml", dir.trim_end_matches('/'));
            let mut head: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
            head.extend(["--project-directory", dir, "-p", project, "-f", &path].map(str::to_string));
            let with = |tail: &[&str]| {
                let mut v = head.clone();
                v.extend(tail.iter().map(|s| s.to_string()));
                v
            };
            assert_eq!(compose.up(&[service]).as_slice(), with(&["up", "-d", "--remove-orphans", service]));
            assert_eq!(compose.down().as_slice(), with(&["down", "--remove-orphans"]));
            assert_round_trip(&compose.up(&[service]));
        }
    }
}

/// `Argv::script`: the script runs with the caller's strings as `$1`, `$2`, ... and never as
/// shell text.
#[test]
fn script_arguments_arrive_as_positional_parameters() {
    let script = r#"for a in "$@"; do printf '%s\0' "$a"; done"#;
    for shell in shells() {
        let argv = Argv::script(script, HOSTILE);
        let output = Command::new(shell).arg("-c").arg(argv.to_command_line()).output().expect("run the shell");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mut got: Vec<String> =
            output.stdout.split(|b| *b == 0).map(|w| String::from_utf8(w.to_vec()).unwrap()).collect();
        got.pop();
        assert_eq!(got, HOSTILE, "{shell}");
    }
    assert!(!std::path::Path::new("/tmp/rcfleet-pwned").exists());
}

/// `shell_quote` alone, on arbitrary strings (any Unicode but NUL): one word back, unchanged.
#[test]
fn shell_quote_round_trips_arbitrary_strings() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let word = prop_oneof![
        any::<String>(),
        "[$`{}\"'\\\\;|&<>()*?\\[\\]#!~%=\n\r\t a-z0-9.:/@-]{0,24}",
    ]
    .prop_map(|s| s.replace('\0', ""));
    runner
        .run(&proptest::collection::vec(word, 1..6), |words| {
            let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
            let back = words_back("sh", &quoted.join(" "));
            prop_assert_eq!(&back, &words);
            let argv = Argv::new(words[0].clone()).args(words[1..].iter().cloned());
            prop_assert_eq!(words_back("sh", &argv.to_command_line()), words);
            Ok(())
        })
        .unwrap();
}

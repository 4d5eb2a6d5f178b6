//! The stand-in mongosh in its two modes, against what the real mongosh 2.12.0 printed for the
//! same input (`npm install @mongosh/cli-repl@2.12.0`, `mongosh --nodb --quiet`, stdin a pipe;
//! the expected bytes below are its output). A script piped in without `--file`/`--eval` runs
//! the interactive REPL: a prompt before every output line, errors on stdout, exit 0. So if
//! rcfleet ever pipes a script into mongosh without `--file` again, its `RCFLEET ` lines start
//! with `> ` (or `rs0 [direct: primary] test> `) and the lab fails as a real server would.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the stand-in as `mongosh ARGS` with `input` on a piped stdin: (stdout, stderr, exit).
fn mongosh(args: &[&str], input: &str) -> (String, String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_standin"))
        .arg("mongosh")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the stand-in");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap(), out.status.code().unwrap_or(-1))
}

const RCFLEET_SCRIPT: &str = "var admin = 1;\nprint(\"RCFLEET \" + \"ok\");\n";
const THROWS: &str = "throw new Error(\"boom\");\nprint(\"after\");\n";

#[test]
fn piped_without_file_it_is_the_repl_with_a_prompt_before_each_output_and_exit_0() {
    let (out, err, code) = mongosh(&["--nodb", "--quiet"], RCFLEET_SCRIPT);
    assert_eq!(out, "> \n> RCFLEET ok\n\n> ");
    assert!(!out.lines().any(|l| l.starts_with("RCFLEET ")), "no output line may start with the mark");
    assert_eq!((err.as_str(), code), ("", 0));
}

#[test]
fn in_the_repl_an_uncaught_error_goes_to_stdout_and_evaluation_goes_on() {
    let (out, err, code) = mongosh(&["--nodb", "--quiet"], THROWS);
    assert_eq!(out, "> Uncaught \rError: boom\n> after\n\n> ");
    assert_eq!((err.as_str(), code), ("", 0));
}

#[test]
fn in_the_repl_open_statements_continue_on_the_next_line_and_quit_sets_the_exit_status() {
    let (out, _, code) = mongosh(&["--nodb", "--quiet"], "try {\n  throw new Error(\"x\");\n} catch (e) {\n  print(\"caught\");\n}\n");
    assert_eq!((out.as_str(), code), ("> ... ... ... ... caught\n\n> ", 0));
    let (out, _, code) = mongosh(&["--nodb", "--quiet"], "print(1); quit(2)\nprint(3)\n");
    assert_eq!((out.as_str(), code), ("> 1\n", 2));
}

#[test]
fn with_file_dev_stdin_it_is_script_mode_no_prompt() {
    let (out, err, code) = mongosh(&["--nodb", "--quiet", "--file", "/dev/stdin"], RCFLEET_SCRIPT);
    assert_eq!((out.as_str(), err.as_str(), code), ("RCFLEET ok\n", "", 0));
}

#[test]
fn in_script_mode_an_uncaught_error_goes_to_stderr_exit_1_and_stops() {
    let (out, err, code) = mongosh(&["--nodb", "--quiet", "--file", "/dev/stdin"], THROWS);
    assert_eq!((out.as_str(), err.as_str(), code), ("", "Error: boom\n", 1));
    // The same with --eval; what was printed before the error stays on stdout.
    let (out, err, code) = mongosh(&["--nodb", "--quiet", "--eval", "print(1); throw new Error(\"boom\")"], "");
    assert_eq!((out.as_str(), err.as_str(), code), ("1\n", "Error: boom\n", 1));
}

#[test]
fn script_mode_reports_a_server_error_as_name_and_message_only() {
    // mongosh's run.ts prints `${name}: ${message}`; the REPL's formatError adds the code
    // name. (Recorded from the real shell with an Error given that name, code and codeName;
    // the stand-in's subset has no property assignment, so an error-shaped object stands in.)
    let literal = "throw {name: \"MongoServerError\", message: \"m\", code: 13, codeName: \"Unauthorized\"};\n";
    let (_, err, code) = mongosh(&["--nodb", "--quiet", "--file", "/dev/stdin"], literal);
    assert_eq!((err.as_str(), code), ("MongoServerError: m\n", 1));
    let (out, _, code) = mongosh(&["--nodb", "--quiet"], literal);
    assert_eq!((out.as_str(), code), ("> Uncaught \rMongoServerError[Unauthorized]: m\n> ", 0));
}

//! The operator's tools around the inventory, run as a user would: `--version`, `init`,
//! `schema` (checked by a real JSON Schema validator), `completions` (loaded into a real bash)
//! and `man`. No host is contacted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn rcfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcfleet")).args(args).output().expect("rcfleet runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn version_names_the_default_of_every_component() {
    let output = rcfleet(&["--version"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.starts_with(&format!("rcfleet {}", env!("CARGO_PKG_VERSION"))), "{text}");
    for component in ["Rocket.Chat", "MongoDB", "Traefik", "NATS", "Prometheus", "Grafana"] {
        let line = text.lines().find(|line| line.trim_start().starts_with(component));
        let line = line.unwrap_or_else(|| panic!("{component} missing from:\n{text}"));
        assert!(line.contains(':'), "{component} has no image tag: {line}");
    }
}

// ---- schema ----------------------------------------------------------------------------------

/// TOML to JSON, for the validator (TOML's types map one to one for an inventory).
fn toml_to_json(item: &toml_edit::Item) -> Value {
    match item {
        toml_edit::Item::None => Value::Null,
        toml_edit::Item::Value(value) => value_to_json(value),
        toml_edit::Item::Table(table) => table_to_json(table.iter()),
        toml_edit::Item::ArrayOfTables(array) => {
            Value::Array(array.iter().map(|table| table_to_json(table.iter())).collect())
        }
    }
}

fn table_to_json<'a>(entries: impl Iterator<Item = (&'a str, &'a toml_edit::Item)>) -> Value {
    Value::Object(entries.map(|(key, item)| (key.to_string(), toml_to_json(item))).collect())
}

fn value_to_json(value: &toml_edit::Value) -> Value {
    use toml_edit::Value as V;
    match value {
        V::String(s) => Value::from(s.value().as_str()),
        V::Integer(i) => Value::from(*i.value()),
        V::Float(f) => Value::from(*f.value()),
        V::Boolean(b) => Value::from(*b.value()),
        V::Datetime(d) => Value::from(d.value().to_string()),
        V::Array(array) => Value::Array(array.iter().map(value_to_json).collect()),
        V::InlineTable(table) => {
            Value::Object(table.iter().map(|(key, value)| (key.to_string(), value_to_json(value))).collect())
        }
    }
}

fn inventory_json(text: &str) -> Value {
    toml_to_json(toml_edit::Document::parse(text).expect("valid TOML").as_item())
}

fn validator() -> jsonschema::Validator {
    let output = rcfleet(&["schema"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let schema: Value = serde_json::from_slice(&output.stdout).expect("the schema is JSON");
    jsonschema::draft7::new(&schema).expect("the schema is a valid draft-07 schema")
}

fn errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    validator.iter_errors(&inventory_json(text)).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

#[test]
fn schema_accepts_the_example_and_the_fixtures() {
    let validator = validator();
    for file in ["inventory.example.toml", "tests/fixtures/all-in-one.toml", "tests/fixtures/three-app-hosts.toml"] {
        let text = std::fs::read_to_string(repo_file(file)).unwrap();
        assert_eq!(errors(&validator, &text), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn schema_rejects_what_the_reader_rejects() {
    let validator = validator();
    let example = std::fs::read_to_string(repo_file("inventory.example.toml")).unwrap();
    let cases = [
        ("a misspelt key", "release = \"8.0.1\"", "relase = \"8.0.1\"", "/workspace"),
        ("a misspelt host key", "instances = 2\nport = 3000", "instance = 2\nport = 3000", "/hosts/2"),
        ("an unknown role", "roles = [\"traefik\"]", "roles = [\"treafik\"]", "/hosts/1/roles/0"),
        ("a port out of range", "port = 27017", "port = 70000", "/mongodb/port"),
        ("an app host without instances", "instances = 2\nport = 3000", "port = 3000", "/hosts/2"),
        ("a secret written in clear", "{ env = \"GRAFANA_ADMIN_PASSWORD\" }", "\"hunter2\"", "/monitoring/grafana_admin_password"),
    ];
    for (what, from, to, path) in cases {
        assert!(example.contains(from), "test bug: {from:?}");
        let text = example.replacen(from, to, 1);
        let found = errors(&validator, &text);
        assert!(found.iter().any(|e| e.starts_with(path)), "{what}: expected an error at {path}, got {found:?}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("inventory.toml");
        std::fs::write(&file, &text).unwrap();
        let plan = rcfleet(&["plan", "-i", file.to_str().unwrap()]);
        assert_eq!(plan.status.code(), Some(2), "{what}: the reader refuses it too");
    }
}

#[test]
fn schema_describes_every_key() {
    let output = rcfleet(&["schema"]);
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    fn walk(path: &str, node: &Value) {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (key, property) in properties {
                let here = format!("{path}.{key}");
                if path.ends_with("env") || path.ends_with("file") {
                    continue; // the two keys of a secret reference
                }
                assert!(property.get("description").is_some_and(Value::is_string), "{here} has no description");
                walk(&here, property);
                if let Some(items) = property.get("items") {
                    walk(&here, items);
                }
            }
        }
    }
    walk("", &schema);
}

// ---- init ------------------------------------------------------------------------------------

#[test]
fn init_with_flags_writes_an_inventory_that_plan_accepts_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    let path_text = path.to_str().unwrap();
    let flags = [
        "init", "-i", path_text, "--db", "10.0.0.10", "--lb", "10.0.0.20", "--app", "10.0.0.31:3", "--app", "10.0.0.32",
        "--domain", "chat.example.com", "--email", "ops@example.com",
    ];
    let output = rcfleet(&flags);
    assert!(output.status.success(), "{}", stderr(&output));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("# "), "the inventory is commented");
    assert_eq!(errors(&validator(), &written), Vec::<String>::new());

    let plan = rcfleet(&["plan", "-i", path_text, "--json"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["hosts"].as_array().unwrap().len(), 4);
    assert_eq!(plan["instances"].as_array().unwrap().len(), 5, "3 on app1, 2 (the default) on app2");
    assert_eq!(plan["root_url"], "https://chat.example.com");

    std::fs::write(&path, "# mine\n").unwrap();
    let again = rcfleet(&flags);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n", "an existing inventory is left alone");

    let mut forced = flags.to_vec();
    forced.push("--force");
    assert!(rcfleet(&forced).status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

#[test]
fn init_refuses_bad_flags_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    let output = rcfleet(&[
        "init", "-i", path.to_str().unwrap(), "--db", "10.0.0.10", "--lb", "10.0.0.20", "--app", "10.0.0.31",
        "--domain", "chat.example.com", "--release", "latest",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("workspace.release"), "{}", stderr(&output));
    assert!(!path.exists());

    let output = rcfleet(&["init", "-i", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "no flags and no terminal: the flags are asked for");
    assert!(stderr(&output).contains("--db is missing"), "{}", stderr(&output));
    assert!(!path.exists());
}

// ---- completions and manual ------------------------------------------------------------------

/// What bash offers after `rcfleet <words>` with the completion script loaded.
fn bash_completes(words: &str) -> Vec<String> {
    let script = stdout(&rcfleet(&["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rcfleet.bash");
    std::fs::write(&file, script).unwrap();
    let probe = format!(
        "source {file}\nCOMP_WORDS=(rcfleet {words})\nCOMP_CWORD=${{#COMP_WORDS[@]}}\nCOMP_WORDS+=('')\n\
         COMP_LINE=\"rcfleet {words} \"\nCOMP_POINT=${{#COMP_LINE}}\n_rcfleet rcfleet '' \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file = file.display()
    );
    let output = Command::new("bash").args(["--norc", "--noprofile", "-c", &probe]).output().expect("bash runs");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_flags() {
    let words = bash_completes("");
    for sub in ["init", "plan", "up", "upgrade", "status", "schema", "completions", "man"] {
        assert!(words.iter().any(|w| w == sub), "{sub} not offered: {words:?}");
    }
    let words = bash_completes("init");
    assert!(words.iter().any(|w| w == "--force"), "{words:?}");
    let words = bash_completes("completions");
    assert!(words.iter().any(|w| w == "zsh"), "{words:?}");
}

#[test]
fn zsh_and_fish_completions_and_the_manual_are_generated() {
    assert!(stdout(&rcfleet(&["completions", "zsh"])).starts_with("#compdef rcfleet"));
    assert!(stdout(&rcfleet(&["completions", "fish"])).contains("complete -c rcfleet"));
    let man = stdout(&rcfleet(&["man"]));
    assert!(man.contains(".TH rcfleet 1"), "{man}");
    assert!(man.contains(".TH rcfleet-upgrade 1"), "a page per subcommand");
}

// ---- SSH like ssh ----------------------------------------------------------------------------

#[test]
fn plan_shows_what_ssh_config_decides_and_where_each_setting_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        "Host app-alias\n  HostName 10.0.0.31\n  User deploy\n  Port 2222\n  IdentityFile /keys/app\n  ProxyJump ops@bastion:2200\n\
         \nHost *\n  UserKnownHostsFile /keys/known_hosts\n",
    )
    .unwrap();
    let path = dir.path().join("inventory.toml");
    let init = rcfleet(&[
        "init", "-i", path.to_str().unwrap(), "--db", "10.0.0.10", "--lb", "10.0.0.20", "--app", "app-alias:1",
        "--domain", "chat.example.com",
    ]);
    assert!(init.status.success(), "{}", stderr(&init));
    // The db host states its user and port; the others leave them to the ssh config.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "address = \"10.0.0.10\"\n",
        "address = \"10.0.0.10\"\nssh = { user = \"admin\", port = 2200 }\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .args(["plan", "--json", "-i", path.to_str().unwrap()])
        .env("RCFLEET_SSH_CONFIG", &config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ssh = |host: usize, key: &str| plan["hosts"][host]["ssh"][key].clone();
    let pair = |value: Value, from: &str| serde_json::json!({ "value": value, "from": from });
    assert_eq!(ssh(0, "user"), pair("admin".into(), "inventory"));
    assert_eq!(ssh(0, "port"), pair(2200.into(), "inventory"));
    assert_eq!(ssh(2, "user"), pair("deploy".into(), "ssh_config"));
    assert_eq!(ssh(2, "port"), pair(2222.into(), "ssh_config"));
    assert_eq!(ssh(2, "address"), pair("10.0.0.31".into(), "ssh_config"));
    assert_eq!(ssh(2, "identity_files"), pair(serde_json::json!(["/keys/app"]), "ssh_config"));
    assert_eq!(ssh(2, "jump"), pair("ops@bastion:2200".into(), "ssh_config"));
    assert_eq!(ssh(1, "port"), pair(22.into(), "default"));
    assert_eq!(ssh(1, "jump"), pair(Value::Null, "default"));
    assert_eq!(ssh(1, "known_hosts"), pair("/keys/known_hosts".into(), "ssh_config"));

    let text_output = Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .args(["plan", "-i", path.to_str().unwrap()])
        .env("RCFLEET_SSH_CONFIG", &config)
        .output()
        .unwrap();
    let text = stdout(&text_output);
    assert!(text.contains("deploy@10.0.0.31:2222"), "{text}");
    assert!(text.contains("app1: user deploy (ssh_config), port 2222 (ssh_config)"), "{text}");
}

//! Fuzzing the inventory loader (issue 8, "Bad input"): arbitrary text and structure-aware
//! mutations of the example inventory and the fixtures go through `inventory::parse`, and every
//! fleet that parses goes through `render::render` with redacted secrets. Whatever comes in,
//! nothing panics: bad input is an `Err`, never a crash. Bounded (a few thousand cases, seeded
//! deterministically by proptest's default config) so it runs in CI with `cargo test`.
//!
//! More cases: `PROPTEST_CASES=100000 cargo test --release --test fuzz_inventory`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// Strings a shell, YAML, Compose, Traefik, Handlebars or TOML would misread if pasted raw.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "$HOME",
    "${PATH}",
    "$$",
    "$",
    "$(id)",
    "`id`",
    "{{ env \"X\" }}",
    "{{{triple}}}",
    "{{",
    "}}",
    "a; rm -rf /",
    "a && b || c",
    "a | cat",
    "a > /tmp/x",
    "line1\nline2",
    "\r\n",
    "tab\there",
    "'single'",
    "\"double\"",
    "it's",
    "back\\slash",
    "\\n",
    "# hash",
    "key: value",
    "- dash",
    "&anchor *alias !tag",
    "yes",
    "null",
    "~",
    "0755",
    "*?[a]",
    "-n",
    "--rm",
    "../../etc/passwd",
    "/",
    "ünïcødé ✓",
    "\u{0}",
    "\u{7f}",
    "\u{202e}rtl",
    "chat.example.com",
    "10.0.0.10",
    "::1",
    "rocketchat",
    "database",
    "traefik",
    "monitoring",
    "none",
    "letsencrypt",
    "files",
    "8.0.1",
    "1.2.3-rc.4",
    "99999999999999999999",
    "-1",
    "1e400",
    "https://chat.example.com",
    "http://[::1]:80/",
];

/// The keys the loader knows, so mutations land on names it reads (and near-misses of them).
const KEYS: &[&str] = &[
    "workspace", "name", "root_url", "release", "license", "deploy_dir", "ssh", "user", "port",
    "identity_file", "known_hosts", "accept_new_host_keys", "connect_timeout_seconds", "command_timeout_seconds", "jump",
    "hosts", "address", "private_address", "roles", "instances", "metrics_port", "retired",
    "images", "rocketchat", "mongodb", "nats", "prometheus", "grafana", "traefik", "mongodb_tools", "repository",
    "tag", "insecure", "domain", "http_port", "https_port", "api_port", "tls", "mode", "email", "cert", "key",
    "version", "replica_set", "database", "monitor_port", "monitoring", "prometheus_port",
    "grafana_port", "retention", "grafana_admin_password", "upgrade", "batch_size",
    "drain_seconds", "readiness_timeout_seconds", "env", "file", "ROOT_URL", "MONGO_URL", "PORT",
    "OVERWRITE_SETTING_Show_Setup_Wizard", "microservices", "enabled", "services", "replicas", "ddp_streamers",
    "concurrent_users", "placement", "presence", "ddp-streamer", "stream-hub", "unknown", "Name", "name ", "",
];

fn seeds() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("inventory.example.toml")];
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures"))
        .expect("tests/fixtures")
        .map(|entry| entry.expect("fixture").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    fixtures.sort();
    paths.extend(fixtures);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text)
        })
        .collect()
}

/// The property: parse never panics; a fleet that parses renders (or is refused) without panic.
fn check(text: &str, path: &Path) {
    if let Ok(fleet) = rcfleet::inventory::parse(text, path) {
        let _ = rcfleet::render::render(&fleet, &rcfleet::render::Redacted);
    }
}

fn config(cases: u32) -> Config {
    // PROPTEST_CASES in the environment still wins (Config::default reads it); the cases here
    // are the CI default. No persistence files: failures print the minimal input instead.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(HOSTILE).prop_map(str::to_string),
        2 => "[ -~]{0,24}",
        1 => "[$`{}\"'\\\\;|&<>()*?\\[\\]#\n\r\t a-z0-9.:/@=-]{0,32}",
        1 => any::<String>(),
        // Near-valid: a hostile tail on a value the loader would accept.
        2 => (proptest::sample::select(HOSTILE), proptest::sample::select(HOSTILE))
            .prop_map(|(a, b)| format!("{a}{b}")),
    ]
}

/// A TOML value of any type, hostile where it is a string.
fn toml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        6 => hostile_string().prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        1 => (-2i64..70000).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let mut array = Array::new();
                for item in items {
                    array.push_formatted(item);
                }
                Value::Array(array)
            }),
            proptest::collection::vec((key_name(), inner), 0..3).prop_map(|pairs| {
                let mut table = InlineTable::new();
                for (key, value) in pairs {
                    table.insert(&key, value);
                }
                Value::InlineTable(table)
            }),
        ]
    })
}

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => hostile_string(),
    ]
}

/// One edit of a parsed document, applied at the `index`-th place (modulo the places there are).
#[derive(Debug, Clone)]
enum Mutation {
    /// Replaces a value (any type by any type).
    SetValue { index: usize, value: Value },
    /// Removes a key.
    Remove { index: usize },
    /// Renames a key (the value stays).
    Rename { index: usize, key: String },
    /// Adds a key to a table.
    Insert { index: usize, key: String, value: Value },
    /// Turns a table into a plain value or a value into a table.
    Retype { index: usize, value: Value },
    /// Duplicates or drops an entry of the `[[hosts]]` array.
    Hosts { index: usize, duplicate: bool },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<usize>();
    prop_oneof![
        6 => (index, toml_value()).prop_map(|(index, value)| Mutation::SetValue { index, value }),
        2 => index.prop_map(|index| Mutation::Remove { index }),
        2 => (index, key_name()).prop_map(|(index, key)| Mutation::Rename { index, key }),
        3 => (index, key_name(), toml_value()).prop_map(|(index, key, value)| Mutation::Insert { index, key, value }),
        1 => (index, toml_value()).prop_map(|(index, value)| Mutation::Retype { index, value }),
        1 => (index, any::<bool>()).prop_map(|(index, duplicate)| Mutation::Hosts { index, duplicate }),
    ]
}

/// A path to an item: keys, and for arrays of tables an index.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every item's path, depth first (tables, arrays of tables, inline tables and arrays).
fn places(table: &Table) -> Vec<Vec<Step>> {
    fn walk_item(item: &Item, here: Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match item {
            Item::Table(table) => walk_table(table.iter().map(|(k, v)| (k.to_string(), v)), here, out),
            Item::ArrayOfTables(array) => {
                for (i, table) in array.iter().enumerate() {
                    let mut next = here.clone();
                    next.push(Step::Index(i));
                    out.push(next.clone());
                    walk_table(table.iter().map(|(k, v)| (k.to_string(), v)), next, out);
                }
            }
            Item::Value(Value::InlineTable(table)) => {
                for (key, value) in table.iter() {
                    let mut next = here.clone();
                    next.push(Step::Key(key.to_string()));
                    out.push(next.clone());
                    let _ = value;
                }
            }
            _ => {}
        }
    }
    fn walk_table<'a>(entries: impl Iterator<Item = (String, &'a Item)>, here: Vec<Step>, out: &mut Vec<Vec<Step>>) {
        for (key, item) in entries {
            let mut next = here.clone();
            next.push(Step::Key(key));
            walk_item(item, next, out);
        }
    }
    let mut out = Vec::new();
    walk_table(table.iter().map(|(k, v)| (k.to_string(), v)), Vec::new(), &mut out);
    out
}

/// The table-like at the end of `path` (a table, an inline table or one `[[hosts]]` entry).
fn table_at<'a>(root: &'a mut Table, path: &[Step]) -> Option<&'a mut dyn TableLike> {
    let mut current: &mut dyn TableLike = root;
    let mut i = 0;
    while i < path.len() {
        let Step::Key(key) = &path[i] else { return None };
        let item = current.get_mut(key)?;
        match (item, path.get(i + 1)) {
            (Item::ArrayOfTables(array), Some(Step::Index(j))) => {
                current = array.get_mut(*j)?;
                i += 2;
            }
            (Item::Table(table), _) => {
                current = table;
                i += 1;
            }
            (Item::Value(Value::InlineTable(table)), _) => {
                current = table;
                i += 1;
            }
            _ => return None,
        }
    }
    Some(current)
}

/// The table that holds the last step of `path`, with that key.
fn parent_table_mut<'a>(root: &'a mut Table, path: &[Step]) -> Option<(&'a mut dyn TableLike, String)> {
    let (Step::Key(key), parent) = path.split_last()? else { return None };
    Some((table_at(root, parent)?, key.clone()))
}

fn apply(doc: &mut DocumentMut, mutation: &Mutation) {
    let all = places(doc.as_table());
    if all.is_empty() {
        return;
    }
    let pick = |index: usize| all[index % all.len()].clone();
    let root = doc.as_table_mut();
    match mutation {
        Mutation::SetValue { index, value } | Mutation::Retype { index, value } => {
            let path = pick(*index);
            if let Some((table, key)) = parent_table_mut(root, &path) {
                if matches!(mutation, Mutation::Retype { .. }) || table.get(&key).is_some_and(|item| item.is_value()) {
                    table.insert(&key, Item::Value(value.clone()));
                }
            }
        }
        Mutation::Remove { index } => {
            let path = pick(*index);
            if let Some((table, key)) = parent_table_mut(root, &path) {
                table.remove(&key);
            }
        }
        Mutation::Rename { index, key: new } => {
            let path = pick(*index);
            if let Some((table, key)) = parent_table_mut(root, &path) {
                if let Some(item) = table.remove(&key) {
                    table.insert(new, item);
                }
            }
        }
        Mutation::Insert { index, key, value } => {
            let path = pick(*index);
            match table_at(root, &path) {
                Some(table) => {
                    table.insert(key, Item::Value(value.clone()));
                }
                None => {
                    doc.as_table_mut().insert(key, Item::Value(value.clone()));
                }
            }
        }
        Mutation::Hosts { index, duplicate } => {
            if let Some(Item::ArrayOfTables(hosts)) = root.get_mut("hosts") {
                if hosts.is_empty() {
                    return;
                }
                let i = index % hosts.len();
                if *duplicate {
                    let copy = hosts.get(i).cloned().expect("host");
                    hosts.push(copy);
                } else {
                    hosts.remove(i);
                }
            }
        }
    }
}

/// Byte-level edits of the text itself: what a careless hand or a broken merge leaves.
#[derive(Debug, Clone)]
enum TextEdit {
    InsertAt { at: usize, text: String },
    DeleteRange { at: usize, len: usize },
    DuplicateLine { at: usize },
    Truncate { at: usize },
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    let fragment = prop_oneof![
        3 => hostile_string(),
        2 => proptest::sample::select(&[
            "\n[[hosts]]\n", "\n[workspace]\n", "=", "\"", "'''", "\"\"\"", "[", "]", "{", "}", ",",
            "\n", "#", "\\", "= {", "= [", "\nname = \"x\"\n", "\ninstances = 0\n", "\nretired = [0, 0]\n",
            "\nroles = [\"rocketchat\", \"rocketchat\"]\n", "\nport = 70000\n", "\\u0000", "\\uD800",
        ][..]).prop_map(str::to_string),
    ];
    prop_oneof![
        3 => (any::<usize>(), fragment).prop_map(|(at, text)| TextEdit::InsertAt { at, text }),
        2 => (any::<usize>(), 1usize..40).prop_map(|(at, len)| TextEdit::DeleteRange { at, len }),
        1 => any::<usize>().prop_map(|at| TextEdit::DuplicateLine { at }),
        1 => any::<usize>().prop_map(|at| TextEdit::Truncate { at }),
    ]
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn edit_text(text: &mut String, edit: &TextEdit) {
    if text.is_empty() {
        if let TextEdit::InsertAt { text: t, .. } = edit {
            text.push_str(t);
        }
        return;
    }
    match edit {
        TextEdit::InsertAt { at, text: fragment } => {
            let at = floor_boundary(text, at % (text.len() + 1));
            text.insert_str(at, fragment);
        }
        TextEdit::DeleteRange { at, len } => {
            let start = floor_boundary(text, at % text.len());
            let end = floor_boundary(text, start + len);
            text.replace_range(start..end, "");
        }
        TextEdit::DuplicateLine { at } => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let i = at % lines.len();
            let mut out = String::with_capacity(text.len() + lines[i].len());
            for (j, line) in lines.iter().enumerate() {
                out.push_str(line);
                if j == i {
                    out.push_str(line);
                }
            }
            *text = out;
        }
        TextEdit::Truncate { at } => {
            let at = floor_boundary(text, at % text.len());
            text.truncate(at);
        }
    }
}

/// Arbitrary text, and TOML-looking text made from the loader's own keys and hostile values.
#[test]
fn arbitrary_text_never_panics() {
    let mut runner = TestRunner::new(config(1500));
    let toml_ish = proptest::collection::vec(
        prop_oneof![
            (key_name(), toml_value()).prop_map(|(k, v)| format!("{} = {}\n", toml_edit::Key::new(k).display_repr(), v)),
            key_name().prop_map(|k| format!("[{}]\n", toml_edit::Key::new(k).display_repr())),
            Just("[[hosts]]\n".to_string()),
        ],
        0..24,
    )
    .prop_map(|lines| lines.concat());
    let strategy = prop_oneof![1 => any::<String>(), 1 => "[ -~\n\t]{0,200}", 3 => toml_ish];
    runner
        .run(&strategy, |text| {
            check(&text, Path::new("fuzz.toml"));
            Ok(())
        })
        .unwrap();
}

/// The example and every fixture, each with 1 to 3 structural edits (keys, values, types,
/// hosts) and, one time in three, 1 or 2 text edits.
#[test]
fn mutated_inventories_never_panic() {
    let seeds = seeds();
    let mut runner = TestRunner::new(config(2000));
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec(mutation(), 1..4),
        prop_oneof![2 => Just(Vec::new()), 1 => proptest::collection::vec(text_edit(), 1..3)],
    );
    let parsed = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |(seed, mutations, edits)| {
            let (path, text) = &seeds[seed];
            let mut doc: DocumentMut = text.parse().expect("seed parses as TOML");
            for mutation in &mutations {
                apply(&mut doc, mutation);
            }
            let mut text = doc.to_string();
            // Structural edits alone must still be valid TOML (toml_edit writes it).
            for edit in &edits {
                edit_text(&mut text, edit);
            }
            if rcfleet::inventory::parse(&text, path).is_ok() {
                parsed.set(parsed.get() + 1);
            }
            check(&text, path);
            Ok(())
        })
        .unwrap();
    // Not a property, a sanity check that the mutations are not all rejected up front: some
    // mutated inventories must still parse and reach the renderer.
    let parsed = parsed.get();
    eprintln!("mutated inventories that parsed and were rendered: {parsed}");
    assert!(parsed > 0, "no mutated inventory parsed; the mutator is too destructive to reach render");
}

/// Hostile strings in every string value of the seeds, one value at a time: many of these
/// still parse (a hostile release, name or env value is refused, an address may not be), so
/// this is what reaches the renderer most.
#[test]
fn every_string_value_replaced_by_hostile_strings() {
    let mut parsed = 0;
    for (path, text) in seeds() {
        let doc: DocumentMut = text.parse().expect("seed parses");
        let count = places(doc.as_table()).len();
        for index in 0..count {
            // Every third hostile string per place, rotating, keeps this to a few seconds.
            for hostile in HOSTILE.iter().skip(index % 3).step_by(3) {
                let mut doc = doc.clone();
                apply(&mut doc, &Mutation::SetValue { index, value: Value::from(*hostile) });
                let text = doc.to_string();
                parsed += usize::from(rcfleet::inventory::parse(&text, &path).is_ok());
                check(&text, &path);
            }
        }
    }
    eprintln!("inventories with one hostile value that parsed and were rendered: {parsed}");
    assert!(parsed > 0);
}

/// The seeds themselves parse and render: the fuzzer starts from valid input.
#[test]
fn seeds_parse_and_render() {
    for (path, text) in seeds() {
        let fleet = rcfleet::inventory::parse(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rcfleet::render::render(&fleet, &rcfleet::render::Redacted).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

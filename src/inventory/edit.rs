//! Format-preserving edits of the inventory file (`toml_edit::DocumentMut`): the commands that
//! change the fleet (`upgrade`, `add-instance`, `remove-instance`) rewrite only the keys they
//! change; comments, blank lines, key order and quoting of everything else stay as written.
//!
//! Each edit is a pure function from text to text, so a command can validate the edited
//! inventory (`inventory::parse`) before touching any host, and write it (`write`) only once
//! the hosts are changed.

use std::io::Write;
use std::path::Path;

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use crate::error::{Error, Result};
use crate::fleet::Release;

/// The most instances one host runs (as `instances` in the inventory allows).
pub const MAX_INSTANCES: u32 = 100;

/// Rewrites `workspace.release` of the inventory at `path` to `release` (and, when the
/// operator overrode the MongoDB guard, records `mongodb.allow_unsupported = true`), keeping
/// comments and formatting. The edited text is validated before the file is replaced
/// (atomically).
pub fn set_release(path: &Path, release: &Release, allow_unsupported_mongodb: bool) -> Result<()> {
    let text = read(path)?;
    let mut edited = with_release(&text, release)?;
    if allow_unsupported_mongodb {
        edited = with_mongodb_allow_unsupported(&edited)?;
    }
    super::parse(&edited, path)?;
    write(path, &edited)
}

/// Rewrites `mongodb.version` of the inventory at `path` (and, when the operator overrode the
/// compatibility guard, records `mongodb.allow_unsupported = true`), keeping comments and
/// formatting; validated before the file is replaced (atomically).
pub fn set_mongodb_version(path: &Path, version: &str, allow_unsupported_mongodb: bool) -> Result<()> {
    let text = read(path)?;
    let mut edited = with_mongodb_version(&text, version)?;
    if allow_unsupported_mongodb {
        edited = with_mongodb_allow_unsupported(&edited)?;
    }
    super::parse(&edited, path)?;
    write(path, &edited)
}

/// `text` with `mongodb.version` set to `version` (the `[mongodb]` table made if missing).
pub fn with_mongodb_version(text: &str, version: &str) -> Result<String> {
    with_mongodb_key(text, "version", Value::from(version))
}

/// `text` with `mongodb.allow_unsupported = true` (the `[mongodb]` table made if missing).
pub fn with_mongodb_allow_unsupported(text: &str) -> Result<String> {
    with_mongodb_key(text, "allow_unsupported", Value::from(true))
}

/// `text` with `mongodb.<key>` set to `value`: replaced in place, or added to `[mongodb]`
/// (made if missing).
fn with_mongodb_key(text: &str, key: &str, value: Value) -> Result<String> {
    let mut document = document(text)?;
    let mongodb = document.entry("mongodb").or_insert_with(|| Item::Table(Table::new()));
    let table = mongodb.as_table_like_mut().ok_or_else(|| Error::bad_input("mongodb in the inventory is not a table"))?;
    match table.get_mut(key) {
        Some(item) => replace_value(item, value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
    Ok(document.to_string())
}

/// `text` with `workspace.release` set to `release`.
pub fn with_release(text: &str, release: &Release) -> Result<String> {
    let mut document = document(text)?;
    let workspace = document
        .get_mut("workspace")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| Error::bad_input("the inventory has no [workspace] table"))?;
    let item = workspace
        .get_mut("release")
        .ok_or_else(|| Error::bad_input("the inventory has no workspace.release"))?;
    replace_value(item, Value::from(release.to_string()));
    Ok(document.to_string())
}

/// `text` with `count` more instances on the existing host `host`: retired indexes are
/// taken first (lowest first), then `instances` grows. Returns the text and the new indexes.
pub fn add_instances(text: &str, host: &str, count: u32) -> Result<(String, Vec<u32>)> {
    // A host runs at most 100 instances: checked before the loop below, which would
    // otherwise allocate `count` indexes first.
    if !(1..=MAX_INSTANCES).contains(&count) {
        return Err(Error::bad_input(format!("--count {count}: give 1 to {MAX_INSTANCES} (a host runs at most {MAX_INSTANCES} instances)")));
    }
    let mut document = document(text)?;
    let table = host_table(&mut document, host)?;
    if !has_role(table, "rocketchat") {
        return Err(Error::bad_input(format!(
            "host {host:?} has no \"rocketchat\" role, so it runs no instances; give another host with --host, \
             or add the role to it in the inventory and run `rcfleet up`"
        )));
    }
    let instances = integer(table, "instances").unwrap_or(0) as u32;
    let mut retired = retired(table);
    let mut added = Vec::new();
    let mut next = instances;
    for _ in 0..count {
        if retired.is_empty() {
            added.push(next);
            next += 1;
        } else {
            added.push(retired.remove(0));
        }
    }
    set_instances(table, next, &retired);
    Ok((document.to_string(), added))
}

/// A host to add to the inventory, running only Rocket.Chat instances.
#[derive(Debug, Clone)]
pub struct NewHost {
    pub name: String,
    pub address: String,
    pub private_address: Option<String>,
    pub ssh_user: Option<String>,
    pub instances: u32,
}

/// `text` with a new `[[hosts]]` block after the last one, written like the other app hosts:
/// `name`, `address`, `private_address`, `roles = ["rocketchat"]`, `instances`, and `port` and
/// `metrics_port` as the last host with the rocketchat role has them.
pub fn add_host(text: &str, new: &NewHost) -> Result<String> {
    let mut document = document(text)?;
    let existing = hosts(&mut document)?;
    if existing.iter().any(|t| t.get("name").and_then(Item::as_str) == Some(new.name.as_str())) {
        return Err(Error::bad_input(format!(
            "host {:?} is already in the inventory; leave out --address to add instances to it",
            new.name
        )));
    }
    let model = existing.iter().filter(|t| has_role(t, "rocketchat")).last().cloned();
    let last = existing.iter().filter_map(Table::position).max();
    let mut table = Table::new();
    table.insert("name", Item::Value(Value::from(new.name.as_str())));
    table.insert("address", Item::Value(Value::from(new.address.as_str())));
    if let Some(private) = &new.private_address {
        table.insert("private_address", Item::Value(Value::from(private.as_str())));
    }
    let mut roles = Array::new();
    roles.push("rocketchat");
    table.insert("roles", Item::Value(Value::Array(roles)));
    table.insert("instances", Item::Value(Value::from(i64::from(new.instances))));
    for key in ["port", "metrics_port"] {
        if let Some(value) = model.as_ref().and_then(|m| m.get(key)).and_then(Item::as_value) {
            let mut value = value.clone();
            value.decor_mut().clear();
            table.insert(key, Item::Value(value));
        }
    }
    if let Some(user) = &new.ssh_user {
        let mut ssh = InlineTable::new();
        ssh.insert("user", Value::from(user.as_str()));
        table.insert("ssh", Item::Value(Value::InlineTable(ssh)));
    }
    // A blank line before the header, as between the other blocks; placed right after the
    // last host, before whatever section followed it.
    table.decor_mut().set_prefix("\n");
    if let Some(last) = last {
        shift_positions(document.as_table_mut(), last);
        table.set_position(last + 1);
    }
    hosts(&mut document)?.push(table);
    Ok(document.to_string())
}

/// `text` without the instance `index` of `host`. Trailing indexes that no longer run are
/// dropped (`instances` shrinks); others are listed in `retired`, so the remaining instances
/// keep their names and ports. A host left without instances loses the `rocketchat` role
/// (and its block, when that was its only role).
pub fn remove_instance(text: &str, host: &str, index: u32) -> Result<String> {
    let mut document = document(text)?;
    let table = host_table(&mut document, host)?;
    let mut instances = integer(table, "instances").unwrap_or(0) as u32;
    let mut retired = retired(table);
    if index >= instances || retired.contains(&index) {
        return Err(Error::bad_input(format!("{host}-{index} is not an instance of host {host:?}")));
    }
    retired.push(index);
    retired.sort_unstable();
    while instances > 0 && retired.last() == Some(&(instances - 1)) {
        retired.pop();
        instances -= 1;
    }
    if instances > 0 {
        set_instances(table, instances, &retired);
        return Ok(document.to_string());
    }
    let only_role = table.get("roles").and_then(Item::as_array).is_some_and(|roles| roles.len() == 1);
    if only_role {
        hosts(&mut document)?.retain(|t| t.get("name").and_then(Item::as_str) != Some(host));
    } else {
        if let Some(roles) = table.get_mut("roles").and_then(Item::as_array_mut) {
            roles.retain(|role| role.as_str() != Some("rocketchat"));
        }
        for key in ["instances", "port", "metrics_port", "retired"] {
            table.remove(key);
        }
    }
    Ok(document.to_string())
}

/// `text` with `count` containers of the microservice `service`: `ddp_streamers` for
/// ddp-streamer (a `concurrent_users` sizing gives way to the number), else
/// `[microservices.replicas]`; with `placement`, `[microservices.placement]` of the service set
/// to it (one host per replica, in order).
pub fn set_service_replicas(text: &str, service: &str, count: u32, placement: Option<&[String]>) -> Result<String> {
    let mut document = document(text)?;
    let microservices = document
        .get_mut("microservices")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| Error::bad_input("the inventory has no [microservices] table; add one with enabled = true and run `rcfleet up`"))?;
    let count = Value::from(i64::from(count));
    if service == "ddp-streamer" {
        microservices.remove("concurrent_users");
        set_or_add(microservices, "ddp_streamers", count);
    } else {
        set_or_add(sub_table(microservices, "replicas")?, service, count);
    }
    if let Some(hosts) = placement {
        let list: Array = hosts.iter().map(String::as_str).collect();
        set_or_add(sub_table(microservices, "placement")?, service, Value::Array(list));
    }
    Ok(document.to_string())
}

/// `table.<key>`, a table made (as `[parent.key]`) when missing.
fn sub_table<'t>(table: &'t mut dyn toml_edit::TableLike, key: &str) -> Result<&'t mut dyn toml_edit::TableLike> {
    table
        .entry(key)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| Error::bad_input(format!("microservices.{key} in the inventory is not a table")))
}

/// `table.<key> = value`, replaced in place (keeping its comment) or added.
fn set_or_add(table: &mut dyn toml_edit::TableLike, key: &str, value: Value) {
    match table.get_mut(key) {
        Some(item) => replace_value(item, value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// Reads the inventory file, with the usual message when it cannot be read.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| {
        Error::bad_input(format!(
            "{}: cannot read the inventory: {err}; pass the right file with -i/--inventory",
            path.display()
        ))
    })
}

/// Replaces the file at `path` with `text` atomically (a temporary file in the same folder,
/// renamed over it), keeping the file's permissions. A symlinked inventory (e.g. into a
/// checkout of the operator's configuration) is written through: the file it points to gets
/// the new text and the link stays, instead of the link being replaced by a copy.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let failed = |err: std::io::Error| Error::failed(format!("{}: cannot write the inventory: {err}", path.display()));
    let path = &std::fs::canonicalize(path).map_err(failed)?;
    let folder = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (temporary, mut file) = temporary_file(folder, &name).map_err(failed)?;
    let result = (|| {
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(metadata) = std::fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        std::fs::rename(&temporary, path)?;
        // The rename is durable only once the folder's entry is on disk.
        std::fs::File::open(folder)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(failed)
}

/// A new file `.NAME.rcfleet-PID-N` in `folder`, mode 0600, never an existing file or a
/// symlink someone planted (`create_new` is O_EXCL, which does not follow a final symlink).
fn temporary_file(folder: &Path, name: &str) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    for attempt in 0..100u32 {
        let temporary = folder.join(format!(".{name}.rcfleet-{}-{:x}", std::process::id(), nanos.wrapping_add(attempt)));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary file name next to the inventory"))
}

fn document(text: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|err| Error::bad_input(format!("invalid TOML: {}", err.message().trim_end())))
}

fn hosts(document: &mut DocumentMut) -> Result<&mut ArrayOfTables> {
    document
        .get_mut("hosts")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| Error::bad_input("the inventory has no [[hosts]] tables"))
}

fn host_table<'d>(document: &'d mut DocumentMut, host: &str) -> Result<&'d mut Table> {
    let hosts = hosts(document)?;
    let names: Vec<String> = hosts.iter().filter_map(|t| t.get("name").and_then(Item::as_str).map(str::to_string)).collect();
    hosts.iter_mut().find(|t| t.get("name").and_then(Item::as_str) == Some(host)).ok_or_else(|| {
        Error::bad_input(format!("no host {host:?} in the inventory; its hosts are {}", names.join(", ")))
    })
}

fn has_role(table: &Table, role: &str) -> bool {
    table.get("roles").and_then(Item::as_array).is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some(role)))
}

fn integer(table: &Table, key: &str) -> Option<i64> {
    table.get(key).and_then(Item::as_integer)
}

fn retired(table: &Table) -> Vec<u32> {
    let mut retired: Vec<u32> = table
        .get("retired")
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(Value::as_integer).map(|i| i as u32).collect())
        .unwrap_or_default();
    retired.sort_unstable();
    retired
}

/// Sets `instances` (keeping its comment) and `retired` (removed when empty).
fn set_instances(table: &mut Table, instances: u32, retired: &[u32]) {
    match table.get_mut("instances") {
        Some(item) => replace_value(item, Value::from(i64::from(instances))),
        None => {
            table.insert("instances", Item::Value(Value::from(i64::from(instances))));
        }
    }
    if retired.is_empty() {
        table.remove("retired");
        return;
    }
    let array: Array = retired.iter().map(|&i| i64::from(i)).collect();
    match table.get_mut("retired") {
        Some(item) => replace_value(item, Value::Array(array)),
        None => {
            table.insert("retired", Item::Value(Value::Array(array)));
            // Beside `instances`, where a reader looks for the host's instances.
            let order: Vec<String> = table.iter().map(|(key, _)| key.to_string()).collect();
            let rank = |key: &str| {
                let at = |name: &str| order.iter().position(|k| k == name).unwrap_or(order.len()) * 2;
                if key == "retired" { at("instances") + 1 } else { at(key) }
            };
            table.sort_values_by(|a, _, b, _| rank(a.get()).cmp(&rank(b.get())));
        }
    }
}

/// Moves every table placed after `after` one place further, to make room for a new one.
fn shift_positions(table: &mut Table, after: isize) {
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(sub) => {
                if sub.position().is_some_and(|p| p > after) {
                    sub.set_position(sub.position().unwrap_or_default() + 1);
                }
                shift_positions(sub, after);
            }
            Item::ArrayOfTables(array) => {
                for sub in array.iter_mut() {
                    if sub.position().is_some_and(|p| p > after) {
                        sub.set_position(sub.position().unwrap_or_default() + 1);
                    }
                    shift_positions(sub, after);
                }
            }
            _ => {}
        }
    }
}

/// Puts `new` in place of the value in `item`, keeping the comment and spacing around it.
fn replace_value(item: &mut Item, mut new: Value) {
    if let Some(old) = item.as_value() {
        *new.decor_mut() = old.decor().clone();
    }
    *item = Item::Value(new);
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = r#"# The workspace.
[workspace]
name = "chat"   # short
root_url = "http://chat.example.com"
# `rcfleet upgrade` rewrites this line.
release = "8.0.0"    # the image tag
deploy_dir = "/opt/rcfleet"

[[hosts]]
name = "db"
address = "10.0.0.10"
roles = ["database", "monitoring", "traefik"]

[[hosts]]
name = "app1"
address = "10.0.0.31"
roles = [ "rocketchat" ]
instances = 2
port = 3000
metrics_port = 9458

# Traefik comment.
[traefik]
domain = "chat.example.com"
"#;

    #[test]
    fn set_release_changes_only_the_release_line() {
        let edited = with_release(INVENTORY, &Release::parse("8.1.0-rc.2").unwrap()).unwrap();
        let expected = INVENTORY.replace("release = \"8.0.0\"    # the image tag", "release = \"8.1.0-rc.2\"    # the image tag");
        assert_eq!(edited, expected);
    }

    #[test]
    fn set_release_rewrites_the_file_and_keeps_it_valid() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("inventory.toml");
        std::fs::write(&path, INVENTORY).unwrap();
        set_release(&path, &Release::parse("8.1.0").unwrap(), false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, INVENTORY.replace("\"8.0.0\"", "\"8.1.0\""));
        assert_eq!(crate::inventory::parse(&text, &path).unwrap().workspace.release.to_string(), "8.1.0");
        assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[test]
    fn allowing_unsupported_mongodb_adds_one_line_and_keeps_the_rest() {
        let edited = with_mongodb_allow_unsupported(INVENTORY).unwrap();
        assert!(edited.starts_with(INVENTORY.trim_end()), "{edited}");
        assert!(edited.contains("allow_unsupported = true"), "{edited}");
        assert!(parsed(&edited).mongodb.allow_unsupported);
        assert_eq!(with_mongodb_allow_unsupported(&edited).unwrap(), edited, "set once");
    }

    #[test]
    fn the_mongodb_version_is_rewritten_in_place_or_added() {
        let with_version = INVENTORY.replace("# Traefik comment.", "[mongodb]\nversion = \"5.0\" # climbs one major at a time\n\n# Traefik comment.");
        let edited = with_mongodb_version(&with_version, "6.0").unwrap();
        assert_eq!(edited, with_version.replace("\"5.0\"", "\"6.0\""));
        let added = with_mongodb_version(INVENTORY, "8.0").unwrap();
        assert!(added.starts_with(INVENTORY.trim_end()), "{added}");
        assert_eq!(parsed(&added).mongodb.version, "8.0");
    }

    #[test]
    fn set_release_refuses_an_inventory_without_a_release() {
        let err = with_release("[workspace]\nname = \"chat\"\n", &Release::parse("8.1.0").unwrap()).unwrap_err();
        assert!(err.to_string().contains("workspace.release"), "{err}");
    }

    fn parsed(text: &str) -> crate::fleet::Fleet {
        crate::inventory::parse(text, Path::new("inventory.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn names(text: &str) -> Vec<String> {
        parsed(text).instances().map(|i| format!("{}:{}", i.name, i.port)).collect()
    }

    /// The lines of `after` that are not in `before`, and the lines of `before` gone from `after`.
    fn diff(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
        let a: Vec<&str> = before.lines().collect();
        let b: Vec<&str> = after.lines().collect();
        let added = b.iter().filter(|l| !a.contains(l)).map(|l| l.to_string()).collect();
        let removed = a.iter().filter(|l| !b.contains(l)).map(|l| l.to_string()).collect();
        (added, removed)
    }

    #[test]
    fn a_symlinked_inventory_is_written_through_the_link() {
        let folder = tempfile::tempdir().unwrap();
        let real = folder.path().join("config").join("inventory.toml");
        std::fs::create_dir(real.parent().unwrap()).unwrap();
        std::fs::write(&real, INVENTORY).unwrap();
        let link = folder.path().join("inventory.toml");
        std::os::unix::fs::symlink("config/inventory.toml", &link).unwrap();
        set_release(&link, &Release::parse("8.1.0").unwrap(), false).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert!(std::fs::read_to_string(&real).unwrap().contains("release = \"8.1.0\""), "the target got the edit");
        assert_eq!(std::fs::read_dir(real.parent().unwrap()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[test]
    fn add_instances_refuses_a_count_beyond_a_host() {
        for count in [0, 101, u32::MAX] {
            let err = add_instances(INVENTORY, "app1", count).unwrap_err().to_string();
            assert!(err.contains("give 1 to 100"), "{count}: {err}");
        }
    }

    #[test]
    fn add_instances_grows_the_count_and_keeps_the_rest() {
        let (edited, added) = add_instances(INVENTORY, "app1", 2).unwrap();
        assert_eq!(added, vec![2, 3]);
        assert_eq!(edited, INVENTORY.replace("instances = 2", "instances = 4"));
        assert_eq!(names(&edited), ["app1-0:3000", "app1-1:3001", "app1-2:3002", "app1-3:3003"]);
    }

    #[test]
    fn add_instances_refuses_unknown_hosts_and_hosts_without_the_role() {
        let err = add_instances(INVENTORY, "app9", 1).unwrap_err().to_string();
        assert!(err.contains("no host \"app9\"") && err.contains("db, app1"), "{err}");
        let err = add_instances(INVENTORY, "db", 1).unwrap_err().to_string();
        assert!(err.contains("no \"rocketchat\" role"), "{err}");
    }

    #[test]
    fn an_instance_whose_port_is_taken_is_refused_with_its_place() {
        let close = INVENTORY.replace("metrics_port = 9458", "metrics_port = 3002");
        parsed(&close);
        let (edited, _) = add_instances(&close, "app1", 1).unwrap();
        let err = crate::inventory::parse(&edited, Path::new("inventory.toml")).unwrap_err().to_string();
        assert!(
            err.contains("inventory.toml:19:8: hosts[1].port: port 3002 on host \"app1\" would be used by both instance app1-0 metrics and instance app1-2"),
            "{err}"
        );
    }

    #[test]
    fn add_host_appends_a_block_like_the_others_after_the_last_host() {
        let new = NewHost {
            name: "app2".into(),
            address: "10.0.0.32".into(),
            private_address: Some("192.168.0.32".into()),
            ssh_user: Some("deploy".into()),
            instances: 1,
        };
        let edited = add_host(INVENTORY, &new).unwrap();
        let block = "\n[[hosts]]\nname = \"app2\"\naddress = \"10.0.0.32\"\nprivate_address = \"192.168.0.32\"\n\
                     roles = [\"rocketchat\"]\ninstances = 1\nport = 3000\nmetrics_port = 9458\nssh = { user = \"deploy\" }\n";
        let at = INVENTORY.find("\n# Traefik comment.").unwrap();
        assert_eq!(edited, format!("{}{block}{}", &INVENTORY[..at], &INVENTORY[at..]));
        let fleet = parsed(&edited);
        let host = fleet.host("app2").unwrap();
        assert_eq!((host.ssh.user.as_deref(), host.instances.len()), (Some("deploy"), 1));
        assert_eq!(fleet.traefik.domain, "chat.example.com", "the [traefik] table stays whole");
    }

    #[test]
    fn add_host_refuses_a_name_already_used_and_validation_refuses_a_duplicate_address() {
        let mut new = NewHost { name: "app1".into(), address: "10.0.0.99".into(), private_address: None, ssh_user: None, instances: 1 };
        assert!(add_host(INVENTORY, &new).unwrap_err().to_string().contains("already in the inventory"));
        new.name = "app2".into();
        new.address = "10.0.0.31".into();
        let edited = add_host(INVENTORY, &new).unwrap();
        let err = crate::inventory::parse(&edited, Path::new("inventory.toml")).unwrap_err().to_string();
        assert!(err.contains("inventory.toml:24:11: hosts[2].address: address \"10.0.0.31\" is already used by hosts[1]"), "{err}");
    }

    #[test]
    fn removing_an_instance_keeps_the_others_names_and_ports() {
        let (three, _) = add_instances(INVENTORY, "app1", 1).unwrap();
        let edited = remove_instance(&three, "app1", 0).unwrap();
        let (added, removed) = diff(&three, &edited);
        assert_eq!(added, ["retired = [0]"]);
        assert!(removed.is_empty(), "{removed:?}");
        assert_eq!(names(&edited), ["app1-1:3001", "app1-2:3002"]);
        // The highest index goes: the count shrinks past every retired index below it.
        let edited = remove_instance(&edited, "app1", 2).unwrap();
        assert_eq!(names(&edited), ["app1-1:3001"]);
        assert!(edited.contains("instances = 2\nretired = [0]\nport = 3000\n"), "{edited}");
        let edited = remove_instance(&remove_instance(&three, "app1", 2).unwrap(), "app1", 1).unwrap();
        assert_eq!(names(&edited), ["app1-0:3000"]);
        assert!(edited.contains("instances = 1\n") && !edited.contains("retired"), "{edited}");
        // A retired slot is taken again first.
        let (refilled, added) = add_instances(&remove_instance(&three, "app1", 1).unwrap(), "app1", 2).unwrap();
        assert_eq!(added, vec![1, 3]);
        assert_eq!(names(&refilled), ["app1-0:3000", "app1-1:3001", "app1-2:3002", "app1-3:3003"]);
        assert!(!refilled.contains("retired"), "{refilled}");
    }

    #[test]
    fn removing_the_last_instance_of_a_host_removes_its_role_or_its_block() {
        let new = NewHost { name: "app2".into(), address: "10.0.0.32".into(), private_address: None, ssh_user: None, instances: 1 };
        let with_app2 = add_host(INVENTORY, &new).unwrap();
        assert_eq!(remove_instance(&with_app2, "app2", 0).unwrap(), INVENTORY);
        let shared = INVENTORY.replace("roles = [\"database\", \"monitoring\", \"traefik\"]", "roles = [\"database\", \"monitoring\", \"traefik\", \"rocketchat\"]\ninstances = 1")
            .replace("port = 3000", "port = 3100");
        let edited = remove_instance(&shared, "db", 0).unwrap();
        assert!(edited.contains("roles = [\"database\", \"monitoring\", \"traefik\"]\n[[hosts]]") || edited.contains("roles = [\"database\", \"monitoring\", \"traefik\"]\n\n[[hosts]]"), "{edited}");
        assert_eq!(names(&edited), ["app1-0:3100", "app1-1:3101"]);
    }

    #[test]
    fn retired_indexes_are_validated() {
        let check = |retired: &str, expected: &str| {
            let text = INVENTORY.replace("instances = 2\n", &format!("instances = 2\nretired = {retired}\n"));
            let err = crate::inventory::parse(&text, Path::new("inventory.toml")).unwrap_err().to_string();
            assert!(err.contains(expected), "retired = {retired}: {err}");
        };
        check("[2]", "hosts[1].retired: 2 is not an instance index of this host (instances = 2 gives 0 to 1)");
        check("[0, 0]", "index 0 is listed twice");
        check("[0, 1]", "every instance of this host is retired");
        check("\"0\"", "expected an array of instance indexes");
        check("[\"a\"]", "expected instance indexes (integers)");
        let db = INVENTORY.replace("roles = [\"database\", \"monitoring\", \"traefik\"]", "roles = [\"database\", \"monitoring\", \"traefik\"]\nretired = [0]");
        let err = crate::inventory::parse(&db, Path::new("inventory.toml")).unwrap_err().to_string();
        assert!(err.contains("hosts[0].retired: only hosts with the \"rocketchat\" role"), "{err}");
    }

    #[test]
    fn service_replicas_are_written_where_the_inventory_reads_them() {
        let text = "[workspace]\nname = \"chat\"\n\n[microservices]\nenabled = true # on\nconcurrent_users = 900\n";
        let edited = set_service_replicas(text, "ddp-streamer", 4, Some(&["app1".into(), "app1".into()])).unwrap();
        assert!(edited.contains("ddp_streamers = 4") && !edited.contains("concurrent_users"), "{edited}");
        assert!(edited.contains("enabled = true # on"), "{edited}");
        assert!(edited.contains("[microservices.placement]\nddp-streamer = [\"app1\", \"app1\"]"), "{edited}");
        let edited = set_service_replicas(&edited, "presence", 2, None).unwrap();
        assert!(edited.contains("[microservices.replicas]\npresence = 2"), "{edited}");
        let again = set_service_replicas(&edited, "presence", 3, None).unwrap();
        assert!(again.contains("presence = 3") && !again.contains("presence = 2"), "{again}");
        assert!(set_service_replicas("[workspace]\n", "presence", 2, None).is_err());
    }
}

//! Format-preserving edits of the inventory file (`toml_edit::DocumentMut`): the commands that
//! change the fleet (`upgrade`, `add-instance`, `remove-instance`) rewrite only the keys they
//! change; comments, blank lines, key order and quoting of everything else stay as written.
//!
//! Each edit is a pure function from text to text, so a command can validate the edited
//! inventory (`inventory::parse`) before touching any host, and write it (`write`) only once
//! the hosts are changed.

use std::io::Write;
use std::path::Path;

use toml_edit::{DocumentMut, Item, Value};

use crate::error::{Error, Result};
use crate::fleet::Release;

/// Rewrites `workspace.release` of the inventory at `path` to `release`, keeping comments and
/// formatting. The edited text is validated before the file is replaced (atomically).
pub fn set_release(path: &Path, release: &Release) -> Result<()> {
    let text = read(path)?;
    let edited = with_release(&text, release)?;
    super::parse(&edited, path)?;
    write(path, &edited)
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
/// renamed over it), keeping the file's permissions.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let failed = |err: std::io::Error| Error::failed(format!("{}: cannot write the inventory: {err}", path.display()));
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = folder.join(format!(".{name}.rcfleet-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(metadata) = std::fs::metadata(path) {
            std::fs::set_permissions(&temporary, metadata.permissions())?;
        }
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(failed)
}

fn document(text: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|err| Error::bad_input(format!("invalid TOML: {}", err.message().trim_end())))
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
        set_release(&path, &Release::parse("8.1.0").unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, INVENTORY.replace("\"8.0.0\"", "\"8.1.0\""));
        assert_eq!(crate::inventory::parse(&text, &path).unwrap().workspace.release.to_string(), "8.1.0");
        assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[test]
    fn set_release_refuses_an_inventory_without_a_release() {
        let err = with_release("[workspace]\nname = \"chat\"\n", &Release::parse("8.1.0").unwrap()).unwrap_err();
        assert!(err.to_string().contains("workspace.release"), "{err}");
    }
}

//! Golden files: every rendered file of every fleet under test, secrets redacted, compared
//! byte for byte with `tests/golden/<fleet>/<host>/<path>`. `UPDATE_GOLDEN=1 cargo test`
//! rewrites them (and removes files no longer rendered); review the diff before committing.

mod render_support;

use std::collections::BTreeMap;
use std::path::Path;

use render_support::*;

fn golden_dir(fleet: &str) -> std::path::PathBuf {
    root().join("tests/golden").join(fleet)
}

/// Every file under `dir`, by path relative to it.
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
                files.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn rendered_files_match_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for (name, fleet) in fleets() {
        let rendered: BTreeMap<String, String> = redacted(&fleet)
            .into_iter()
            .flat_map(|host| host.files.into_iter().map(move |f| (format!("{}/{}", host.host, f.path), f.content)))
            .collect();
        let dir = golden_dir(name);
        if update {
            let _ = std::fs::remove_dir_all(&dir);
            for (path, content) in &rendered {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, content).unwrap();
            }
            continue;
        }
        let golden = read_tree(&dir);
        for (path, content) in &rendered {
            match golden.get(path) {
                None => problems.push(format!("{name}/{path}: rendered but has no golden file")),
                Some(expected) if expected != content => {
                    let line = expected.lines().zip(content.lines()).position(|(a, b)| a != b);
                    problems.push(format!(
                        "{name}/{path}: differs from the golden file (first at line {})",
                        line.map_or("end".to_string(), |l| (l + 1).to_string())
                    ));
                }
                Some(_) => {}
            }
        }
        for path in golden.keys().filter(|path| !rendered.contains_key(*path)) {
            problems.push(format!("{name}/{path}: golden file no longer rendered"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(if the change is intended: UPDATE_GOLDEN=1 cargo test --test render_golden, then review git diff tests/golden)",
        problems.join("\n")
    );
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    for (_, fleet) in fleets() {
        let secrets = known_secrets();
        let first = rcfleet::render::render(&fleet, &secrets).unwrap();
        let second = rcfleet::render::render(&fleet.clone(), &secrets).unwrap();
        assert_eq!(first, second);
    }
}

#[test]
fn golden_files_hold_no_secret_value() {
    let secrets = known_secrets();
    let values: Vec<&String> = secrets.0.values().collect();
    for (path, content) in read_tree(&root().join("tests/golden")) {
        for value in &values {
            assert!(!content.contains(value.as_str()), "{path} holds a secret value");
        }
    }
}

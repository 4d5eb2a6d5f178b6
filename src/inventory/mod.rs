//! The inventory: a TOML file describing the workspace, its hosts and their roles. `load` reads
//! it, checks every value and every rule between values, and returns the resolved `Fleet`, or
//! every problem at once (`Error::BadInput`, exit 2), each as `file:line:col: key: what is
//! wrong; how to fix it`. Nothing here contacts a host.

mod checks;
pub mod defaults;
pub mod edit;
pub mod init;
mod microservices;
mod paths;
mod read;
mod reader;
pub mod schema;
mod secrets;
mod source;
mod values;

use std::path::Path;

use crate::error::{Error, Result};
use crate::fleet::Fleet;
use source::{Problems, Source};

/// Reads, validates and resolves the inventory at `path`. Secret references are checked to be
/// resolvable (their values are read and dropped, never kept or shown): for commands that
/// deploy or log in.
pub fn load(path: &Path) -> Result<Fleet> {
    validate(&read_file(path)?, path, true)
}

/// Reads and validates the inventory at `path` without looking at any secret: for `plan`,
/// which shows references and never needs their values.
pub fn load_without_secrets(path: &Path) -> Result<Fleet> {
    validate(&read_file(path)?, path, false)
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| {
        Error::bad_input(format!(
            "{}: cannot read the inventory: {err}; pass the right file with -i/--inventory",
            path.display()
        ))
    })
}

/// Validates inventory `text` (named `path` in messages) without reading any secret.
pub fn parse(text: &str, path: &Path) -> Result<Fleet> {
    validate(text, path, false)
}

fn validate(text: &str, path: &Path, resolve_secrets: bool) -> Result<Fleet> {
    let source = Source::new(path, text.to_string());
    let document = toml_edit::Document::parse(text).map_err(|err| {
        let message = err.message().trim_end().replace('\n', "; ");
        Error::bad_input(format!("{}: invalid TOML: {message}", source.location(err.span())))
    })?;
    let mut problems = Problems::new(&source);
    let fleet = read::fleet(document.as_table(), &mut problems);
    if let Some(fleet) = &fleet {
        checks::fleet(fleet, document.as_table(), &mut problems);
        if resolve_secrets {
            secrets::check_resolvable(fleet, document.as_table(), &mut problems);
        }
    }
    match fleet {
        Some(fleet) if problems.is_empty() => Ok(fleet),
        _ => Err(Error::BadInput(problems.into_messages())),
    }
}

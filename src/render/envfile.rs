//! Env files (`KEY=value` lines) for values that must stay out of compose files. Written by
//! code, not a template, because Compose v1 (python-dotenv) and v2 (compose-go) disagree on
//! quoting and escapes: only unquoted values without the characters either of them treats
//! specially are read back identically by both, so anything else is refused, never mangled.

use crate::error::{Error, Result};
use crate::fleet::SecretRef;

/// Where a value came from, for error messages (which never contain the value).
#[derive(Debug, Clone)]
pub enum Origin {
    /// A secret read at run time, for the inventory key `key`.
    Secret { key: String, source: SecretRef },
    /// A value rcfleet built from inventory settings, e.g. `MONGO_URL`.
    Derived { from: String },
}

/// One `KEY=value` line to be.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

/// The env file text, or one problem per entry that cannot be carried safely.
pub fn render(entries: &[Entry]) -> Result<String> {
    let mut problems = Vec::new();
    let mut out = String::new();
    for entry in entries {
        if !is_env_name(&entry.name) {
            problems.push(format!(
                "{}: `{}` is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                origin_key(entry),
                entry.name
            ));
            continue;
        }
        match unsafe_part(&entry.value) {
            Some(what) => problems.push(describe(entry, what)),
            None => out.push_str(&format!("{}={}\n", entry.name, entry.value)),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::BadInput(problems))
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what both Compose versions and every shell accept.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What in `value` an env file cannot carry, if anything.
fn unsafe_part(value: &str) -> Option<&'static str> {
    if value.contains(['\n', '\r']) {
        return Some("a line break");
    }
    if value.contains('\0') {
        return Some("a NUL byte");
    }
    if value.chars().any(|c| c.is_control()) {
        return Some("a control character");
    }
    if value.contains('$') {
        return Some("a '$' (both Compose versions expand variables in env files)");
    }
    if value.contains(['"', '\'']) {
        return Some("a quote character");
    }
    if value.contains('\\') {
        return Some("a backslash");
    }
    if value.trim() != value {
        return Some("leading or trailing whitespace (Compose strips it)");
    }
    if value.contains(" #") {
        return Some("' #' (Compose reads the rest of the line as a comment)");
    }
    None
}

fn origin_key(entry: &Entry) -> String {
    match &entry.origin {
        Origin::Secret { key, .. } => key.clone(),
        Origin::Derived { from } => from.clone(),
    }
}

fn describe(entry: &Entry, what: &str) -> String {
    match &entry.origin {
        Origin::Secret { key, source } => format!(
            "{key}: the secret read from {source} for {name} contains {what}, which cannot be passed \
             unchanged through a Compose env file; change the secret (e.g. generate one of letters, digits \
             and punctuation other than $ \" ' \\)",
            name = entry.name
        ),
        Origin::Derived { from } => format!(
            "{from}: the value rcfleet builds for {name} contains {what}, which cannot be passed unchanged \
             through a Compose env file; change these settings",
            name = entry.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, value: &str) -> Entry {
        Entry {
            name: name.into(),
            value: value.into(),
            origin: Origin::Secret { key: format!("rocketchat.env.{name}"), source: SecretRef::Env("SRC_VAR".into()) },
        }
    }

    #[test]
    fn safe_values_become_lines() {
        let text = render(&[secret("A", "p@ss:w0rd#x!&%*?={}[]`~"), secret("B", "")]).unwrap();
        assert_eq!(text, "A=p@ss:w0rd#x!&%*?={}[]`~\nB=\n");
    }

    #[test]
    fn unsafe_values_are_refused_naming_key_and_source_never_the_value() {
        for value in
            ["Zq9\nX", "Zq9\rX", "Zq9\0X", "Zq9\tX", "Zq9$X", "Zq9\"X", "Zq9'X", "Zq9\\X", " Zq9X", "Zq9X ", "Zq9 #X"]
        {
            let err = render(&[secret("MAIL_URL", value)]).unwrap_err().to_string();
            assert!(err.contains("rocketchat.env.MAIL_URL"), "{err}");
            assert!(err.contains("environment variable SRC_VAR"), "{err}");
            assert!(!err.contains("Zq9"), "value leaked: {err}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let err = render(&[secret("A", "x$"), secret("B", "ok"), secret("C", "y\n"), secret("9X", "ok")]).unwrap_err();
        match err {
            Error::BadInput(problems) => assert_eq!(problems.len(), 3, "{problems:?}"),
            other => panic!("{other}"),
        }
    }
}

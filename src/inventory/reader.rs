//! Typed reads from a parsed TOML table that never stop at the first problem: a wrong type,
//! a missing key or an unknown key is recorded in `Problems` (with its place) and the read
//! returns `None`, so every problem in the file is found in one pass.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::source::Problems;
use crate::fleet::SecretRef;

/// One table of the inventory (`[workspace]`, a `[[hosts]]` entry, an inline `ssh = {...}`),
/// with the dotted key path used in messages.
pub struct Section<'d> {
    pub path: String,
    table: &'d dyn TableLike,
    span: Option<Range<usize>>,
}

impl<'d> Section<'d> {
    pub fn new(path: impl Into<String>, table: &'d dyn TableLike, span: Option<Range<usize>>) -> Section<'d> {
        Section { path: path.into(), table, span }
    }

    /// Where the table starts, for problems about the table as a whole.
    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }

    /// The full key path of a key in this table, e.g. `hosts[1].roles`.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// The span of a key's value, else of the table.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).and_then(Item::span).or_else(|| self.span())
    }

    /// Reports every key not in `known`, suggesting the closest known one.
    pub fn reject_unknown_keys(&self, known: &[&str], problems: &mut Problems) {
        for (key, _) in self.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = self.table.key(key).and_then(|k| k.span()).or_else(|| self.span());
            let hint = match closest(key, known) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            problems.report(span, &self.key_path(key), format!("unknown key; {hint}"));
        }
    }

    fn item(&self, key: &str, required: bool, what: &str, problems: &mut Problems) -> Option<&'d Item> {
        match self.table.get(key) {
            Some(item) => Some(item),
            None => {
                if required {
                    problems.report(self.span(), &self.key_path(key), format!("missing; add `{key} = {what}`"));
                }
                None
            }
        }
    }

    fn wrong_type(&self, key: &str, item: &Item, expected: &str, problems: &mut Problems) {
        problems.report(
            item.span().or_else(|| self.span()),
            &self.key_path(key),
            format!("expected {expected}, found {}", type_name(item)),
        );
    }

    pub fn string(&self, key: &str, required: bool, problems: &mut Problems) -> Option<String> {
        let item = self.item(key, required, "\"...\"", problems)?;
        match item.as_str() {
            Some(text) => Some(text.to_string()),
            None => {
                self.wrong_type(key, item, "a string", problems);
                None
            }
        }
    }

    pub fn integer(&self, key: &str, required: bool, problems: &mut Problems) -> Option<i64> {
        let item = self.item(key, required, "<number>", problems)?;
        match item.as_integer() {
            Some(number) => Some(number),
            None => {
                self.wrong_type(key, item, "an integer", problems);
                None
            }
        }
    }

    pub fn boolean(&self, key: &str, problems: &mut Problems) -> Option<bool> {
        let item = self.table.get(key)?;
        match item.as_bool() {
            Some(flag) => Some(flag),
            None => {
                self.wrong_type(key, item, "true or false", problems);
                None
            }
        }
    }

    /// An integer within `range`, reported with the range when outside it.
    pub fn number_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
        problems: &mut Problems,
    ) -> Option<i64> {
        let Some(value) = self.integer(key, false, problems) else {
            return (!self.has(key)).then_some(default);
        };
        if range.contains(&value) {
            Some(value)
        } else {
            problems.report(
                self.value_span(key),
                &self.key_path(key),
                format!("{value} is out of range; use a number from {} to {}", range.start(), range.end()),
            );
            None
        }
    }

    /// A TCP port (1-65535), or `default` when the key is absent.
    pub fn port(&self, key: &str, default: u16, problems: &mut Problems) -> Option<u16> {
        self.number_in(key, 1..=65535, i64::from(default), problems).map(|port| port as u16)
    }

    /// An array of strings, each with its own span.
    pub fn strings(&self, key: &str, required: bool, problems: &mut Problems) -> Option<Vec<(String, Option<Range<usize>>)>> {
        let item = self.item(key, required, "[\"...\"]", problems)?;
        let Some(array) = item.as_array() else {
            self.wrong_type(key, item, "an array of strings", problems);
            return None;
        };
        let mut values = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(text) => values.push((text.to_string(), value.span())),
                None => problems.report(
                    value.span(),
                    &self.key_path(key),
                    format!("expected strings in this array, found {}", value_type_name(value)),
                ),
            }
        }
        Some(values)
    }

    /// A sub-table (`[a.b]` or an inline `{ ... }`).
    pub fn table(&self, key: &str, required: bool, problems: &mut Problems) -> Option<Section<'d>> {
        let item = self.item(key, required, "{ ... }", problems)?;
        match item.as_table_like() {
            Some(table) => Some(Section::new(self.key_path(key), table, item.span().or_else(|| self.span()))),
            None => {
                self.wrong_type(key, item, "a table", problems);
                None
            }
        }
    }

    /// The (key, item) pairs of this table, for free-form tables such as `[rocketchat.env]`.
    pub fn entries(&self) -> Vec<(&'d str, &'d Item, Option<Range<usize>>)> {
        self.table
            .iter()
            .map(|(key, item)| (key, item, self.table.key(key).and_then(|k| k.span())))
            .collect()
    }

    /// A secret reference: `{ env = "NAME" }` or `{ file = "path" }`. A plain string is refused:
    /// secrets are never written in the inventory.
    pub fn secret(&self, key: &str, required: bool, problems: &mut Problems) -> Option<SecretRef> {
        let item = self.item(key, required, "{ env = \"NAME\" }", problems)?;
        secret_from_item(&self.key_path(key), item, self.span(), problems)
    }
}

/// Reads `{ env = "NAME" }` / `{ file = "path" }` at `key_path`.
pub fn secret_from_item(
    key_path: &str,
    item: &Item,
    fallback_span: Option<Range<usize>>,
    problems: &mut Problems,
) -> Option<SecretRef> {
    let span = item.span().or(fallback_span);
    let how = "write `{ env = \"NAME\" }` (an environment variable) or `{ file = \"path\" }` (a file)";
    let Some(table) = item.as_table_like() else {
        if item.is_str() {
            problems.report(span, key_path, format!("secrets are never written in the inventory; {how}"));
        } else {
            problems.report(span, key_path, format!("expected a secret reference; {how}"));
        }
        return None;
    };
    let section = Section::new(key_path, table, span.clone());
    section.reject_unknown_keys(&["env", "file"], problems);
    let env = section.string("env", false, problems);
    let file = section.string("file", false, problems);
    match (env, file) {
        (Some(name), None) if is_env_name(&name) => Some(SecretRef::Env(name)),
        (Some(_), None) => {
            problems.report(
                section.value_span("env"),
                &section.key_path("env"),
                "not a valid environment variable name; use letters, digits and '_', not starting with a digit",
            );
            None
        }
        (None, Some(path)) if !path.is_empty() && !path.contains(['\n', '\0']) => {
            let folder = problems.source().folder();
            Some(SecretRef::File(super::paths::expand(&path, &folder)))
        }
        (None, Some(_)) => {
            problems.report(section.value_span("file"), &section.key_path("file"), "give the path of a readable file");
            None
        }
        (Some(_), Some(_)) => {
            problems.report(span, key_path, "give either `env` or `file`, not both");
            None
        }
        (None, None) => {
            problems.report(span, key_path, format!("empty secret reference; {how}"));
            None
        }
    }
}

pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(value) => value_type_name(value),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// The known key nearest to `key` by edit distance, if it is near enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        assert_eq!(closest("relase", &["release", "root_url"]), Some("release"));
        assert_eq!(closest("colour", &["release", "root_url"]), None);
    }
}

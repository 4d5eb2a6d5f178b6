//! YAML-safe scalars. Every value a template interpolates goes through [`quote`], which emits a
//! double-quoted string that YAML (1.1 and 1.2), JSON and JavaScript all read back as exactly
//! the original text, whatever it contains: quotes, `: `, `#`, line breaks, `{{`, backticks.
//!
//! Some consumers run a second interpreter over the parsed or raw text; the [`Flavour`] says
//! which one the output must survive.

/// The second interpreter a rendered file goes through, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Read as YAML, JSON or JavaScript only.
    Plain,
    /// Compose files and Grafana provisioning files: both expand `$NAME` and `${NAME}` in
    /// parsed string values, and both read `$$` as a literal `$`.
    Dollar,
    /// Traefik dynamic files: Traefik runs Go `text/template` over the raw file before parsing
    /// it, so a literal `{` is written as the YAML escape `\u007B`, which the template engine
    /// does not see and the YAML parser turns back into `{`.
    GoTemplate,
}

/// `text` as a double-quoted scalar for `flavour`.
pub fn quote(text: &str, flavour: Flavour) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' if flavour == Flavour::Dollar => out.push_str("$$"),
            '{' if flavour == Flavour::GoTemplate => out.push_str("\\u007B"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters YAML does not allow raw in a document or reads as line breaks (NEL, LS, PS),
/// plus the byte-order mark; all are representable as `\uXXXX` in YAML, JSON and JavaScript.
fn needs_escape(c: char) -> bool {
    matches!(c as u32, 0x00..=0x1F | 0x7F..=0x9F | 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "plain",
        "",
        "a: b",
        "x # not a comment",
        "quote \" and ' and `backtick`",
        "back\\slash",
        "line\nbreak\r\n",
        "{{ env \"HOME\" }}",
        "$HOME ${HOME} $$",
        "- item",
        "&anchor *alias !tag %directive @at",
        "yes",
        "0755",
        "~",
        "null",
        "tab\there",
        "nul\0byte\u{7}bell\u{7f}del",
        "nel\u{85}ls\u{2028}ps\u{2029}bom\u{feff}",
        "ünïcödé ✓ 漢字",
        "  leading and trailing  ",
    ];

    fn parse(yaml: &str) -> String {
        yaml_serde::from_str::<String>(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    #[test]
    fn plain_round_trips_through_yaml_and_json() {
        for text in HOSTILE {
            let quoted = quote(text, Flavour::Plain);
            assert_eq!(parse(&quoted), *text, "YAML: {quoted}");
            assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), *text, "JSON: {quoted}");
            let doc = format!("key: {quoted}\nother: 1\n");
            let map: std::collections::BTreeMap<String, yaml_serde::Value> = yaml_serde::from_str(&doc).unwrap();
            assert_eq!(map.len(), 2, "structure changed by {text:?}");
        }
    }

    #[test]
    fn dollar_doubles_every_dollar_and_nothing_else() {
        for text in HOSTILE {
            assert_eq!(parse(&quote(text, Flavour::Dollar)), text.replace('$', "$$"));
        }
    }

    #[test]
    fn go_template_never_shows_a_brace_and_parses_back() {
        for text in HOSTILE {
            let quoted = quote(text, Flavour::GoTemplate);
            assert!(!quoted.contains('{'), "{quoted}");
            assert_eq!(parse(&quoted), *text);
        }
    }
}

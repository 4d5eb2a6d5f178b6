//! Where the renderer gets secret values: a [`SecretSource`] resolves a [`SecretRef`] when a
//! file needs it. [`Redacted`] stands in for every secret, so `plan` and the golden files show
//! where secrets go without ever holding one.

use crate::error::Result;
use crate::fleet::SecretRef;

/// Resolves secret references to their values.
pub trait SecretSource {
    fn value(&self, secret: &SecretRef) -> Result<String>;
}

/// Gives `<redacted: SOURCE>` for every secret, naming where it would come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redacted;

impl SecretSource for Redacted {
    fn value(&self, secret: &SecretRef) -> Result<String> {
        // The placeholder must pass the same checks a real value does (env files refuse
        // quotes, `$`, backslashes, ...); a file path may hold any of them, so they become `_`.
        let source: String =
            secret.to_string().chars().map(|c| if c.is_control() || "$\"'\\#".contains(c) { '_' } else { c }).collect();
        Ok(format!("<redacted: {source}>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn redacted_names_the_source() {
        assert_eq!(Redacted.value(&SecretRef::Env("PW".into())).unwrap(), "<redacted: environment variable PW>");
        assert_eq!(Redacted.value(&SecretRef::File(PathBuf::from("/s/$a\"b"))).unwrap(), "<redacted: file /s/_a_b>");
    }
}

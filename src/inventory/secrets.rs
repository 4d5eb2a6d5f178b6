//! Secret references checked at load time: each must resolve on this machine (the value is
//! read and dropped at once, never kept or shown).

use super::checks::Locator;
use super::source::Problems;
use crate::error::Error;
use crate::fleet::Fleet;

/// Checks that every secret reference resolves, reporting each one that does not.
pub(super) fn check_resolvable(fleet: &Fleet, root: &toml_edit::Table, problems: &mut Problems) {
    let locate = Locator::new(root);
    for (key, secret) in fleet.secret_references() {
        if let Err(Error::BadInput(messages)) = secret.resolve() {
            problems.report(locate.span(&key), &key, messages.join("; "));
        }
    }
}

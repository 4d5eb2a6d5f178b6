//! Which MongoDB versions each Rocket.Chat release runs on: the one table that inventory
//! validation (`plan`, `up`: the inventory's `mongodb.version`) and the upgrade guard (the
//! MongoDB the database host really runs) both read.
//!
//! Sources (details in `shared/reference/microservices-and-mongodb.md`, part C.3):
//! - 6.x: release notes of 6.5.2 and 6.8.2, "MongoDB 4.4, 5.0, 6.0".
//! - 7.x: release notes of 7.0.2, 7.2.3, 7.9.3, 7.10.13 and 7.11.0-rc.1, "5.0, 6.0, 7.0"; 4.4
//!   was removed in 7.0 (Rocket.Chat PR #32162). A user report says 7.13.x lists MongoDB 8
//!   (Rocket.Chat issue #41022); unconfirmed, so not taken.
//! - 8.x: 8.0.x and 8.1.x release notes say 8.2 ("workspaces must upgrade to MongoDB 8.2 before
//!   moving to v8.0.0"); from 8.2 on they say 8.0 (PR #38596 lowered the documented minimum
//!   because 8.2 is a short-lived rapid release); 5.0 and 6.0 were removed in 8.0 (PR #35961);
//!   the server itself refuses anything below 7.0 at start (`serverRunning.ts`).
//! - 9.x: the 9.0.0-rc.8 and 9.1.0-rc.4 notes say 8.0. 8.2 is kept too: a workspace coming
//!   from 8.0/8.1 runs it, and MongoDB cannot go back to 8.0 once its feature compatibility
//!   version is 8.2.

use crate::fleet::Release;

/// The MongoDB `major.minor` versions `release` supports, oldest first; `None` for a major
/// rcfleet has no sources for.
pub fn supported_mongodb(release: &Release) -> Option<&'static [&'static str]> {
    match release.major {
        6 => Some(&["4.4", "5.0", "6.0"]),
        7 => Some(&["5.0", "6.0", "7.0"]),
        8 | 9 => Some(&["8.0", "8.2"]),
        _ => None,
    }
}

/// What the table says of running `release` on MongoDB `mongodb` (`major.minor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Supported,
    /// Not in the table: the versions it lists instead.
    Unsupported(&'static [&'static str]),
    /// rcfleet has no sources for this Rocket.Chat major.
    Unknown,
}

pub fn mongodb_support(release: &Release, mongodb: &str) -> Support {
    match supported_mongodb(release) {
        Some(list) if list.contains(&mongodb) => Support::Supported,
        Some(list) => Support::Unsupported(list),
        None => Support::Unknown,
    }
}

/// `major.minor` at the start of an image tag such as `8.2-ubi8`, `8.2.1` or `7.0`; `None` for
/// tags that name no version (`latest`, a digest-like name).
pub fn tag_major_minor(tag: &str) -> Option<String> {
    let mut parts = tag.split(['.', '-']);
    let major = parts.next().filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?;
    let minor = parts.next().filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?;
    Some(format!("{major}.{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(text: &str) -> Release {
        Release::parse(text).unwrap()
    }

    #[test]
    fn the_table_follows_the_release_notes() {
        assert_eq!(mongodb_support(&release("8.0.1"), "8.2"), Support::Supported);
        assert_eq!(mongodb_support(&release("8.5.0"), "8.0"), Support::Supported);
        assert_eq!(mongodb_support(&release("8.0.1"), "7.0"), Support::Unsupported(&["8.0", "8.2"]));
        assert_eq!(mongodb_support(&release("8.0.1"), "4.4"), Support::Unsupported(&["8.0", "8.2"]));
        assert_eq!(mongodb_support(&release("7.10.0"), "7.0"), Support::Supported);
        assert_eq!(mongodb_support(&release("7.10.0"), "8.2"), Support::Unsupported(&["5.0", "6.0", "7.0"]));
        assert_eq!(mongodb_support(&release("7.0.0"), "4.4"), Support::Unsupported(&["5.0", "6.0", "7.0"]));
        assert_eq!(mongodb_support(&release("6.8.2"), "4.4"), Support::Supported);
        assert_eq!(mongodb_support(&release("12.0.0"), "8.2"), Support::Unknown);
    }

    #[test]
    fn tags_give_their_version() {
        assert_eq!(tag_major_minor("8.2-ubi8").as_deref(), Some("8.2"));
        assert_eq!(tag_major_minor("7.0.14").as_deref(), Some("7.0"));
        assert_eq!(tag_major_minor("8.0").as_deref(), Some("8.0"));
        assert_eq!(tag_major_minor("latest"), None);
        assert_eq!(tag_major_minor("8-ubi8"), None);
    }
}

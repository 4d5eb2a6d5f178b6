//! The checks an upgrade must pass before anything changes. Pure: the facts (releases, the
//! MongoDB version in use, the fleet's health) are gathered elsewhere; every guard gives a
//! verdict, and every refusal is reported, not only the first.

use crate::compat::{self, Support};
use crate::fleet::Release;

/// What the guards look at.
pub struct Facts<'a> {
    pub current: &'a Release,
    pub target: &'a Release,
    /// `major.minor` of the running MongoDB, e.g. `8.2`.
    pub mongodb: &'a str,
    /// Problems that make the fleet unhealthy (an instance not ready, Traefik not answering).
    pub unhealthy: &'a [String],
    pub allow_downgrade: bool,
    /// `--allow-unsupported-mongodb`, or `mongodb.allow_unsupported` in the inventory.
    pub allow_unsupported_mongodb: bool,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    /// Passed only because a flag overrode it: said loudly.
    Overridden(String),
    Refuse(String),
}

impl Verdict {
    pub fn refused(&self) -> bool {
        matches!(self, Verdict::Refuse(_))
    }

    pub fn text(&self) -> String {
        match self {
            Verdict::Pass(text) => format!("ok       {text}"),
            Verdict::Overridden(text) => format!("WARNING  {text}"),
            Verdict::Refuse(text) => format!("refused  {text}"),
        }
    }
}

pub fn check(facts: &Facts) -> Vec<Verdict> {
    vec![downgrade(facts), major_skip(facts), mongodb(facts), health(facts)]
}

fn downgrade(facts: &Facts) -> Verdict {
    let (from, to) = (facts.current, facts.target);
    if to >= from {
        return Verdict::Pass(format!("not a downgrade ({from} -> {to})"));
    }
    let why = format!(
        "{from} -> {to} is a downgrade: Rocket.Chat's database migrations cannot be undone, so {to} may refuse to start \
         on a database migrated by {from}"
    );
    if facts.allow_downgrade {
        Verdict::Overridden(format!("{why}; going ahead because of --allow-downgrade"))
    } else {
        Verdict::Refuse(format!("{why}. Restore the backup taken before the upgrade instead, or pass --allow-downgrade"))
    }
}

fn major_skip(facts: &Facts) -> Verdict {
    let (from, to) = (facts.current, facts.target);
    if to.major <= from.major + 1 {
        return Verdict::Pass(format!("no major release skipped ({} -> {})", from.major, to.major));
    }
    Verdict::Refuse(format!(
        "{from} -> {to} skips major {}: Rocket.Chat upgrades one major at a time; upgrade to {}.x first \
         (`rcfleet upgrade --release {}.x`)",
        from.major + 1,
        from.major + 1,
        from.major + 1
    ))
}

fn mongodb(facts: &Facts) -> Verdict {
    let (target, mongodb) = (facts.target, facts.mongodb);
    match compat::mongodb_support(target, mongodb) {
        Support::Supported => Verdict::Pass(format!("MongoDB {mongodb} is supported by Rocket.Chat {}.x", target.major)),
        Support::Unsupported(list) => {
            let why = format!(
                "MongoDB {mongodb} is not supported by Rocket.Chat {}.x (it runs on {})",
                target.major,
                list.join(", ")
            );
            if facts.allow_unsupported_mongodb {
                Verdict::Overridden(format!(
                    "{why}; going ahead because of --allow-unsupported-mongodb: Rocket.Chat may refuse to start or \
                     misbehave, and its support will not help with this combination"
                ))
            } else {
                Verdict::Refuse(format!(
                    "{why}; move MongoDB to a supported version first, one major at a time, or pass \
                     --allow-unsupported-mongodb to go ahead anyway"
                ))
            }
        }
        Support::Unknown => Verdict::Overridden(format!(
            "rcfleet does not know which MongoDB versions Rocket.Chat {}.x supports; check its release notes (MongoDB in use: {mongodb})",
            target.major
        )),
    }
}

fn health(facts: &Facts) -> Verdict {
    if facts.unhealthy.is_empty() {
        return Verdict::Pass("the fleet is healthy: every instance ready, Traefik answers".to_string());
    }
    let what = facts.unhealthy.join("; ");
    if facts.force {
        Verdict::Overridden(format!("the fleet is not healthy ({what}); going ahead because of --force"))
    } else {
        Verdict::Refuse(format!("the fleet is not healthy ({what}); fix it first (`rcfleet up`) or pass --force"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(from: &str, to: &str, mongodb: &str, unhealthy: &[String], allow_downgrade: bool, force: bool) -> Vec<Verdict> {
        let (current, target) = (Release::parse(from).unwrap(), Release::parse(to).unwrap());
        let allow_unsupported_mongodb = false;
        check(&Facts { current: &current, target: &target, mongodb, unhealthy, allow_downgrade, allow_unsupported_mongodb, force })
    }

    fn refusals(verdicts: &[Verdict]) -> Vec<String> {
        verdicts.iter().filter(|v| v.refused()).map(Verdict::text).collect()
    }

    #[test]
    fn a_patch_upgrade_on_a_healthy_fleet_passes() {
        assert!(refusals(&verdicts("8.0.0", "8.1.0", "8.2", &[], false, false)).is_empty());
    }

    #[test]
    fn downgrade_and_major_skip_are_refused_together() {
        let refused = refusals(&verdicts("7.10.0", "9.0.0", "8.2", &[], false, false));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("skips major 8"));
        let refused = refusals(&verdicts("8.1.0", "8.0.0", "7.0", &["app1-0 not ready".into()], false, false));
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].contains("downgrade"));
        assert!(refused[1].contains("MongoDB 7.0"));
        assert!(refused[2].contains("app1-0 not ready"));
    }

    #[test]
    fn flags_override_loudly() {
        let all = verdicts("8.1.0", "8.0.0", "8.2", &["app1-0 not ready".into()], true, true);
        assert!(refusals(&all).is_empty());
        assert_eq!(all.iter().filter(|v| matches!(v, Verdict::Overridden(_))).count(), 2);
    }

    #[test]
    fn unsupported_mongodb_is_refused_unless_allowed_loudly() {
        let (current, target) = (Release::parse("7.10.0").unwrap(), Release::parse("8.0.0").unwrap());
        let facts = |allow_unsupported_mongodb| Facts {
            current: &current,
            target: &target,
            mongodb: "7.0",
            unhealthy: &[],
            allow_downgrade: false,
            allow_unsupported_mongodb,
            force: false,
        };
        let refused = refusals(&check(&facts(false)));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("MongoDB 7.0 is not supported by Rocket.Chat 8.x (it runs on 8.0, 8.2)"), "{refused:?}");
        assert!(refused[0].contains("--allow-unsupported-mongodb"), "{refused:?}");
        let allowed = check(&facts(true));
        assert!(refusals(&allowed).is_empty());
        assert!(allowed.iter().any(|v| matches!(v, Verdict::Overridden(t) if t.contains("--allow-unsupported-mongodb"))));
    }

    #[test]
    fn rc_releases_order_before_their_release() {
        assert!(refusals(&verdicts("8.1.0-rc.1", "8.1.0", "8.2", &[], false, false)).is_empty());
        assert_eq!(refusals(&verdicts("8.1.0", "8.1.0-rc.1", "8.2", &[], false, false)).len(), 1);
    }
}

//! The checks an upgrade must pass before anything changes. Pure: the facts (releases, the
//! MongoDB version in use, the fleet's health) are gathered elsewhere; every guard gives a
//! verdict, and every refusal is reported, not only the first.

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

/// The MongoDB `major.minor` versions each Rocket.Chat major supports (see the reference:
/// 7.x dropped 4.4; 8.x needs 8.0+, per its release notes; 8.2 is what the official stack ships).
pub fn supported_mongodb(major: u64) -> Option<&'static [&'static str]> {
    match major {
        6 => Some(&["4.4", "5.0", "6.0"]),
        7 => Some(&["5.0", "6.0", "7.0", "8.0"]),
        8 => Some(&["8.0", "8.2"]),
        _ => None,
    }
}

pub fn check(facts: &Facts) -> Vec<Verdict> {
    vec![downgrade(facts), major_skip(facts), mongodb(facts), health(facts)]
}

fn downgrade(facts: &Facts) -> Verdict {
    let (from, to) = (facts.current, facts.target);
    if to.sort_key() >= from.sort_key() {
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
    let major = facts.target.major;
    match supported_mongodb(major) {
        Some(list) if list.contains(&facts.mongodb) => {
            Verdict::Pass(format!("MongoDB {} is supported by Rocket.Chat {major}.x", facts.mongodb))
        }
        Some(list) => Verdict::Refuse(format!(
            "MongoDB {} is not supported by Rocket.Chat {major}.x (it needs one of {}); upgrade MongoDB first, one major at a time",
            facts.mongodb,
            list.join(", ")
        )),
        None => Verdict::Overridden(format!(
            "rcfleet does not know which MongoDB versions Rocket.Chat {major}.x supports; check its release notes (MongoDB in use: {})",
            facts.mongodb
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
        check(&Facts { current: &current, target: &target, mongodb, unhealthy, allow_downgrade, force })
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
    fn rc_releases_order_before_their_release() {
        assert!(refusals(&verdicts("8.1.0-rc.1", "8.1.0", "8.2", &[], false, false)).is_empty());
        assert_eq!(refusals(&verdicts("8.1.0", "8.1.0-rc.1", "8.2", &[], false, false)).len(), 1);
    }
}

//! Room for one more Rocket.Chat image: every upgrade pulls a large image, and old ones fill an
//! app host's disk over the months (`rcfleet prune` frees them). `up` (in its preflight) and
//! `upgrade` (beside its guards) warn, without stopping, when a host's Docker storage has less
//! free space than the image it runs.

use super::hosts::{Hosts, CONCURRENCY};
use crate::error::Result;
use crate::fleet::{Fleet, Host, Role};
use crate::remote::{self, Argv};

/// Free KiB where Docker keeps images, and the size in bytes of the image `$1` (0 when absent).
const SCRIPT: &str = r#"
root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null)
[ -n "$root" ] || root=/var/lib/docker
d=$root; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done
echo "free_kib=$(df -Pk -- "$d" | awk 'NR==2 {print $4}')"
echo "image_bytes=$(docker image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo 0)"
"#;

/// The command that prints what [`warning_in`] reads, for `fleet`'s Rocket.Chat image.
pub fn argv(fleet: &Fleet) -> Argv {
    Argv::script(SCRIPT, &[&fleet.images.rocketchat.to_string()])
}

/// The warning for `host` from what [`argv`] printed there, if it lacks room.
pub fn warning_in(host: &str, output: &str) -> Option<String> {
    let fact = |key: &str| {
        output.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    warning(host, fact("free_kib"), fact("image_bytes"))
}

/// The warning for a host, if its free space is below one more image of `image_bytes`.
pub fn warning(host: &str, free_kib: u64, image_bytes: u64) -> Option<String> {
    let needed_kib = image_bytes.div_ceil(1024);
    (image_bytes > 0 && free_kib < needed_kib).then(|| {
        format!(
            "{host}: only {} MiB free for Docker images, less than one more Rocket.Chat image ({} MiB); \
             `rcfleet prune` removes old releases' images",
            free_kib / 1024,
            needed_kib / 1024
        )
    })
}

/// One warning per app host of `fleet` that lacks room for one more Rocket.Chat image.
pub fn low_disk_warnings(fleet: &Fleet, remote: &Hosts) -> Result<Vec<String>> {
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).filter(|h| remote.try_host(&h.name).is_some()).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        Ok(warning_in(&host.name, &remote.host(&host.name).run(&argv(fleet))?.stdout_text()))
    });
    Ok(remote::all_succeeded(results)?.into_iter().filter_map(|(_, warning)| warning).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_below_one_image() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(warning("app1", 2 * 1024 * 1024, gib), None);
        assert_eq!(
            warning("app1", 512 * 1024, gib).unwrap(),
            "app1: only 512 MiB free for Docker images, less than one more Rocket.Chat image (1024 MiB); \
             `rcfleet prune` removes old releases' images"
        );
        assert_eq!(warning("app1", 0, 0), None, "no image yet: nothing to compare with");
    }
}

//! Room for one more Rocket.Chat image: every upgrade pulls a large image, and old ones fill an
//! app host's disk over the months (`rcfleet prune` frees them). `up` (in its preflight) and
//! `upgrade` (beside its guards) warn, without stopping, when a host's Docker storage has less
//! free space than the image it runs. The Docker Engine API says where Docker keeps its data and
//! how large the image is (no Docker CLI start on the host); `df` says how much room is left.

use super::hosts::{Hosts, CONCURRENCY};
use crate::error::{one_line, Result};
use crate::fleet::{Fleet, Host, Role};
use crate::remote::{self, Answer, Argv, Connection, Request, DOCKER_SOCKET};

/// Where Docker keeps its data unless the daemon is told otherwise (`data-root`): its free
/// space is asked beside the Engine's `/info`, and asked again only when `/info` names another.
const DEFAULT_ROOT: &str = "/var/lib/docker";

/// Prints the free KiB where Docker keeps its data by default, for [`warning_in`].
pub fn free_kib_argv() -> Argv {
    free_kib_in(DEFAULT_ROOT)
}

/// Prints the free KiB of the file system holding `dir` (its nearest existing folder).
fn free_kib_in(dir: &str) -> Argv {
    let script = r#"d=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; df -Pk -- "$d" | awk 'NR==2 {print $4}'"#;
    Argv::script(script, &[dir]).step("free space for Docker's images")
}

/// The Docker Engine API request saying where Docker keeps its data, for [`warning_in`].
pub fn info_request() -> Request {
    Request::get_unix(DOCKER_SOCKET, "/info")
}

/// Where the Engine keeps images and containers (`DockerRootDir` of its answer to
/// [`info_request`]; empty when it does not say), or why there is no answer.
fn root_dir_in(answer: Result<Answer>) -> std::result::Result<String, String> {
    let response = answer.map_err(|e| e.to_string())?.response().ok_or("not an HTTP answer")?;
    if response.status != 200 {
        return Err(format!("the Docker Engine API answered {}: {}", response.status, one_line(&response.body, 120)));
    }
    let info: serde_json::Value =
        serde_json::from_str(&response.body).map_err(|e| format!("the Docker Engine API gave unexpected JSON: {e}"))?;
    Ok(info["DockerRootDir"].as_str().unwrap_or_default().to_string())
}

/// The Docker Engine API request for the size of `fleet`'s Rocket.Chat image, for [`warning_in`].
pub fn image_request(fleet: &Fleet) -> Request {
    Request::get_unix(DOCKER_SOCKET, &format!("/images/{}/json", fleet.images.rocketchat))
}

/// The warning for `conn`'s host, if it lacks room, from the Engine's answers to
/// [`info_request`] and [`image_request`] and what [`free_kib_argv`] printed.
/// Docker's data elsewhere than the default root costs one more `df`.
pub fn warning_in(conn: &Connection, info: Result<Answer>, image: Result<Answer>, free_kib: &str) -> Result<Option<String>> {
    let root_dir = root_dir_in(info).map_err(|why| conn.fail(format!("the Docker Engine's /info: {why}")))?;
    // A missing image (404: not pulled yet) leaves nothing to compare with.
    let image_bytes = image?
        .response()
        .filter(|response| response.status == 200)
        .and_then(|response| serde_json::from_str::<serde_json::Value>(&response.body).ok())
        .and_then(|image| image["Size"].as_u64())
        .unwrap_or(0);
    let free = if root_dir.is_empty() || root_dir == DEFAULT_ROOT {
        free_kib.to_string()
    } else {
        conn.run(&free_kib_in(&root_dir))?.stdout_text()
    };
    Ok(warning(conn.name(), free.trim().parse().unwrap_or(0), image_bytes))
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
        let conn = remote.host(&host.name);
        let requests = [info_request(), image_request(fleet), Request::exec(free_kib_argv())];
        let mut answers = conn.batch(&requests).into_iter();
        let mut next = || answers.next().expect("one answer per request");
        let (info, image) = (next(), next());
        let free = next()?.output().map(|output| output.stdout_text()).unwrap_or_default();
        warning_in(conn, info, image, &free)
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

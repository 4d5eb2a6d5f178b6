//! Image tags from a container registry (Docker Registry HTTP API v2 `tags/list`), with the
//! anonymous bearer-token flow public registries use (Docker Hub, registry.rocket.chat), and
//! release specs (`8.1.0`, `8.x`, `8.1.x`) resolved against those tags.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, LINK, WWW_AUTHENTICATE};
use reqwest::{Client, StatusCode};

use crate::error::{Error, Result};
use crate::fleet::Release;

/// What the user asked for with `--release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseSpec {
    Exact(Release),
    /// `X.x`: the newest stable release of a major.
    Major(u64),
    /// `X.Y.x`: the newest stable patch of a minor.
    Minor(u64, u64),
}

impl ReleaseSpec {
    pub fn parse(text: &str) -> Option<ReleaseSpec> {
        if let Some(release) = Release::parse(text) {
            return Some(ReleaseSpec::Exact(release));
        }
        let number = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten();
        match text.split('.').collect::<Vec<_>>()[..] {
            [major, "x"] => Some(ReleaseSpec::Major(number(major)?)),
            [major, minor, "x"] => Some(ReleaseSpec::Minor(number(major)?, number(minor)?)),
            _ => None,
        }
    }

    /// The newest stable tag matching the spec (an exact release must be among the tags).
    pub fn resolve(&self, tags: &[String]) -> Option<Release> {
        let releases = tags.iter().filter_map(|t| Release::parse(t));
        match self {
            ReleaseSpec::Exact(release) => releases.into_iter().find(|r| r == release),
            ReleaseSpec::Major(major) => {
                releases.filter(|r| r.is_stable() && r.major == *major).max()
            }
            ReleaseSpec::Minor(major, minor) => releases
                .filter(|r| r.is_stable() && r.major == *major && r.minor == *minor)
                .max(),
        }
    }
}

/// A repository as `docker pull` reads it: registry host and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub registry: String,
    pub path: String,
}

impl Repository {
    pub fn parse(repository: &str) -> Repository {
        let (first, rest) = repository.split_once('/').unwrap_or(("", repository));
        let has_registry = first.contains('.') || first.contains(':') || first == "localhost";
        let (registry, path) = if has_registry { (first, rest.to_string()) } else { ("docker.io", repository.to_string()) };
        if registry == "docker.io" || registry == "index.docker.io" {
            let path = if path.contains('/') { path } else { format!("library/{path}") };
            return Repository { registry: "registry-1.docker.io".into(), path };
        }
        Repository { registry: registry.to_string(), path }
    }
}

/// At most this many pages of tags are read (1000 tags a page): a registry whose `Link`
/// headers never end must not keep rcfleet asking.
const MAX_PAGES: usize = 100;

/// Every tag of `repository` (following pagination), over HTTPS. Only with `insecure` (the
/// inventory's `images.rocketchat.insecure = true`, for a private registry without TLS) is a
/// failed HTTPS connection retried over plain HTTP: otherwise anyone on the path could make
/// HTTPS fail and answer in clear text which release `8.x` means.
pub async fn tags(repository: &str, insecure: bool) -> Result<Vec<String>> {
    let repo = Repository::parse(repository);
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::failed(format!("cannot build an HTTP client: {e}")))?;
    let fail = |what: String| {
        Error::failed(format!(
            "listing the tags of {repository} at {}: {what}; check that this machine reaches the registry",
            repo.registry
        ))
    };
    let mut scheme = "https";
    let mut next = format!("/v2/{}/tags/list?n=1000", repo.path);
    let mut token: Option<String> = None;
    let mut tags = Vec::new();
    for _ in 0..MAX_PAGES {
        let url = format!("{scheme}://{}{next}", repo.registry);
        let mut request = client.get(&url);
        if let Some(token) = &token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = match request.send().await {
            Ok(response) => response,
            // A registry without TLS, marked insecure by the operator: ask it over plain HTTP.
            Err(err) if insecure && scheme == "https" && (err.is_connect() || err.is_request()) => {
                scheme = "http";
                continue;
            }
            Err(err) if scheme == "https" && err.is_connect() => {
                return Err(fail(format!(
                    "{} (HTTPS); if this registry speaks only plain HTTP on a trusted network, set \
                     `insecure = true` in [images] rocketchat = {{ ... }}",
                    error_chain(&err)
                )))
            }
            Err(err) => return Err(fail(error_chain(&err))),
        };
        if response.status() == StatusCode::UNAUTHORIZED && token.is_none() {
            token = Some(bearer_token(&client, response.headers()).await.map_err(fail)?);
            continue;
        }
        if !response.status().is_success() {
            return Err(fail(format!("status {}", response.status())));
        }
        let link = response.headers().get(LINK).and_then(|v| v.to_str().ok()).map(str::to_string);
        let page: serde_json::Value = response.json().await.map_err(|e| fail(format!("unexpected answer: {e}")))?;
        tags.extend(page["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)));
        match link.and_then(|link| next_page(&link)) {
            Some(path) => next = path,
            None => return Ok(tags),
        }
    }
    Err(fail(format!("it sent more than {MAX_PAGES} pages of tags")))
}

/// An error with its causes ("error sending request: ... : invalid peer certificate ..."):
/// reqwest's own text alone does not say what failed.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// An anonymous pull token from the realm named in `WWW-Authenticate: Bearer realm=...`.
async fn bearer_token(client: &Client, headers: &HeaderMap) -> std::result::Result<String, String> {
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or("the registry asks for authentication but says not how")?;
    let params = challenge_params(challenge).ok_or_else(|| format!("unsupported authentication: {challenge}"))?;
    let realm = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()).ok_or("no realm in the challenge")?;
    let query: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k == "service" || k == "scope").collect();
    let answer: serde_json::Value = client
        .get(&realm)
        .query(&query)
        .send()
        .await
        .map_err(|e| format!("token request to {realm} failed: {e}"))?
        .json()
        .await
        .map_err(|e| format!("token answer from {realm} is not JSON: {e}"))?;
    answer["token"].as_str().or(answer["access_token"].as_str()).map(str::to_string).ok_or_else(|| format!("no token from {realm}"))
}

/// `Bearer realm="a",service="b",scope="c"` → [(realm, a), (service, b), (scope, c)].
fn challenge_params(challenge: &str) -> Option<Vec<(String, String)>> {
    let rest = challenge.strip_prefix("Bearer ").or_else(|| challenge.strip_prefix("bearer "))?;
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let end = after.find('"')?;
        params.push((key.trim().to_string(), after[..end].to_string()));
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(params)
}

/// The path of `<...>; rel="next"` in a Link header.
fn next_page(link: &str) -> Option<String> {
    let (target, rel) = link.split_once(';')?;
    rel.contains("rel=\"next\"").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn specs_pick_the_newest_stable_match() {
        let lab = tags(&["7.9.0", "7.10.0", "8.0.0", "8.0.1", "8.1.0", "8.2.0-rc.1", "9.0.0", "latest", "develop"]);
        let resolve = |spec: &str| ReleaseSpec::parse(spec).unwrap().resolve(&lab).map(|r| r.to_string());
        assert_eq!(resolve("7.x").as_deref(), Some("7.10.0"));
        assert_eq!(resolve("8.0.x").as_deref(), Some("8.0.1"));
        assert_eq!(resolve("8.x").as_deref(), Some("8.1.0"));
        assert_eq!(resolve("8.1.0").as_deref(), Some("8.1.0"));
        assert_eq!(resolve("8.3.0"), None);
        assert_eq!(resolve("6.x"), None);
        for bad in ["8", "x", "8.x.x", "v8.x", "8.1.0.x", "latest"] {
            assert!(ReleaseSpec::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn repositories_name_their_registry() {
        assert_eq!(
            Repository::parse("registry.rocket.chat/rocketchat/rocket.chat"),
            Repository { registry: "registry.rocket.chat".into(), path: "rocketchat/rocket.chat".into() }
        );
        assert_eq!(
            Repository::parse("docker.io/nats"),
            Repository { registry: "registry-1.docker.io".into(), path: "library/nats".into() }
        );
        assert_eq!(Repository::parse("rocketchat/rocket.chat").registry, "registry-1.docker.io");
        assert_eq!(Repository::parse("10.1.2.3:5000/rocketchat/rocket.chat").registry, "10.1.2.3:5000");
    }

    #[test]
    fn bearer_challenges_and_links_are_read() {
        let params = challenge_params(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nats:pull""#).unwrap();
        assert_eq!(params[0], ("realm".to_string(), "https://auth.docker.io/token".to_string()));
        assert_eq!(params[2].1, "repository:library/nats:pull");
        assert_eq!(next_page(r#"</v2/x/tags/list?n=2&last=b>; rel="next""#).as_deref(), Some("/v2/x/tags/list?n=2&last=b"));
    }
}

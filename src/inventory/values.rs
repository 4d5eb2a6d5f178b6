//! Checks of single values: names, addresses, URLs, image references. Each returns `Err` with
//! the "what is wrong; how to fix it" half of a message. They are strict on purpose: every value
//! that passes may reach a rendered file or a remote command line.

use std::net::IpAddr;

pub type Check = Result<(), String>;

/// A workspace or host name: lowercase letters, digits and '-', starting with a letter.
/// These become compose project names, directory names and instance names.
pub fn name(text: &str) -> Check {
    let mut chars = text.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.ends_with('-')
        && text.len() <= 40;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a valid name; use up to 40 lowercase letters, digits and '-', starting with a letter"
        ))
    }
}

/// A DNS name (RFC 1123 labels).
pub fn dns_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An address rcfleet or another host connects to: an IPv4 address or a DNS name.
///
/// IPv6 literals are refused rather than half supported: the address ends up as `host:port`
/// in Traefik's server URLs, Prometheus' targets, the MongoDB replica-set members and
/// connection string and NATS' URL, each of which would need `[...]` brackets, and the lab
/// (the only place rcfleet is tested end to end) has no IPv6. A DNS name that resolves to an
/// IPv6 address is accepted: the URLs then hold the name.
pub fn address(text: &str) -> Check {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Ok(()),
        Ok(IpAddr::V6(_)) => Err(format!(
            "{text:?} is an IPv6 address, which rcfleet does not support (it builds host:port URLs for Traefik, \
             Prometheus, MongoDB and NATS from it); use the host's IPv4 address or a DNS name"
        )),
        Err(_) if dns_name(text) && !looks_like_bad_ipv4(text) => Ok(()),
        Err(_) => Err(format!("{text:?} is not an IP address or a DNS name; write e.g. \"10.0.0.5\" or \"db1.internal\"")),
    }
}

/// `300.1.2.3` is a valid DNS label sequence but surely a mistyped IPv4 address.
fn looks_like_bad_ipv4(text: &str) -> bool {
    text.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

/// The public domain Traefik routes: a DNS name.
pub fn domain(text: &str) -> Check {
    if dns_name(text) && !looks_like_bad_ipv4(text) {
        Ok(())
    } else {
        Err(format!("{text:?} is not a domain name; write e.g. \"chat.example.com\""))
    }
}

/// `http(s)://host[:port][/path]` with a host that is a domain; returns the host.
pub fn root_url(text: &str) -> Result<String, String> {
    let how = "write e.g. \"https://chat.example.com\"";
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} must start with https:// or http://; {how}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if !dns_name(host) {
        return Err(format!("{text:?} has no valid host name; {how}"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{text:?} has an invalid port; {how}"));
        }
    }
    let path_ok = path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if !path_ok || path.contains("//") {
        return Err(format!("{text:?} has characters not allowed in its path; use letters, digits, '/', '-', '.', '_', '~'"));
    }
    Ok(host.to_string())
}

/// An e-mail address for Let's Encrypt: `local@domain`, no spaces or quotes.
pub fn email(text: &str) -> Check {
    let ok = match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
                && dns_name(domain)
                && domain.contains('.')
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not an e-mail address; write e.g. \"ops@example.com\""))
    }
}

/// An absolute path on a server made of safe characters; it reaches compose files and commands.
pub fn server_path(text: &str) -> Check {
    let ok = text.starts_with('/')
        && text.len() > 1
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        && !text.split('/').any(|part| part == "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not an absolute path of letters, digits, '/', '.', '_' and '-'; write e.g. \"/opt/rcfleet\""
        ))
    }
}

/// Folders every local user of a server may write to: whoever can create entries there can
/// plant a directory or symlink where rcfleet's files (secrets, compose files run as root) go.
const WORLD_WRITABLE: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// The deploy directory: a server path outside the world-writable folders.
pub fn deploy_dir(text: &str) -> Check {
    server_path(text)?;
    let normal = text.trim_end_matches('/');
    let parts: Vec<&str> = normal.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let under = WORLD_WRITABLE.iter().find(|shared| {
        let shared: Vec<&str> = shared.split('/').filter(|p| !p.is_empty()).collect();
        parts.starts_with(&shared)
    });
    match under {
        Some(shared) => Err(format!(
            "{text:?} is under {shared}, which every local user of the server can write to, so they could swap the \
             secrets and compose files rcfleet keeps there; use a folder only root can write, e.g. \"/opt/rcfleet\""
        )),
        None => Ok(()),
    }
}

/// An image repository: `[registry[:port]/]path`, lowercase path components.
pub fn image_repository(text: &str) -> Check {
    let parts: Vec<&str> = text.split('/').collect();
    let (registry, path) = match parts.as_slice() {
        [first, rest @ ..] if !rest.is_empty() && (first.contains('.') || first.contains(':') || *first == "localhost") => {
            (Some(*first), rest.to_vec())
        }
        _ => (None, parts.clone()),
    };
    let registry_ok = registry.is_none_or(|registry| {
        let (host, port) = registry.split_once(':').unwrap_or((registry, "1"));
        (dns_name(host) || host.parse::<IpAddr>().is_ok()) && port.parse::<u16>().is_ok()
    });
    let path_ok = !path.is_empty()
        && path.iter().all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        });
    if registry_ok && path_ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not an image repository; write e.g. \"registry.example.com:5000/rocketchat/rocket.chat\""
        ))
    }
}

/// An image tag: up to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'.
pub fn image_tag(text: &str) -> Check {
    let ok = !text.is_empty()
        && text.len() <= 128
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not an image tag; use letters, digits, '_', '.' and '-'"))
    }
}

/// A short identifier (replica-set or database name, SSH user).
pub fn identifier(text: &str, example: &str) -> Check {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not valid; use letters, digits, '_' and '-', e.g. \"{example}\""))
    }
}

/// A Prometheus duration such as `15d`, `12h`, `1y`.
pub fn retention(text: &str) -> Check {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit);
    if ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not a duration; write a number and a unit (s, m, h, d, w, y), e.g. \"15d\""))
    }
}

/// A MongoDB `major.minor` version such as `8.2`.
pub fn mongo_version(text: &str) -> Check {
    let ok = match text.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty()
                && !minor.is_empty()
                && major.chars().all(|c| c.is_ascii_digit())
                && minor.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{text:?} is not a MongoDB version; write major.minor, e.g. \"8.2\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words() {
        assert!(name("app1").is_ok());
        assert!(name("chat-eu").is_ok());
        for bad in ["App1", "1app", "a b", "a;b", "a-", "", "a$b"] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_ips_or_dns_names() {
        for good in ["10.0.0.1", "db.internal", "host-1"] {
            assert!(address(good).is_ok(), "{good}");
        }
        for ipv6 in ["::1", "fd00::31", "2001:db8::1"] {
            assert!(address(ipv6).unwrap_err().contains("IPv6"), "{ipv6}");
        }
        for bad in ["300.1.2.3", "a b", "host;rm", "", "-x", "a..b", "ho`st`"] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deploy_dirs_stay_out_of_world_writable_folders() {
        for good in ["/opt/rcfleet", "/srv/tmp", "/var/lib/rcfleet", "/tmpfiles/x"] {
            assert!(deploy_dir(good).is_ok(), "{good}");
        }
        for bad in ["/tmp", "/tmp/rcfleet", "/var/tmp/x", "/dev/shm/rc", "//tmp/x", "/./tmp/x", "/tmp/"] {
            assert!(deploy_dir(bad).unwrap_err().contains("every local user"), "{bad}");
        }
        assert!(deploy_dir("relative").unwrap_err().contains("absolute path"));
    }

    #[test]
    fn root_urls_give_their_host() {
        assert_eq!(root_url("https://chat.example.com").unwrap(), "chat.example.com");
        assert_eq!(root_url("http://chat.lab.test:8080/rc").unwrap(), "chat.lab.test");
        for bad in ["chat.example.com", "https://", "https://a b", "https://x.com/\"a", "ftp://x.com"] {
            assert!(root_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_references() {
        assert!(image_repository("registry.rocket.chat/rocketchat/rocket.chat").is_ok());
        assert!(image_repository("10.1.2.3:5000/nats").is_ok());
        assert!(image_repository("nats").is_ok());
        assert!(image_repository("Nats").is_err());
        assert!(image_repository("a b").is_err());
        assert!(image_tag("8.2-ubi8").is_ok());
        assert!(image_tag("-x").is_err());
    }

    #[test]
    fn retention_and_versions() {
        assert!(retention("15d").is_ok());
        assert!(retention("15").is_err());
        assert!(retention("d").is_err());
        assert!(mongo_version("8.2").is_ok());
        assert!(mongo_version("8").is_err());
    }
}

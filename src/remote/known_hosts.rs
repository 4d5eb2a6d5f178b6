//! Host-key verification against an OpenSSH known_hosts file, done here rather than by
//! libssh2 because libssh2 stops at the first line it cannot parse, cannot say which line
//! matched, falls back from `[host]:port` to `host`, and rewrites the whole file when adding.
//! This reader understands plain, wildcard, negated and hashed (`|1|salt|hmac`) host
//! patterns and the `@revoked` marker; `@cert-authority` lines are ignored (libssh2 cannot
//! verify host certificates). New hosts are recorded by appending exactly one line.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Host-key algorithms in OpenSSH's order of preference, by the key type a known_hosts line
/// records. `ssh-rsa` keys are offered with SHA-2 signatures only (libssh2 1.11.2 disables SHA-1).
const ALGORITHMS: [(&str, &str); 5] = [
    ("ssh-ed25519", "ssh-ed25519"),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
    ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"),
    ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"),
    ("ssh-rsa", "rsa-sha2-512,rsa-sha2-256"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    patterns: String,
    key_type: String,
    blob: Vec<u8>,
}

/// A loaded known_hosts file.
#[derive(Debug, Clone)]
pub(crate) struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// A recorded key that differs from the one the server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub line: usize,
    pub key_type: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Match { line: usize },
    Mismatch(Vec<Recorded>),
    Revoked { line: usize },
    Unknown,
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The key type named inside a public-key blob (its first SSH string).
pub(crate) fn blob_key_type(blob: &[u8]) -> String {
    let len = blob.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    len.and_then(|len| blob.get(4..4 + len))
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .unwrap_or_else(|| "unknown".to_string())
}

impl KnownHosts {
    /// Reads the file; a missing file is an empty list. Lines that cannot be parsed are
    /// skipped, as OpenSSH does, instead of hiding every line after them.
    pub fn load(path: &Path) -> io::Result<KnownHosts> {
        let text = match fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(KnownHosts::parse(path, &text))
    }

    fn parse(path: &Path, text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(index, line)| parse_line(index + 1, line))
            .collect();
        KnownHosts { path: path.to_path_buf(), entries }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn matching(&self, host: &str, port: u16) -> impl Iterator<Item = &Entry> {
        let name = lookup_name(host, port);
        self.entries.iter().filter(move |entry| host_matches(&entry.patterns, &name))
    }

    /// The host-key algorithms to offer for this host: those of the key types recorded for
    /// it, so the server presents a key we can compare. `None` when nothing is recorded.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Option<String> {
        let recorded: Vec<&str> = self
            .matching(host, port)
            .filter(|entry| entry.marker == Marker::None)
            .map(|entry| entry.key_type.as_str())
            .collect();
        let list: Vec<&str> = ALGORITHMS
            .iter()
            .filter(|(key_type, _)| recorded.contains(key_type))
            .map(|(_, algorithms)| *algorithms)
            .collect();
        (!list.is_empty()).then(|| list.join(","))
    }

    pub fn check(&self, host: &str, port: u16, blob: &[u8]) -> Verdict {
        let mut differing = Vec::new();
        let mut matched = None;
        for entry in self.matching(host, port) {
            match entry.marker {
                Marker::CertAuthority => {}
                Marker::Revoked if entry.blob == blob => return Verdict::Revoked { line: entry.line },
                Marker::Revoked => {}
                Marker::None if entry.blob == blob => {
                    matched.get_or_insert(entry.line);
                }
                Marker::None => differing.push(Recorded {
                    line: entry.line,
                    key_type: entry.key_type.clone(),
                    fingerprint: fingerprint(&entry.blob),
                }),
            }
        }
        match matched {
            Some(line) => Verdict::Match { line },
            None if differing.is_empty() => Verdict::Unknown,
            None => Verdict::Mismatch(differing),
        }
    }
}

/// Appends one line for a newly trusted host; the rest of the file is never rewritten.
/// Returns the number of the line written.
pub(crate) fn append(path: &Path, host: &str, port: u16, blob: &[u8]) -> io::Result<usize> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let existing = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let needs_newline = existing.last().is_some_and(|b| *b != b'\n');
    let line = format!(
        "{}{} {} {}\n",
        if needs_newline { "\n" } else { "" },
        lookup_name(host, port),
        blob_key_type(blob),
        STANDARD.encode(blob)
    );
    let mut file = fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    let lines_before = existing.iter().filter(|b| **b == b'\n').count() + usize::from(needs_newline);
    Ok(lines_before + 1)
}

fn parse_line(line: usize, text: &str) -> Option<Entry> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        _ if first.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let blob = STANDARD.decode(fields.next()?).ok()?;
    if blob_key_type(&blob) != key_type {
        return None;
    }
    Some(Entry { line, marker, patterns: first.to_string(), key_type, blob })
}

/// OpenSSH's rule: some positive pattern matches and no negated pattern does.
fn host_matches(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let mut positive = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_matches(&negated.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if wildcard_matches(&pattern.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            positive = true;
        }
    }
    positive
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else { return false };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else { return false };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` matches any run of characters, `?` exactly one.
fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(key_type: &str, body: &[u8]) -> Vec<u8> {
        let mut blob = (key_type.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(key_type.as_bytes());
        blob.extend_from_slice(body);
        blob
    }

    fn line(patterns: &str, blob: &[u8]) -> String {
        format!("{patterns} {} {}", blob_key_type(blob), STANDARD.encode(blob))
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn known(lines: &[String]) -> KnownHosts {
        KnownHosts::parse(Path::new("/k"), &lines.join("\n"))
    }

    #[test]
    fn plain_and_port_entries_match_only_their_port() {
        let ed = blob("ssh-ed25519", b"key-a");
        let kh = known(&[line("10.0.0.1", &ed), line("[10.0.0.2]:2222", &ed)]);
        assert_eq!(kh.check("10.0.0.1", 22, &ed), Verdict::Match { line: 1 });
        assert_eq!(kh.check("10.0.0.2", 2222, &ed), Verdict::Match { line: 2 });
        // Stricter than libssh2: `host` does not vouch for `[host]:port`.
        assert_eq!(kh.check("10.0.0.1", 2222, &ed), Verdict::Unknown);
        assert_eq!(kh.check("10.0.0.2", 22, &ed), Verdict::Unknown);
    }

    #[test]
    fn a_changed_key_is_a_mismatch_naming_the_line_and_fingerprint() {
        let old = blob("ssh-ed25519", b"old");
        let new = blob("ssh-ed25519", b"new");
        let kh = known(&["# comment".to_string(), line("db,10.0.0.1", &old)]);
        let Verdict::Mismatch(recorded) = kh.check("10.0.0.1", 22, &new) else { panic!() };
        assert_eq!(recorded, vec![Recorded { line: 2, key_type: "ssh-ed25519".into(), fingerprint: fingerprint(&old) }]);
    }

    #[test]
    fn hashed_entries_match() {
        let ed = blob("ssh-ed25519", b"k");
        let kh = known(&[line(&hashed("10.0.0.5", b"0123456789abcdefghij"), &ed), line(&hashed("[h]:2200", b"salt"), &ed)]);
        assert_eq!(kh.check("10.0.0.5", 22, &ed), Verdict::Match { line: 1 });
        assert_eq!(kh.check("h", 2200, &ed), Verdict::Match { line: 2 });
        assert_eq!(kh.check("10.0.0.6", 22, &ed), Verdict::Unknown);
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let ed = blob("ssh-ed25519", b"k");
        let kh = known(&[line("*.lab,!bad.lab", &ed), format!("@revoked {}", line("evil.lab", &ed))]);
        assert_eq!(kh.check("app1.lab", 22, &ed), Verdict::Match { line: 1 });
        assert_eq!(kh.check("bad.lab", 22, &ed), Verdict::Unknown);
        assert_eq!(kh.check("evil.lab", 22, &ed), Verdict::Revoked { line: 2 });
        assert!(wildcard_matches("app?", "app1") && !wildcard_matches("app?", "app10"));
        assert!(wildcard_matches("*", "") && wildcard_matches("a*b*c", "aXbYc") && !wildcard_matches("a*c", "ab"));
    }

    #[test]
    fn bad_lines_do_not_hide_later_ones() {
        let ed = blob("ssh-ed25519", b"k");
        let kh = known(&["garbage".into(), "host ssh-ed25519 !!!notbase64".into(), "@weird x y z".into(), line("h", &ed)]);
        assert_eq!(kh.check("h", 22, &ed), Verdict::Match { line: 4 });
    }

    #[test]
    fn algorithms_follow_recorded_key_types() {
        let kh = known(&[line("h", &blob("ssh-rsa", b"r")), line("h", &blob("ecdsa-sha2-nistp256", b"e"))]);
        assert_eq!(kh.algorithms_for("h", 22).unwrap(), "ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256");
        assert_eq!(kh.algorithms_for("other", 22), None);
    }

    #[test]
    fn append_adds_exactly_one_line_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let ed = blob("ssh-ed25519", b"k");
        assert_eq!(append(&path, "h", 22, &ed).unwrap(), 1);
        fs::write(&path, format!("# keep me\n{}", line("x", &ed))).unwrap(); // no final newline
        assert_eq!(append(&path, "h", 2222, &ed).unwrap(), 3);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("# keep me\n{}\n[h]:2222 ssh-ed25519 {}\n", line("x", &ed), STANDARD.encode(&ed)));
        assert_eq!(KnownHosts::load(&path).unwrap().check("h", 2222, &ed), Verdict::Match { line: 3 });
    }

    #[test]
    fn fingerprint_matches_ssh_keygen_format() {
        // sha256("abc") is ba7816bf...15ad; base64 without the trailing '='.
        let fp = fingerprint(b"abc");
        assert_eq!(fp, "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
    }
}

use std::io::Write;

extern "C" fn on_term(_sig: libc::c_int) {
    // Exit at once, no drain: the real Rocket.Chat does not drain either.
    unsafe { libc::_exit(0) }
}

/// PID 1 in a container ignores SIGTERM unless a handler is installed.
pub fn exit_on_sigterm() {
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
}

/// Contents of a file baked into the image (e.g. /etc/standin/version).
pub fn baked(name: &str) -> Option<String> {
    let dir = std::env::var("STANDIN_ETC_FOR_LOCAL_TESTS_ONLY").unwrap_or_else(|_| "/etc/standin".into());
    std::fs::read_to_string(format!("{dir}/{name}")).ok().map(|s| s.trim().to_string())
}

pub fn log(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // civil from days (Howard Hinnant)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `--flag=value` or `--flag value`; returns (flags, positionals). Flags in `booleans` take no value.
pub fn parse_flags(args: &[String], booleans: &[&str]) -> (Vec<(String, String)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut pos = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with('-') && a.len() > 1 {
            let trimmed = a.trim_start_matches('-');
            if let Some((k, v)) = trimmed.split_once('=') {
                flags.push((k.to_string(), v.to_string()));
            } else if booleans.contains(&trimmed) {
                flags.push((trimmed.to_string(), String::new()));
            } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                flags.push((trimmed.to_string(), args[i + 1].clone()));
                i += 1;
            } else {
                flags.push((trimmed.to_string(), String::new()));
            }
        } else {
            pos.push(a.clone());
        }
        i += 1;
    }
    (flags, pos)
}

pub fn flag<'a>(flags: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    flags
        .iter()
        .rev()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// `%XX` sequences decoded (URI user info and query values).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && text.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}

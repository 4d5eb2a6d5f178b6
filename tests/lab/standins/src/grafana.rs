//! Grafana stand-in: checks provisioning files like Grafana does at start, then serves
//! `/api/health` (and a few authenticated read-only endpoints for tests). The admin user lives
//! in `<GF_PATHS_DATA>/grafana.db`, created with GF_SECURITY_ADMIN_PASSWORD(__FILE) on the
//! first start only; `grafana cli admin reset-admin-password` changes it.
use crate::http::{self, Request, Response};
use crate::util;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, exts, out);
        } else if p.extension().and_then(|e| e.to_str()).map(|e| exts.contains(&e)).unwrap_or(false) {
            out.push(p);
        }
    }
}

fn log(level: &str, msg: &str, extra: &str) {
    util::log(&format!("logger=standin t={} level={level} msg=\"{msg}\"{}{extra}", util::now_rfc3339(), if extra.is_empty() { "" } else { " " }));
}

pub fn main(args: Vec<String>) -> i32 {
    match args.first().map(String::as_str) {
        Some("cli") => return cli(&args[1..]),
        Some("server") | None => {}
        Some(other) => {
            eprintln!("Error: unknown command {other:?} (the stand-in knows `server` and `cli`)");
            return 1;
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let version = util::baked("version").unwrap_or_else(|| "12.0.2".into());
    let prov = env("GF_PATHS_PROVISIONING").unwrap_or_else(|| "/etc/grafana/provisioning".into());
    let addr = env("GF_SERVER_HTTP_ADDR").unwrap_or_else(|| "0.0.0.0".into());
    let port = env("GF_SERVER_HTTP_PORT").unwrap_or_else(|| "3000".into());
    let admin_user = env("GF_SECURITY_ADMIN_USER").unwrap_or_else(|| "admin".into());
    let password = match env("GF_SECURITY_ADMIN_PASSWORD__FILE") {
        Some(f) => match std::fs::read_to_string(&f) {
            Ok(s) => s.trim_end_matches(['\n', '\r']).to_string(),
            Err(e) => {
                log("error", "could not read GF_SECURITY_ADMIN_PASSWORD__FILE", &format!("file={f} error=\"{e}\""));
                eprintln!("Error: could not read GF_SECURITY_ADMIN_PASSWORD__FILE {f}: {e}");
                return 1;
            }
        },
        None => env("GF_SECURITY_ADMIN_PASSWORD").unwrap_or_else(|| "admin".into()),
    };
    log("info", "Starting Grafana (rcfleet lab stand-in)", &format!("version={version}"));
    let db = Db::path();
    match Db::load(&db) {
        Ok(Some(_)) => log("info", "admin user exists; GF_SECURITY_ADMIN_* apply on first start only", ""),
        Ok(None) => {
            if let Err(e) = Db::create(&db, &admin_user, &password) {
                eprintln!("Error: cannot create {}: {e}", db.display());
                return 1;
            }
            log("info", "Created default admin", &format!("user={admin_user}"));
        }
        Err(e) => {
            eprintln!("Error: cannot read {}: {e}", db.display());
            return 1;
        }
    }
    // GF_SERVER_SERVE_FROM_SUB_PATH: the root URL's path is trimmed from every request path
    // (pkg/web/macaron.go, ServeHTTP: strings.TrimPrefix), so both forms are served.
    let sub_path = match env("GF_SERVER_SERVE_FROM_SUB_PATH").as_deref() {
        Some("true") => env("GF_SERVER_ROOT_URL")
            .and_then(|u| u.split_once("://").map(|(_, r)| r.to_string()))
            .and_then(|r| r.split_once('/').map(|(_, p)| format!("/{}", p.trim_end_matches('/'))))
            .filter(|p| p != "/")
            .unwrap_or_default(),
        _ => String::new(),
    };

    // Provisioning: every YAML file must parse; dashboard providers' JSON files too.
    let mut yamls = Vec::new();
    walk(Path::new(&prov), &["yml", "yaml"], &mut yamls);
    let mut datasources = Vec::new();
    let mut dashboards = Vec::new();
    for f in &yamls {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Error: failed to read provisioning file {}: {e}", f.display());
                return 1;
            }
        };
        let doc: yaml_serde::Value = match yaml_serde::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                log("error", "Failed to parse provisioning file", &format!("file={} error=\"{e}\"", f.display()));
                eprintln!("Error: ✗ failed to parse provisioning file {}: {e}", f.display());
                return 1;
            }
        };
        log("info", "Read provisioning file", &format!("file={}", f.display()));
        if let Some(ds) = doc.get("datasources").and_then(|d| d.as_sequence()) {
            for d in ds {
                if let Some(n) = d.get("name").and_then(|n| n.as_str()) {
                    datasources.push(json!({"name": n, "type": d.get("type").and_then(|t| t.as_str()), "url": d.get("url").and_then(|t| t.as_str())}));
                }
            }
        }
        if let Some(ps) = doc.get("providers").and_then(|d| d.as_sequence()) {
            for p in ps {
                let Some(path) = p.get("options").and_then(|o| o.get("path")).and_then(|p| p.as_str()) else { continue };
                let pp = Path::new(path);
                if !pp.exists() {
                    log("warn", "Cannot read directory", &format!("path={path}"));
                    continue;
                }
                let mut jsons = Vec::new();
                if pp.is_file() {
                    jsons.push(pp.to_path_buf());
                } else {
                    walk(pp, &["json"], &mut jsons);
                }
                for j in jsons {
                    let parsed = std::fs::read_to_string(&j)
                        .map_err(|e| e.to_string())
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
                    match parsed {
                        Ok(v) => {
                            dashboards.push(json!({"title": v.get("title"), "uid": v.get("uid"), "file": j.display().to_string()}));
                        }
                        Err(e) => {
                            log("error", "failed to load dashboard from", &format!("file={} error=\"{e}\"", j.display()));
                            eprintln!("Error: failed to load dashboard {}: {e}", j.display());
                            return 1;
                        }
                    }
                }
            }
        }
    }
    let listeners = match http::bind(&[format!("{addr}:{port}")]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: cannot listen on {addr}:{port}: {e}");
            return 1;
        }
    };
    log("info", "HTTP Server Listen", &format!("address={addr}:{port} protocol=http provisioned_files={} dashboards={}", yamls.len(), dashboards.len()));
    let ds = json!(datasources);
    let dash = json!(dashboards);
    let v = version.clone();
    let handler: Arc<http::Handler> = Arc::new(move |r: &Request| {
        // The database is read on every request, as the real server reads its users, so a
        // password the CLI sets works at once.
        let authed = r.header("authorization").is_some_and(|h| basic_auth_accepted(&db, h));
        let path = r.path.strip_prefix(sub_path.as_str()).filter(|p| !sub_path.is_empty() && (p.is_empty() || p.starts_with('/')));
        let path = match path {
            Some("") => "/",
            Some(p) => p,
            None => r.path.as_str(),
        };
        match path {
            "/api/health" => Response::json(200, json!({"database": "ok", "version": v}).to_string()),
            "/" | "/login" => Response::text(200, "Grafana (rcfleet lab stand-in)\n"),
            "/api/datasources" | "/api/search" | "/api/org" | "/api/user" if !authed => {
                Response::json(401, r#"{"message":"Invalid username or password"}"#)
            }
            "/api/datasources" => Response::json(200, ds.to_string()),
            "/api/search" => Response::json(200, dash.to_string()),
            "/api/org" => Response::json(200, r#"{"id":1,"name":"Main Org."}"#),
            "/api/user" => Response::json(200, json!({"login": "admin", "isGrafanaAdmin": true}).to_string()),
            _ => Response::json(404, r#"{"message":"Not found"}"#),
        }
    });
    http::serve(listeners, handler, true);
    0
}

/// The admin user in `<GF_PATHS_DATA>/grafana.db` (JSON here, SQLite in Grafana): login,
/// salt and a salted hash of the password, never the password.
struct Db;

impl Db {
    fn path() -> PathBuf {
        let data = std::env::var("GF_PATHS_DATA").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "/var/lib/grafana".into());
        Path::new(&data).join("grafana.db")
    }

    fn load(path: &Path) -> Result<Option<serde_json::Value>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn store(path: &Path, db: &serde_json::Value) -> Result<(), String> {
        let tmp = path.with_extension("db.tmp");
        std::fs::write(&tmp, db.to_string()).and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| e.to_string())
    }

    fn create(path: &Path, login: &str, password: &str) -> Result<(), String> {
        let salt = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        let db = json!({"user": [{"id": 1, "login": login, "is_admin": true, "salt": salt, "password": password_hash(password, &salt)}]});
        Db::store(path, &db)
    }
}

/// Not Grafana's PBKDF2: a salted FNV-1a, enough to keep the password out of the file.
fn password_hash(password: &str, salt: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in salt.bytes().chain([0u8]).chain(password.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// Whether an `Authorization: Basic ...` header names a user of the database with its password.
fn basic_auth_accepted(db: &Path, header: &str) -> bool {
    let Some(encoded) = header.strip_prefix("Basic ") else { return false };
    let Some(decoded) = base64_decode(encoded.trim()) else { return false };
    let Some((login, password)) = decoded.split_once(':') else { return false };
    let Ok(Some(db)) = Db::load(db) else { return false };
    db["user"].as_array().into_iter().flatten().any(|u| {
        u["login"] == json!(login) && u["password"] == json!(password_hash(password, u["salt"].as_str().unwrap_or_default()))
    })
}

/// `grafana cli [--homepath DIR] [--config FILE] admin reset-admin-password [--password-from-stdin]
/// [--user-id N] [PASSWORD]`, as Grafana's CLI (pkg/cmd/grafana-cli/commands/commands.go and
/// reset_password_command.go): the password from the first line of stdin or the first
/// argument, refused when 4 characters or fewer, the user must be an admin; errors exit 1.
fn cli(args: &[String]) -> i32 {
    match reset_admin_password(args) {
        Ok(()) => {
            println!("\nAdmin password changed successfully \u{2714}\n");
            0
        }
        Err(e) => {
            eprintln!("Error: \u{2717} {e}");
            1
        }
    }
}

fn reset_admin_password(args: &[String]) -> Result<(), String> {
    let mut rest = args.iter().map(String::as_str).peekable();
    // Global options take a value; the stand-in reads its paths from GF_PATHS_* instead.
    while let Some(flag) = rest.peek().copied().filter(|a| a.starts_with('-')) {
        rest.next();
        if !flag.contains('=') && matches!(flag.trim_start_matches('-'), "homepath" | "config" | "configOverrides" | "pluginsDir") {
            rest.next();
        }
    }
    match (rest.next(), rest.next()) {
        (Some("admin"), Some("reset-admin-password")) => {}
        (command, sub) => {
            return Err(format!("the stand-in knows only `admin reset-admin-password`, not {:?}", [command, sub].iter().flatten().collect::<Vec<_>>()))
        }
    }
    let (mut from_stdin, mut user_id, mut positional) = (false, 1i64, Vec::new());
    while let Some(arg) = rest.next() {
        match arg.trim_start_matches('-') {
            _ if !arg.starts_with('-') => positional.push(arg.to_string()),
            "password-from-stdin" => from_stdin = true,
            "password-from-stdin=true" => from_stdin = true,
            "password-from-stdin=false" => from_stdin = false,
            "user-id" => user_id = rest.next().and_then(|v| v.parse().ok()).ok_or("invalid value for flag -user-id")?,
            flag if flag.starts_with("user-id=") => {
                user_id = flag["user-id=".len()..].parse().map_err(|_| "invalid value for flag -user-id")?
            }
            flag => return Err(format!("flag provided but not defined: -{flag}")),
        }
    }
    let password = if from_stdin {
        print!("New Password: ");
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) => return Err("can't read password from stdin".into()),
            Ok(_) => line.trim_end_matches('\n').trim_end_matches('\r').to_string(),
            Err(e) => return Err(format!("can't read password from stdin: {e}")),
        }
    } else {
        positional.first().cloned().unwrap_or_default()
    };
    if password.len() <= 4 {
        return Err("new password is too short".into());
    }
    let path = Db::path();
    // Like Grafana's CLI, which initialises a missing database (with the default admin) first.
    if Db::load(&path)?.is_none() {
        let login = std::env::var("GF_SECURITY_ADMIN_USER").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "admin".into());
        Db::create(&path, &login, "admin")?;
    }
    let mut db = Db::load(&path)?.ok_or("could not read user from database. Error: user not found")?;
    let users = db["user"].as_array_mut().ok_or("could not read user from database. Error: user not found")?;
    let user = users.iter_mut().find(|u| u["id"] == json!(user_id)).ok_or("could not read user from database. Error: user not found")?;
    if user["is_admin"] != json!(true) {
        return Err("reset-admin-password can only be used to reset an admin user account".into());
    }
    let salt = user["salt"].as_str().unwrap_or_default().to_string();
    user["password"] = json!(password_hash(&password, &salt));
    Db::store(&path, &db).map_err(|e| format!("failed to update user password: {e}"))
}

fn base64_decode(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        bits = bits << 6 | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn b64() {
        assert_eq!(super::base64("admin:admin"), "YWRtaW46YWRtaW4=");
        assert_eq!(super::base64("ab"), "YWI=");
        for text in ["admin:admin", "ab", "a", "admin:S3CRET-grafana-4711", ""] {
            assert_eq!(super::base64_decode(&super::base64(text)).as_deref(), Some(text));
        }
    }
}

//! Grafana stand-in: checks provisioning files like Grafana does at start, then serves
//! `/api/health` (and a few authenticated read-only endpoints for tests).
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

pub fn main(_args: Vec<String>) -> i32 {
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
    let expected = format!("Basic {}", base64(&format!("{admin_user}:{password}")));
    let ds = json!(datasources);
    let dash = json!(dashboards);
    let v = version.clone();
    let handler: Arc<http::Handler> = Arc::new(move |r: &Request| {
        let authed = r.header("authorization") == Some(expected.as_str());
        match r.path.as_str() {
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
    }
}

//! Backups of the workspace database: `mongodump` archives on the database host, under the
//! deploy folder (`backups/`, 0600), named with their time and release, each with a one-line
//! JSON record beside it (`<archive>.json`: time, release, MongoDB, migration version, note).
//! After each new backup the oldest beyond `[backup] keep` are deleted. `backup`, `upgrade`
//! and `mongodb upgrade` all take theirs with [`take`]; `restore` reads [`archives`].

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::converge::pull_missing_images;
use super::hosts::{Hosts, CONCURRENCY};
use super::mongodb::facts;
use super::probe;
use super::report::{Outcome, Reporter};
use super::run::{Run, RunOptions, Secrets};
use super::secrets::{self, MongoLogin};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Instance, Release};
use crate::inventory;
use crate::remote::{self, Argv, ConnectOptions, Connection, ExecOptions, Stream};
use crate::render;

const SUFFIX: &str = ".archive.gz";

/// What rcfleet knows of an archive, written beside it when it is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC.
    pub created: String,
    /// The release whose data this is: the newest any instance reported (the inventory's when
    /// none answered). `restore` starts this release.
    pub release: String,
    /// `major.minor` of the MongoDB server dumped.
    pub mongodb: String,
    /// Rocket.Chat's migration control version in the dumped database.
    pub migrations: Option<i64>,
    pub note: Option<String>,
}

/// One archive on the database host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub path: String,
    pub bytes: u64,
    /// `None` for an archive without its record (not taken by this rcfleet).
    pub record: Option<Record>,
}

impl Archive {
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

pub struct BackupOptions {
    pub note: Option<String>,
    /// Also copy the archive to this folder on this machine.
    pub download: Option<PathBuf>,
    pub connect: ConnectOptions,
}

pub struct BackupOutcome {
    pub archive: Archive,
    pub downloaded: Option<PathBuf>,
    /// Archives deleted by retention.
    pub pruned: Vec<String>,
    pub keep: u32,
}

/// `rcfleet backup`: one new archive, retention, and the optional copy to this machine.
pub fn backup(inventory_path: &Path, options: &BackupOptions) -> Result<BackupOutcome> {
    if let Some(dir) = &options.download {
        if !dir.is_dir() {
            return Err(Error::bad_input(format!("--download {}: not a folder on this machine; create it first", dir.display())));
        }
    }
    let run = Run::open(
        inventory_path,
        &RunOptions { lock: Some("rcfleet backup".to_string()), secrets: Secrets::Load, ..RunOptions::new("backup", &options.connect) },
    )?;
    let (fleet, report, db) = (&run.fleet, &run.report, run.database());
    let login = secrets::mongo_admin(fleet, &run.secrets)?;
    let (archive, pruned) = take(fleet, &run.hosts, report, login.as_ref(), options.note.as_deref())?;
    let downloaded = match &options.download {
        Some(dir) => Some(download(db, &archive, dir, &report)?),
        None => None,
    };
    Ok(BackupOutcome { archive, downloaded, pruned, keep: fleet.backup.keep })
}

/// Takes a new archive of the workspace database and applies retention. Returns the archive
/// and the names of the archives retention deleted. The caller holds the deploy lock.
pub fn take(fleet: &Fleet, remote: &Hosts, report: &Reporter, login: Option<&MongoLogin>, note: Option<&str>) -> Result<(Archive, Vec<String>)> {
    let facts = facts::read(remote, fleet, login)?;
    take_with(fleet, remote, report, login, note, &facts)
}

/// [`take`] with MongoDB's facts already read under this run's lock (a mongosh run fewer).
pub fn take_with(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    login: Option<&MongoLogin>,
    note: Option<&str>,
    facts: &facts::Facts,
) -> Result<(Archive, Vec<String>)> {
    let host = fleet.database_host();
    let db = remote.host(&host.name);
    // `up` pulls the tools image with the database's; a fleet deployed before it gets it here,
    // before anything changes, rather than from `docker run` in the middle of the backup.
    pull_missing_images(fleet, host, db, report).map_err(|err| {
        Error::failed(format!(
            "{}; the backup needs {} on {}, nothing was changed (`rcfleet up --push-images` sends it to a host without a registry)",
            err,
            fleet.images.mongodb_tools,
            db.name()
        ))
    })?;
    let release = running_release(fleet, remote);
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let record = Record {
        created: created.clone(),
        release: release.to_string(),
        mongodb: facts.series(),
        migrations: facts.migrations,
        note: note.map(str::to_string),
    };
    let stamp = created.replace([':', '-'], "");
    let path = format!("{}/{stamp}-{release}{SUFFIX}", render::backups_dir(fleet));
    let (argv, config) = dump_command(fleet, &path, &record, login);
    let mut stdin = config.as_bytes();
    // A large database takes long to dump; the limit only keeps a wedged mongodump from hanging the run.
    let timeout = Some(std::time::Duration::from_secs(4 * 3600));
    let output = db.exec(&argv.step("backup (mongodump)"), ExecOptions { stdin: Some(&mut stdin), timeout, ..Default::default() })?;
    if !output.success() {
        return Err(Error::failed(format!("{}: the backup (mongodump) failed: {}; nothing was changed", db.name(), output.stderr_text().trim())));
    }
    let bytes = output.stdout_text().trim().parse().unwrap_or(0);
    report.step("backup", db.name(), format!("{path} ({})", size(bytes)));
    let pruned = prune(fleet, db, report)?;
    Ok((Archive { path, bytes, record: Some(record) }, pruned))
}

/// The newest release any instance reports, or the inventory's when none answers: the
/// migrations in the database are those of the newest release that ran on it.
fn running_release(fleet: &Fleet, remote: &Hosts) -> Release {
    let instances: Vec<&Instance> = fleet.instances().collect();
    let reported = remote::fan_out(&instances, CONCURRENCY, |i| i.name.clone(), |i| probe::instance_version(remote, i));
    reported
        .into_iter()
        .filter_map(|(_, version)| version.ok().flatten().and_then(|v| Release::parse(&v)))
        .chain(std::iter::once(fleet.workspace.release.clone()))
        .max()
        .expect("the inventory's release is there")
}

/// The archives on the database host, oldest first.
pub fn archives(fleet: &Fleet, db: &Connection) -> Result<Vec<Archive>> {
    let script = r#"dir=$1
[ -d "$dir" ] || exit 0
for f in "$dir"/*.archive.gz; do
  [ -f "$f" ] || continue
  printf '%s\t%s\t' "$f" "$(wc -c < "$f")"
  if [ -f "$f.json" ]; then tr -d '\n' < "$f.json"; fi
  printf '\n'
done"#;
    let output = db.run(&Argv::script(script, &[&render::backups_dir(fleet)]))?;
    let mut list: Vec<Archive> = output
        .stdout_text()
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let path = fields.next()?.to_string();
            let bytes = fields.next()?.trim().parse().ok()?;
            let record = fields.next().and_then(|r| serde_json::from_str(r).ok());
            Some(Archive { path, bytes, record })
        })
        .collect();
    list.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(list)
}

/// Deletes the oldest archives (and their records) beyond `[backup] keep`.
fn prune(fleet: &Fleet, db: &Connection, report: &Reporter) -> Result<Vec<String>> {
    let old = beyond_keep(fleet, db)?;
    if old.is_empty() {
        return Ok(Vec::new());
    }
    delete(db, &old)?;
    let names: Vec<String> = old.iter().map(|a| a.name().to_string()).collect();
    report.step("backup", db.name(), format!("retention (keep {}): deleted {}", fleet.backup.keep, names.join(", ")));
    Ok(names)
}

/// The oldest archives beyond `[backup] keep`, oldest first: what retention deletes.
pub fn beyond_keep(fleet: &Fleet, db: &Connection) -> Result<Vec<Archive>> {
    let list = archives(fleet, db)?;
    let excess = list.len().saturating_sub(fleet.backup.keep as usize);
    Ok(list.into_iter().take(excess).collect())
}

/// Deletes `old` archives and their records.
pub fn delete(db: &Connection, old: &[Archive]) -> Result<()> {
    let mut args: Vec<String> = Vec::new();
    for archive in old {
        args.push(archive.path.clone());
        args.push(format!("{}.json", archive.path));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    db.run(&Argv::script(r#"rm -f -- "$@""#, &refs))?;
    Ok(())
}

/// Copies `archive` into `dir` on this machine, streamed (never held in memory), 0600, kept
/// only when whole.
pub fn download(db: &Connection, archive: &Archive, dir: &Path, report: &Reporter) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let target = dir.join(archive.name());
    let partial = dir.join(format!(".{}.partial", archive.name()));
    let fail = |what: String| Error::failed(format!("copying {} to {}: {what}", archive.path, target.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| fail(e.to_string()))?;
    let mut write_error = None;
    let mut to_file = |stream: Stream, bytes: &[u8]| {
        if stream == Stream::Stdout && write_error.is_none() {
            write_error = file.write_all(bytes).err();
        }
    };
    let output = db.exec(&Argv::new("cat").args(["--", archive.path.as_str()]), ExecOptions { output: Some(&mut to_file), ..Default::default() });
    let finished = match (output, write_error) {
        (_, Some(err)) => Err(fail(format!("writing the copy failed: {err}"))),
        (Ok(output), None) if output.success() => file.sync_all().map_err(|e| fail(e.to_string())),
        (Ok(output), None) => Err(fail(output.stderr_text().trim().to_string())),
        (Err(err), None) => Err(fail(err.to_string())),
    };
    if let Err(err) = finished.and_then(|()| std::fs::rename(&partial, &target).map_err(|e| fail(e.to_string()))) {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    report.step("backup", "", format!("copied to {}", target.display()));
    Ok(target)
}

/// The dump's command for the database host, and what goes to its stdin. mongodump runs in a
/// throwaway container of the Database Tools image (`[images].mongodb_tools`: the server image
/// is not documented to contain the tools) on the host's network (MongoDB listens on the host's
/// 127.0.0.1), never pulling ([`take`] did); the archive streams out on stdout into a file on
/// the host, 0600 from the start and kept only if whole, its record beside it. With access
/// control it logs in as rcfleet's admin: the user in the URI, the password in a `--config`
/// document on stdin (never on a command line). The entrypoint is mongodump itself: the
/// image's own entrypoint drops to the `mongodb` user, who could not open `/dev/stdin` again (a
/// pipe owned by root). Prints the archive's size in bytes.
fn dump_command(fleet: &Fleet, path: &str, record: &Record, login: Option<&MongoLogin>) -> (Argv, String) {
    let (uri, config) = tools_login(fleet, Some(&fleet.mongodb.database), login);
    let script = r#"set -e
umask 077
path=$1 image=$2 uri=$3 record=$4
shift 4
trap 'rm -f -- "$path.partial"' EXIT
mkdir -p -- "$(dirname -- "$path")"
docker run --rm -i --pull never --network host --entrypoint mongodump "$image" --quiet --uri="$uri" "$@" --archive --gzip > "$path.partial"
test -s "$path.partial"
printf '%s\n' "$record" > "$path.json"
mv -f -- "$path.partial" "$path"
chmod 600 -- "$path" "$path.json"
wc -c < "$path""#;
    let image = fleet.images.mongodb_tools.to_string();
    let record = serde_json::to_string(record).expect("a record serialises");
    let mut args = vec![path, image.as_str(), uri.as_str(), record.as_str()];
    if login.is_some() {
        args.push("--config=/dev/stdin");
    }
    (Argv::script(script, &args), config)
}

/// The URI the Database Tools connect with (the admin user in it, never the password) and the
/// `--config` document holding the password, for stdin; both empty of a login without access
/// control. `database`: the one the URI names (mongodump dumps only it).
pub fn tools_login(fleet: &Fleet, database: Option<&str>, login: Option<&MongoLogin>) -> (String, String) {
    let (user, config) = match login {
        Some(login) => (format!("{}@", login.user), format!("password: {}\n", serde_json::to_string(&login.password).expect("JSON of a string"))),
        None => (String::new(), String::new()),
    };
    let uri = format!(
        "mongodb://{user}127.0.0.1:{}/{}?directConnection=true{}",
        fleet.mongodb.port,
        database.unwrap_or(""),
        if login.is_some() { "&authSource=admin" } else { "" }
    );
    (uri, config)
}

/// `12.3 MiB`, `840 KiB`, `512 B`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// `rcfleet backup list`.
pub struct Listing {
    pub host: String,
    pub keep: u32,
    pub archives: Vec<Archive>,
}

pub fn list(inventory_path: &Path, connect: &ConnectOptions) -> Result<Listing> {
    let fleet = inventory::load(inventory_path)?;
    let remote = Hosts::connect_database(&fleet, connect)?;
    let db = remote.host(&fleet.database_host().name);
    Ok(Listing { host: db.name().to_string(), keep: fleet.backup.keep, archives: archives(&fleet, db)? })
}

fn archive_json(archive: &Archive) -> Value {
    json!({
        "path": archive.path,
        "bytes": archive.bytes,
        "created": archive.record.as_ref().map(|r| &r.created),
        "release": archive.record.as_ref().map(|r| &r.release),
        "mongodb": archive.record.as_ref().map(|r| &r.mongodb),
        "migrations": archive.record.as_ref().and_then(|r| r.migrations),
        "note": archive.record.as_ref().and_then(|r| r.note.as_ref()),
    })
}

impl Outcome for Listing {
    fn to_text(&self) -> String {
        if self.archives.is_empty() {
            return format!("No backups on {} yet (`rcfleet backup` takes one).\n", self.host);
        }
        let mut out = format!("Backups on {} (newest last; the newest {} are kept):\n", self.host, self.keep);
        for archive in &self.archives {
            let (release, note) = match &archive.record {
                Some(r) => (format!("release {}, MongoDB {}", r.release, r.mongodb), r.note.clone().map(|n| format!("  \"{n}\"")).unwrap_or_default()),
                None => ("no record".to_string(), String::new()),
            };
            out.push_str(&format!("  {:<52} {:>10}  {release}{note}\n", archive.path, size(archive.bytes)));
        }
        out
    }

    fn to_json(&self) -> Value {
        json!({"host": self.host, "keep": self.keep, "archives": self.archives.iter().map(archive_json).collect::<Vec<_>>()})
    }
}

impl Outcome for BackupOutcome {
    fn to_text(&self) -> String {
        let mut out = format!("\nBackup: {} ({})\n", self.archive.path, size(self.archive.bytes));
        if let Some(record) = &self.archive.record {
            out.push_str(&format!("Release {}, MongoDB {}", record.release, record.mongodb));
            if let Some(m) = record.migrations {
                out.push_str(&format!(", migration version {m}"));
            }
            out.push('\n');
        }
        if let Some(local) = &self.downloaded {
            out.push_str(&format!("Copied to {}\n", local.display()));
        }
        if !self.pruned.is_empty() {
            out.push_str(&format!("Retention (keep {}): deleted {}\n", self.keep, self.pruned.join(", ")));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut document = archive_json(&self.archive);
        document["downloaded"] = json!(self.downloaded.as_ref().map(|p| p.display().to_string()));
        document["pruned"] = json!(self.pruned);
        document
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(extra: &str) -> Fleet {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        crate::inventory::parse(&format!("{text}{extra}"), Path::new("three-app-hosts.toml")).unwrap()
    }

    fn record() -> Record {
        Record { created: "2026-11-30T22:00:00Z".into(), release: "7.10.0".into(), mongodb: "6.0".into(), migrations: Some(300), note: Some("it's \"$(x)\"".into()) }
    }

    #[test]
    fn the_dump_runs_mongodump_from_the_tools_image_on_the_host_network_password_on_stdin() {
        let fleet = fleet("");
        assert_eq!(fleet.images.mongodb_tools.to_string(), "docker.io/mongo:8.2");
        let login = MongoLogin { user: "rcfleet-admin", password: "p@ss word\"$(x)".to_string() };
        let (argv, stdin) = dump_command(&fleet, "/opt/rcfleet/backups/a.archive.gz", &record(), Some(&login));
        let argv = argv.as_slice();
        assert!(argv.iter().all(|a| !a.contains("p@ss")), "the password must not be on the command line");
        assert_eq!(stdin, "password: \"p@ss word\\\"$(x)\"\n");
        assert_eq!(&argv[3..5], ["sh", "/opt/rcfleet/backups/a.archive.gz"]);
        assert_eq!(argv[5], "docker.io/mongo:8.2");
        assert!(argv[6].starts_with("mongodb://rcfleet-admin@127.0.0.1:") && argv[6].ends_with("&authSource=admin"), "{}", argv[6]);
        assert_eq!(serde_json::from_str::<Record>(&argv[7]).unwrap(), record(), "the record goes whole as one argument");
        assert_eq!(argv[8..], ["--config=/dev/stdin"]);
        let script = &argv[2];
        assert!(script.contains("docker run --rm -i --pull never --network host --entrypoint mongodump \"$image\""), "{script}");
        assert!(script.contains("umask 077") && script.contains("chmod 600"), "{script}");

        let mirrored = self::fleet("\n[images.mongodb_tools]\nrepository = \"mirror.example.org/mongo\"\ntag = \"8.0\"\n");
        let (argv, stdin) = dump_command(&mirrored, "/x", &record(), None);
        assert_eq!(argv.as_slice()[5], "mirror.example.org/mongo:8.0");
        assert_eq!(argv.as_slice().len(), 8, "no --config without a login");
        assert!(stdin.is_empty());
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(840 * 1024 + 5), "840 KiB");
        assert_eq!(size(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
    }

    #[test]
    fn retention_is_read_from_the_inventory() {
        assert_eq!(fleet("").backup.keep, crate::fleet::BackupPolicy::DEFAULT_KEEP);
        assert_eq!(fleet("\n[backup]\nkeep = 3\n").backup.keep, 3);
    }
}

//! Hooks: the operator's own executables in `.rcfleet/hooks/` next to the inventory, run on
//! this machine around `up` and `upgrade` (to announce a deploy in a chat room, page someone,
//! take a snapshot...). Variables `RCFLEET_*` describe the run. A failing `pre-*` hook stops
//! the command before any host is touched. A hook's output goes to stderr, so `--json` stays
//! a clean document on stdout.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::audit;
use crate::error::{Error, Result};
use crate::fleet::Fleet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PreUp,
    PostUp,
    PreUpgrade,
    PostUpgrade,
    UpgradeFailed,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreUp => "pre-up",
            Hook::PostUp => "post-up",
            Hook::PreUpgrade => "pre-upgrade",
            Hook::PostUpgrade => "post-upgrade",
            Hook::UpgradeFailed => "upgrade-failed",
        }
    }

    fn is_pre(self) -> bool {
        matches!(self, Hook::PreUp | Hook::PreUpgrade)
    }
}

/// The folder the hooks of `inventory` live in.
pub fn folder(inventory: &Path) -> PathBuf {
    let dir = inventory.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(".rcfleet").join("hooks")
}

/// One run of `up` or `upgrade`, as its hooks are told about it.
pub struct Run {
    inventory: PathBuf,
    command: &'static str,
    started: Instant,
    vars: Vec<(String, String)>,
}

impl Run {
    /// Starts the clock of a run of `command` (`up`, `upgrade`) over `fleet`.
    pub fn new(inventory: &Path, command: &'static str, fleet: &Fleet) -> Run {
        let hosts: Vec<&str> = fleet.hosts.iter().map(|h| h.name.as_str()).collect();
        let instances: Vec<&str> = fleet.instances().map(|i| i.name.as_str()).collect();
        let vars = vec![
            ("RCFLEET_COMMAND".into(), command.into()),
            ("RCFLEET_INVENTORY".into(), inventory.display().to_string()),
            ("RCFLEET_WORKSPACE".into(), fleet.workspace.name.clone()),
            ("RCFLEET_PERFORMER".into(), audit::operator()),
            ("RCFLEET_HOSTS".into(), hosts.join(" ")),
            ("RCFLEET_INSTANCES".into(), instances.join(" ")),
            ("RCFLEET_RELEASE".into(), fleet.workspace.release.to_string()),
        ];
        Run { inventory: inventory.to_path_buf(), command, started: Instant::now(), vars }
    }

    /// Sets (or replaces) one variable for the hooks that run after this.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_string(), value.into()));
    }

    /// Runs `hook` if the operator has one. A `pre-*` hook that fails stops the run: nothing was
    /// changed yet. Any other hook that fails is an error too, saying the command itself ended
    /// as `RCFLEET_RESULT` says.
    pub fn run(&self, hook: Hook) -> Result<()> {
        let path = folder(&self.inventory).join(hook.name());
        let Ok(meta) = std::fs::metadata(&path) else { return Ok(()) };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(Error::bad_input(format!(
                "{}: the hook is not an executable file; make it one (chmod +x) or remove it",
                path.display()
            )));
        }
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::failed(format!("cannot pass stderr to the {} hook: {e}", hook.name())))?;
        let status = Command::new(&path)
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RCFLEET_HOOK", hook.name())
            .env("RCFLEET_DURATION", format!("{:.0}", self.started.elapsed().as_secs_f64()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stderr))
            .status()
            .map_err(|e| Error::failed(format!("{}: cannot start the hook: {e}", path.display())))?;
        if status.success() {
            return Ok(());
        }
        let how = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_string(),
        };
        let what = if hook.is_pre() {
            format!("so rcfleet {} did not start; nothing was changed on any host", self.command)
        } else {
            let result = self.vars.iter().find(|(k, _)| k == "RCFLEET_RESULT").map_or("", |(_, v)| v.as_str());
            format!("after rcfleet {} had {result}; the fleet is as that run left it", self.command)
        };
        Err(Error::failed(format!("{}: the {} hook {how}, {what}", path.display(), hook.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        crate::inventory::parse(&text, Path::new("three-app-hosts.toml")).unwrap()
    }

    fn hook(dir: &Path, name: &str, script: &str, mode: u32) {
        let hooks = dir.join(".rcfleet/hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::write(hooks.join(name), script).unwrap();
        std::fs::set_permissions(hooks.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn hooks_live_next_to_the_inventory() {
        assert_eq!(folder(Path::new("inventory.toml")), Path::new("./.rcfleet/hooks"));
        assert_eq!(folder(Path::new("/srv/chat/inventory.toml")), Path::new("/srv/chat/.rcfleet/hooks"));
    }

    #[test]
    fn hooks_see_the_run_and_a_failing_pre_hook_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("inventory.toml");
        let seen = dir.path().join("seen");
        let mut run = Run::new(&inventory, "upgrade", &fleet());
        assert!(run.run(Hook::PreUpgrade).is_ok(), "no hook, nothing to run");

        let record = format!("#!/bin/sh\nenv | grep ^RCFLEET_ | sort > {}\n", seen.display());
        hook(dir.path(), "post-upgrade", &record, 0o755);
        run.set("RCFLEET_RELEASE", "8.1.0");
        run.set("RCFLEET_RESULT", "succeeded");
        run.run(Hook::PostUpgrade).unwrap();
        let env = std::fs::read_to_string(&seen).unwrap();
        for line in ["RCFLEET_COMMAND=upgrade", "RCFLEET_HOOK=post-upgrade", "RCFLEET_RELEASE=8.1.0", "RCFLEET_RESULT=succeeded", "RCFLEET_HOSTS=db mon edge app1 app2 app3"] {
            assert!(env.lines().any(|l| l == line), "{line} not in:\n{env}");
        }
        assert!(env.contains("RCFLEET_INSTANCES=app1-0 app1-1"), "{env}");

        hook(dir.path(), "pre-upgrade", "#!/bin/sh\nexit 7\n", 0o755);
        let refused = run.run(Hook::PreUpgrade).unwrap_err().to_string();
        assert!(refused.ends_with("the pre-upgrade hook exited with status 7, so rcfleet upgrade did not start; nothing was changed on any host"), "{refused}");

        hook(dir.path(), "pre-up", "#!/bin/sh\nexit 0\n", 0o644);
        let not_executable = run.run(Hook::PreUp).unwrap_err();
        assert_eq!(not_executable.exit_code(), 2);
        assert!(not_executable.to_string().contains("pre-up: the hook is not an executable file; make it one (chmod +x)"));
    }
}

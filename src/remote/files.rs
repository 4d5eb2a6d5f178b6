//! What a file on a host is, learnt without its content leaving the host: sha256, mode and
//! owner. One fact for deciding whether to send a file (`Connection::upload`, `up`) and for
//! showing drift (`status`).

use sha2::{Digest, Sha256};

use super::{Argv, Connection};
use crate::error::Result;

/// A regular file's state on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// Lower-case hex.
    pub sha256: String,
    pub mode: u32,
    /// `user:group` by name.
    owner_names: String,
    /// `uid:gid`.
    owner_ids: String,
}

impl FileState {
    /// Whether the file holds `content` with `mode`.
    pub fn holds(&self, content: &[u8], mode: u32) -> bool {
        self.mode == mode && self.sha256 == sha256_hex(content)
    }

    /// Whether the file belongs to `owner`, given as `user`, `user:group`, by name or by id.
    pub fn owned_by(&self, owner: &str) -> bool {
        let user = |both: &str| both.split(':').next().unwrap_or("").to_string();
        [self.owner_names.clone(), self.owner_ids.clone(), user(&self.owner_names), user(&self.owner_ids)].iter().any(|o| o == owner)
    }

    /// A file's lines in [`STATE_SCRIPT`]'s output: `sha256sum`'s (`hash  path`, the hash
    /// preceded by `\` where the path needed escaping) and `stat`'s (`mode user:group uid:gid`).
    fn parse(hash_line: &str, stat_line: &str) -> Option<FileState> {
        let sha256 = hash_line.split_whitespace().next()?.trim_start_matches('\\').to_string();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut fields = stat_line.split_whitespace();
        let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
        let owner_names = fields.next().unwrap_or_default().to_string();
        let owner_ids = fields.next().unwrap_or_default().to_string();
        Some(FileState { sha256, mode, owner_names, owner_ids })
    }
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// One line per path, `+` for a regular file and `-` for none; then `sha256sum`'s line for each
/// regular file, then `stat`'s. Two programs for all the files, not two per file: the host's
/// side of `status` and of every file sent was mostly this script's process starts (measured
/// on the lab: 27 ms of CPU for 5 files with one `sha256sum` and one `stat` per file, 4 ms so).
const STATE_SCRIPT: &str = r#"n=$#; for f in "$@"; do if [ -f "$f" ]; then set -- "$@" "$f"; echo +; else echo -; fi; done; shift "$n"; [ "$#" -eq 0 ] || { sha256sum -- "$@" && stat -c '%a %U:%G %u:%g' -- "$@"; }"#;

impl Connection {
    /// The state of each file at `paths` (absolute), `None` where there is no file; in one
    /// round trip.
    pub fn file_states(&self, paths: &[String]) -> Result<Vec<Option<FileState>>> {
        Ok(file_states_in(paths, &self.run(&file_states_argv(paths))?.stdout_text()))
    }
}

/// The command printing the state of each file at `paths`, for [`file_states_in`].
pub fn file_states_argv(paths: &[String]) -> Argv {
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    Argv::script(STATE_SCRIPT, &refs).step("reading the state of files")
}

/// Each path's state in the output of [`file_states_argv`], `None` where there is no file (or
/// the output is cut short: a file removed while being read).
pub fn file_states_in(paths: &[String], output: &str) -> Vec<Option<FileState>> {
    let mut lines = output.lines();
    let present: Vec<bool> = lines.by_ref().take(paths.len()).map(|line| line == "+").collect();
    let count = present.iter().filter(|p| **p).count();
    let hashes: Vec<&str> = lines.by_ref().take(count).collect();
    let stats: Vec<&str> = lines.take(count).collect();
    let complete = hashes.len() == count && stats.len() == count;
    let mut found = hashes.iter().zip(&stats).map(|(hash, stat)| FileState::parse(hash, stat));
    let mut states: Vec<Option<FileState>> =
        present.iter().map(|file| if *file && complete { found.next().flatten() } else { None }).collect();
    states.resize(paths.len(), None);
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_read_and_compared_with_content_and_owner() {
        let hash = sha256_hex(b"abc");
        assert_eq!(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let state = FileState::parse(&format!("{hash}  /opt/a"), "600 root:docker 0:999").unwrap();
        assert!(state.holds(b"abc", 0o600));
        assert!(!state.holds(b"abc", 0o644) && !state.holds(b"abd", 0o600));
        for owner in ["root", "root:docker", "0", "0:999"] {
            assert!(state.owned_by(owner), "{owner}");
        }
        assert!(!state.owned_by("nobody"));
        assert_eq!(FileState::parse(&format!("\\{hash}  /opt/a\\nb"), "600 root:root 0:0").map(|s| s.sha256), Some(hash));
        assert_eq!(FileState::parse("sha256sum: /opt/a: Permission denied", "600 root:root 0:0"), None);
    }

    /// The real test of the script: a local shell runs it on files that exist, one that does
    /// not, a folder and a name with a space, and each state is read back in the paths' order.
    #[test]
    fn the_script_run_by_a_shell_gives_each_path_its_state() {
        let dir = std::env::temp_dir().join(format!("rcfleet-file-states-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).to_string_lossy().to_string();
        std::fs::write(path("a"), b"abc").unwrap();
        std::fs::write(path("with space"), b"xyz").unwrap();
        let paths = vec![path("missing"), path("a"), dir.to_string_lossy().to_string(), path("with space")];
        let argv = file_states_argv(&paths).to_command_line();
        let output = std::process::Command::new("sh").arg("-c").arg(&argv).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let states = file_states_in(&paths, &String::from_utf8_lossy(&output.stdout));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(states.len(), 4);
        assert!(states[0].is_none() && states[2].is_none());
        assert_eq!(states[1].as_ref().map(|s| s.sha256.clone()), Some(sha256_hex(b"abc")));
        assert_eq!(states[3].as_ref().map(|s| s.sha256.clone()), Some(sha256_hex(b"xyz")));
        assert!(file_states_in(&paths, "-\n+\n-\n+\nabc\n").iter().all(Option::is_none), "output cut short");
    }
}

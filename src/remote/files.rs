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

    /// One line of [`STATE_SCRIPT`]'s output: `-` for no file.
    fn parse(line: &str) -> Option<FileState> {
        let mut fields = line.split_whitespace();
        let sha256 = fields.next().filter(|h| *h != "-")?.to_string();
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

/// One line per path: `sha256 mode user:group uid:gid`, or `-` where there is no regular file.
const STATE_SCRIPT: &str = r#"for f in "$@"; do if [ -f "$f" ]; then printf '%s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$(stat -c '%a %U:%G %u:%g' "$f")"; else echo -; fi; done"#;

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

/// Each path's state in the output of [`file_states_argv`], `None` where there is no file.
pub fn file_states_in(paths: &[String], output: &str) -> Vec<Option<FileState>> {
    let mut states: Vec<Option<FileState>> = output.lines().map(FileState::parse).collect();
    states.resize(paths.len(), None);
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_line_is_read_and_compared_with_content_and_owner() {
        let hash = sha256_hex(b"abc");
        assert_eq!(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let state = FileState::parse(&format!("{hash} 600 root:docker 0:999")).unwrap();
        assert!(state.holds(b"abc", 0o600));
        assert!(!state.holds(b"abc", 0o644) && !state.holds(b"abd", 0o600));
        for owner in ["root", "root:docker", "0", "0:999"] {
            assert!(state.owned_by(owner), "{owner}");
        }
        assert!(!state.owned_by("nobody"));
        assert_eq!(FileState::parse("-"), None);
    }
}

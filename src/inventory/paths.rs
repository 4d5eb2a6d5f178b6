//! Local paths named in the inventory: `~/` is the home folder, relative paths start at the
//! inventory's folder (so an inventory works the same from any working directory).

use std::path::{Path, PathBuf};

pub fn expand(path: &str, folder: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        folder.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_start_at_the_inventory_folder() {
        assert_eq!(expand("keys/id", Path::new("/etc/fleet")), PathBuf::from("/etc/fleet/keys/id"));
        assert_eq!(expand("/abs/id", Path::new("/etc/fleet")), PathBuf::from("/abs/id"));
    }
}

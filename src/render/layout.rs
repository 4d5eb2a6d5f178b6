//! Where rcfleet keeps things on a host, besides the units' own directories (`units`): every
//! remote path the operations use is named here once.

use super::units::deploy_dir;
use crate::fleet::Fleet;

/// The folder of the instances' units, relative to the deploy dir (`rocketchat/app1-0`).
pub const INSTANCES_DIR: &str = "rocketchat";

/// The folder of the microservice containers' units (`services/ddp-streamer-0`).
pub const SERVICES_DIR: &str = "services";

/// On the database host: the generated secrets, mode 0600.
pub fn secrets_file(fleet: &Fleet) -> String {
    format!("{}/secrets.json", deploy_dir(fleet))
}

/// On the database host: the deploy lock, present while a changing run holds it.
pub fn lock_file(fleet: &Fleet) -> String {
    format!("{}/deploy.lock", deploy_dir(fleet))
}

/// On every host: the audit trail, one appended line per change.
pub fn audit_log(fleet: &Fleet) -> String {
    format!("{}/audit.log", deploy_dir(fleet))
}

/// On the database host: the upgrades' `mongodump` archives.
pub fn backups_dir(fleet: &Fleet) -> String {
    format!("{}/backups", deploy_dir(fleet))
}

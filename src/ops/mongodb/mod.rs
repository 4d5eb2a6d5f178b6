//! MongoDB over the workspace's lifetime: what it runs (`status`) and major upgrades one
//! step at a time (`upgrade`).

pub mod facts;
pub mod status;
pub mod upgrade;
pub mod wire;

//! Operations: what each command does, over the fleet model, the renderer and the remote layer.

pub mod audit;
pub mod converge;
pub mod lock;
pub mod plan;
pub mod preflight;
pub mod probe;
pub mod remote;
pub mod report;
pub mod up;
pub mod wait;

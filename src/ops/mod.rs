//! Operations: what each command does, over the fleet model, the renderer and the remote layer.

pub mod plan;

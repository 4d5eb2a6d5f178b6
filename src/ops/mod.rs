//! Operations: what each command does, over the fleet model, the renderer and the remote layer.

pub mod add_instance;
pub mod advice;
pub mod audit;
pub mod backup;
pub mod converge;
pub mod disk;
pub mod exec;
pub mod export;
pub mod exporters;
pub mod grafana;
pub mod hooks;
pub mod hosts;
pub mod instances;
pub mod lock;
pub mod logs;
pub mod mongodb;
pub mod outage;
pub mod plan;
pub mod preflight;
pub mod prune;
pub mod probe;
pub mod push_images;
pub mod remove_instance;
pub mod report;
pub mod rollout;
pub mod run;
pub mod restore;
pub mod secrets;
pub mod service_replicas;
pub mod services;
pub mod status;
pub mod up;
pub mod upgrade;
pub mod wait;

pub use run::Run;

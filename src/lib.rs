//! rcfleet: deploy and operate a multi-instance Rocket.Chat workspace over SSH.
//!
//! The pure core (`inventory` -> `fleet` -> `render`) touches no host; everything that reaches
//! a server goes through `remote`.

pub mod compat;
pub mod error;
pub mod fleet;
pub mod inventory;
pub mod microservices;
pub mod remote;
pub mod render;
pub mod cli;
pub mod ops;
pub mod registry;
pub mod interrupt;

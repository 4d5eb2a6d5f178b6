//! Placeholder: filled by the remote-layer work.

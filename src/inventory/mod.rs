//! Placeholder: filled by the inventory work.

//! Placeholder: filled by the render work.

//! Helpers for generated code only; not a stable API.

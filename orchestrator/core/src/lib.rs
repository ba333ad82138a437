//! Saga core.

//! Participants.
pub mod db;

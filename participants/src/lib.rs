//! Participants.

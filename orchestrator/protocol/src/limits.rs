//! How large a message of the protocol may be.
//!
//! Three bounds nest, so that whatever one process accepts the next can carry:
//!
//! - NATS refuses a publish over its `max_payload` (1 MB, set in every `nats.conf`);
//! - a process refuses to decode a message over its own limit (`--max-message`,
//!   [`DEFAULT_MAX_MESSAGE`] = `max_payload`): it is dead-lettered with the reason;
//! - the orchestrator never sends a command whose payload is over [`MAX_COMMAND_PAYLOAD`]
//!   (half of that, so the envelope around it always fits): the step fails instead of a
//!   publish that would be refused again on every retry.
//!
//! ```
//! use saga_protocol::limits::{self, DEFAULT_MAX_MESSAGE};
//!
//! assert!(limits::check(b"{}", DEFAULT_MAX_MESSAGE).is_ok());
//! let refused = limits::check(&[b' '; 11], 10).unwrap_err();
//! assert_eq!(refused.size, 11);
//! ```

/// The largest message a process decodes unless told otherwise: NATS's `max_payload`.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// The largest payload (its JSON) a command carries: half of [`DEFAULT_MAX_MESSAGE`].
pub const MAX_COMMAND_PAYLOAD: usize = DEFAULT_MAX_MESSAGE / 2;

/// A message over the limit of the process that received it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the message is {size} bytes, over this process's limit of {max} bytes \
     (--max-message / SAGA_MAX_MESSAGE)"
)]
pub struct TooLarge {
    pub size: usize,
    pub max: usize,
}

/// `Ok` when `payload` is at most `max` bytes.
pub fn check(payload: &[u8], max: usize) -> Result<(), TooLarge> {
    if payload.len() > max {
        return Err(TooLarge {
            size: payload.len(),
            max,
        });
    }
    Ok(())
}

/// The size of `value` as JSON, counted without building the text.
pub fn json_size(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

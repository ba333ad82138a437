//! The reply watermark: how far this replica has read the replies, the clock its timers fall
//! due by.
//!
//! A step's timeout means "no reply by then". When the orchestrator is behind on its replies
//! (thousands waiting in the stream after a burst, a stall or a restart), the reply may well
//! be there, unread: firing the timeout then retries a step that has answered, and every
//! retry adds a command and a reply to the backlog, so a replica that falls behind falls
//! further behind and never catches up. So a timer set for T fires only once the replies
//! published up to T have been read: while the reply consumer reads a backlog, the clock
//! of the timers is the publish time of the last reply read, not the wall clock.
//!
//! Read replies of one saga reach its worker before a tick of that saga queued after them,
//! so "read" is enough: the reply is handled first.
//!
//! The watermark is the wall clock again when the backlog is read (the last reply read had
//! none behind it) or when no reply has been read for [`STALL`]: the rest of a backlog went
//! to another replica sharing the consumer, or NATS is away. Timers then fire as they would
//! without it; the watermark only ever holds them back while replies are flowing. A new
//! watermark (the reply consumer just started pulling, after a restart say, with the timers
//! of every recovered saga overdue) holds the timers until the first reply read says whether
//! a backlog waits, or for [`STALL`] if none comes.
//!
//! ```
//! use saga_orchestrator::{clock::SystemClock, runtime::watermark::Watermark};
//! use saga_protocol::Timestamp;
//!
//! let watermark = Watermark::new(std::sync::Arc::new(SystemClock));
//! let wall = Timestamp(10_000);
//! assert!(watermark.now(wall) < wall, "nothing read yet: held back");
//! watermark.read(Timestamp(7_000), 250); // a reply published at 7 s, 250 more behind it
//! assert_eq!(watermark.now(wall), Timestamp(7_000));
//! watermark.read(Timestamp(9_990), 0); // the backlog is read
//! assert_eq!(watermark.now(wall), wall);
//! ```

use crate::clock::Clock;
use saga_protocol::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// With no reply read for this long, the watermark is the wall clock again.
pub const STALL: Duration = Duration::from_secs(1);

/// No backlog: the watermark is the wall clock.
const CAUGHT_UP: i64 = i64::MIN;
/// Nothing read yet: timers wait for the first reply, or [`STALL`].
const UNKNOWN: i64 = 0;

/// See the module docs. Cheap to clone; clones share the watermark.
#[derive(Debug, Clone)]
pub struct Watermark(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Publish time (ms) of the last reply read while more were waiting, or [`CAUGHT_UP`].
    behind: AtomicI64,
    /// When a reply was last read, in ms since `start`.
    last_read: AtomicU64,
    /// Measures the stall; tokio's, so that a paused clock pauses it too.
    start: tokio::time::Instant,
    clock: Arc<dyn Clock>,
}

impl Watermark {
    /// A watermark that has read nothing yet, on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Watermark(Arc::new(Inner {
            behind: AtomicI64::new(UNKNOWN),
            last_read: AtomicU64::new(0),
            start: tokio::time::Instant::now(),
            clock,
        }))
    }

    /// The time now by the wall clock this watermark holds back.
    pub fn wall(&self) -> Timestamp {
        self.0.clock.now()
    }

    /// Records a reply read from the consumer: published at `published`, with `pending`
    /// more waiting in the consumer behind it.
    pub fn read(&self, published: Timestamp, pending: u64) {
        let behind = if pending == 0 {
            CAUGHT_UP
        } else {
            published.millis()
        };
        self.0.behind.store(behind, Ordering::Release);
        self.0.last_read.store(self.elapsed(), Ordering::Release);
    }

    /// The timers' clock at wall-clock time `wall`: `wall` itself unless a backlog is being
    /// read, then the publish time of the last reply read (never later than `wall`).
    pub fn now(&self, wall: Timestamp) -> Timestamp {
        let behind = self.0.behind.load(Ordering::Acquire);
        if behind == CAUGHT_UP {
            return wall;
        }
        let since_read = self
            .elapsed()
            .saturating_sub(self.0.last_read.load(Ordering::Acquire));
        if Duration::from_millis(since_read) >= STALL {
            return wall;
        }
        Timestamp(behind.min(wall.millis()))
    }

    /// Whether replies are being read from a backlog now (the watermark is behind `wall`).
    pub fn behind(&self, wall: Timestamp) -> bool {
        self.now(wall) < wall
    }

    fn elapsed(&self) -> u64 {
        u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn a_backlog_holds_the_clock_at_the_last_reply_read_until_it_is_read_or_stalls() {
        let watermark = Watermark::new(Arc::new(SystemClock));
        let wall = Timestamp(50_000);
        assert!(watermark.behind(wall), "nothing read yet");
        watermark.read(Timestamp(49_000), 0);
        assert!(!watermark.behind(wall), "no backlog behind the first reply");
        watermark.read(Timestamp(20_000), 3);
        assert_eq!(watermark.now(wall), Timestamp(20_000));
        assert!(watermark.behind(wall));
        // A publish time ahead of this machine's clock never moves the timers early.
        watermark.read(Timestamp(60_000), 2);
        assert_eq!(watermark.now(wall), wall);
        watermark.read(Timestamp(21_000), 1);
        assert_eq!(watermark.now(wall), Timestamp(21_000));
        // Nothing read for STALL: another replica took the rest, or NATS is away.
        std::thread::sleep(STALL + Duration::from_millis(50));
        assert_eq!(watermark.now(wall), wall);
        assert!(!watermark.behind(wall));
    }

    #[test]
    fn a_new_watermark_with_no_reply_to_read_lets_the_timers_fire_after_the_stall() {
        let watermark = Watermark::new(Arc::new(SystemClock));
        let wall = Timestamp::now();
        assert!(watermark.behind(wall));
        std::thread::sleep(STALL + Duration::from_millis(50));
        assert_eq!(watermark.now(wall), wall);
    }
}

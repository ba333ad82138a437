//! Group commit: one task owns a database's writes and commits the writes waiting at one
//! moment in one transaction. The event store's writer and every participant's batcher run
//! this loop; what a batch does, and how a failed batch is retried write by write, is theirs.
//!
//! Batches form by themselves: while one commits, the next writes queue up; a lone write is
//! handed over at once, with no added wait.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (queue, writes) = tokio::sync::mpsc::channel(16);
//! for n in 0..5 {
//!     queue.send(n).await.unwrap();
//! }
//! drop(queue);
//! let mut sizes = Vec::new();
//! saga_sql::group_commit::run(writes, 3, |batch: Vec<i32>| {
//!     sizes.push(batch.len());
//!     async {}
//! })
//! .await;
//! assert_eq!(sizes, [3, 2]);
//! # }
//! ```

use std::future::Future;
use tokio::sync::mpsc;

/// Until every sender of `writes` is gone: takes the first write that arrives and every one
/// already waiting behind it, up to `max`, and hands them to `commit` as one batch.
pub async fn run<W, F, Fut>(mut writes: mpsc::Receiver<W>, max: usize, mut commit: F)
where
    F: FnMut(Vec<W>) -> Fut,
    Fut: Future<Output = ()>,
{
    let max = max.max(1);
    while let Some(first) = writes.recv().await {
        // What is waiting now, not `max`: a lone write allocates for one.
        let mut batch = Vec::with_capacity((1 + writes.len()).min(max));
        batch.push(first);
        while batch.len() < max {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        commit(batch).await;
    }
}

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Polls `probe` every 50 ms until it returns `Some`, or fails after `deadline`.
///
/// Tests wait on conditions with this instead of sleeping a fixed time and hoping.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> crate::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(crate::Error::Timeout(format!(
                "{what} (after {deadline:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

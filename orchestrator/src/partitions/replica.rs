//! The names of the replicas in the lease bucket: their `members.{replica}` keys and the
//! owners written into the partition keys.

use uuid::Uuid;

/// A name for a replica that nothing else names: the host name (the pod's, under Kubernetes)
/// and a random suffix, so two processes on one host differ. A process restarted with it is a
/// new replica; see [`stable_replica_id`] for one that takes its old leases back.
pub fn replica_id() -> String {
    let suffix = Uuid::new_v4().simple().to_string();
    format!("{}-{}", host_name(), &suffix[..8])
}

/// The name of the replica serving `port` on this host: the same after a restart, so the
/// restarted process takes back the leases of the one that died instead of waiting for them
/// to lapse, and does not count it as another member. Two live processes cannot share it: the
/// port is bound before the leases are opened, and under Kubernetes the host is the pod.
///
/// ```
/// let a = saga_orchestrator::partitions::stable_replica_id(8080);
/// assert_eq!(a, saga_orchestrator::partitions::stable_replica_id(8080));
/// assert!(a.ends_with("-8080"));
/// ```
pub fn stable_replica_id(port: u16) -> String {
    format!("{}-{port}", host_name())
}

fn host_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orchestrator".to_string());
    // KV keys allow letters, digits, `-`, `_`, `/`, `=` and `.` as a separator.
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    host
}

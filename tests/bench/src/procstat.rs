//! CPU time and peak memory of processes, from Linux's `/proc`.
//!
//! - `/proc/<pid>/stat`: `utime` and `stime` (fields 14 and 15, in clock ticks) of the process,
//!   `cutime` and `cstime` (16 and 17) of its children that exited and were waited for. A
//!   process tree's CPU is its root's four fields plus the `utime + stime` of every live
//!   descendant, so a PostgreSQL backend that exits mid-run is still counted (by its
//!   postmaster's `cutime`).
//! - `/proc/<pid>/status`: `VmHWM`, the peak resident set size.
//! - `/proc/self/task/<tid>/stat`: the same per thread, to tell the bench's driver threads
//!   from the system's threads when the system runs inside the bench process.

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on every Linux seen).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// The fields of one `/proc/<pid>/stat` line that the bench uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime of the process itself.
    pub own_ticks: u64,
    /// cutime + cstime: its waited-for children.
    pub children_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces,
/// so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    // rest starts at field 3 (state): index i here is field i + 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        own_ticks: field(14)? + field(15)?,
        children_ticks: field(16)? + field(17)?,
    })
}

fn read_stat(path: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// Peak resident set size (`VmHWM`) of `pid` in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb(&status, "VmHWM:").map(|kb| kb * 1024)
}

fn parse_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU ticks of `pid` itself, without its children.
pub fn own_ticks(pid: u32) -> Option<u64> {
    read_stat(&format!("/proc/{pid}/stat")).map(|s| s.own_ticks)
}

/// Every live process's parent, by pid.
fn parents() -> HashMap<u32, (u32, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(&format!("/proc/{pid}/stat")) {
            out.insert(pid, (stat.ppid, stat.own_ticks));
        }
    }
    out
}

/// CPU ticks of `root` and all its descendants, live or exited (see the module docs), and the
/// pids of the tree.
pub fn tree_ticks(root: u32) -> Option<(u64, Vec<u32>)> {
    let stat = read_stat(&format!("/proc/{root}/stat"))?;
    let all = parents();
    let mut total = stat.own_ticks + stat.children_ticks;
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (&pid, &(ppid, ticks)) in &all {
            if ppid == parent && pid != root {
                tree.push(pid);
                total += ticks;
            }
        }
        i += 1;
    }
    Some((total, tree))
}

/// CPU ticks of this process's threads, split by whether `is_driver(thread name)`:
/// `(driver ticks, whole process ticks)`. Threads that exited are only in the whole.
pub fn self_threads(is_driver: impl Fn(&str) -> bool) -> (u64, u64) {
    let whole = read_stat("/proc/self/stat")
        .map(|s| s.own_ticks)
        .unwrap_or(0);
    let mut driver = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let path = entry.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if !is_driver(name.trim()) {
                continue;
            }
            if let Some(stat) = read_stat(&path.join("stat").to_string_lossy()) {
                driver += stat.own_ticks;
            }
        }
    }
    (driver, whole)
}

/// Ticks as a duration.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / per_second.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "4242 (tokio worker (1)) S 17 4242 4242 0 -1 4194560 1 2 3 4 150 25 7 3 20 0 9 0 100 200 300";
        let stat = parse_stat(line);
        assert!(matches!(
            stat,
            Some(Stat {
                ppid: 17,
                own_ticks: 175,
                children_ticks: 10
            })
        ));
    }

    #[test]
    fn reads_its_own_process() {
        let pid = std::process::id();
        assert!(peak_rss(pid).is_some_and(|b| b > 0));
        assert!(tree_ticks(pid).is_some());
        assert_eq!(parse_kb("VmHWM:\t  1234 kB\n", "VmHWM:"), Some(1234));
    }
}

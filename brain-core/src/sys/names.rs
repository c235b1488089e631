//! Temporary names: unique across processes and threads, and carrying the
//! writer's pid so that `gc` can tell a live writer's file from a dead one's.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::io::Errno;

/// Temporary names start with this, then the writer's pid.
pub(crate) const TMP_PREFIX: &str = ".tmp.";

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other writer uses: pid, a per-process counter and the clock.
pub(crate) fn unique_tmp_name(kind: &str) -> String {
    format!("{TMP_PREFIX}{}", unique_suffix(kind))
}

/// `<pid>.<kind><counter>.<nanoseconds>`: unique across processes and threads.
pub(crate) fn unique_suffix(kind: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{kind}{n}.{nanos:x}", std::process::id())
}

/// The pid in a temporary name made by [`unique_tmp_name`].
pub(crate) fn tmp_owner(name: &OsStr) -> Option<u32> {
    let rest = name.as_bytes().strip_prefix(TMP_PREFIX.as_bytes())?;
    let pid = rest.split(|&b| b == b'.').next()?;
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether a process with this pid exists (in this PID namespace).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    // EPERM means the process exists but belongs to someone else: alive.
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// When the process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); `None` when there is no such process. Tells a live
/// process from a later one that reuses a dead one's pid.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_name_names_its_writer() {
        let name = unique_tmp_name("obj");
        assert_eq!(tmp_owner(OsStr::new(&name)), Some(std::process::id()));
        assert_ne!(name, unique_tmp_name("obj"));
        assert_eq!(tmp_owner(OsStr::new("0123abcd")), None);
        assert!(process_alive(std::process::id()));
        let start = process_start_time(std::process::id()).expect("this process runs");
        assert!(start > 0);
        assert_eq!(process_start_time(std::process::id()), Some(start));
        assert_eq!(process_start_time(u32::MAX), None);
    }
}

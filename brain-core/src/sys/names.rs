//! Temporary names: unique across processes and threads, and carrying the
//! writer's pid (and PID namespace) so that `gc` can tell a live writer's
//! file from a dead one's; whether a process still runs.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::io::Errno;

/// Temporary names start with this, then the writer's pid.
pub(crate) const TMP_PREFIX: &str = ".tmp.";

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other writer uses: pid, PID namespace, a per-process counter
/// and the clock.
pub(crate) fn unique_tmp_name(kind: &str) -> String {
    format!("{TMP_PREFIX}{}", unique_suffix(kind))
}

/// `<pid>~<pid namespace>.<kind><counter>.<nanoseconds>` (hexadecimal
/// namespace): unique across processes, threads and containers.
pub(crate) fn unique_suffix(kind: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{kind}{n}.{nanos:x}", owner_tag())
}

/// The process a temporary name or a writer slot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    /// Its PID namespace ([`pid_namespace`]); 0 when not recorded (names
    /// made before it was).
    pub pid_ns: u32,
}

impl Owner {
    /// This process.
    pub(crate) fn me() -> Owner {
        Owner {
            pid: crate::sys::fork::process_id(),
            pid_ns: pid_namespace(),
        }
    }

    /// Whether the owner may still run. A process of another PID namespace
    /// (another container sharing the store) cannot be seen from this one,
    /// so it counts as running: what it left is never taken from it.
    pub(crate) fn alive(self) -> bool {
        self.foreign() || process_alive(self.pid)
    }

    /// Whether the owner lives in a PID namespace this process cannot see into.
    pub(crate) fn foreign(self) -> bool {
        self.pid_ns != 0 && self.pid_ns != pid_namespace()
    }

    /// The owner an [`owner_tag`] names: `<pid>~<namespace>`, or a bare
    /// `<pid>` (names made before the namespace was recorded: namespace 0).
    fn parse(tag: &str) -> Option<Owner> {
        let (pid, pid_ns) = match tag.split_once('~') {
            Some((pid, ns)) => (pid, u32::from_str_radix(ns, 16).ok()?),
            None => (tag, 0),
        };
        Some(Owner {
            pid: pid.parse().ok()?,
            pid_ns,
        })
    }
}

/// Who made a temporary name made by [`unique_tmp_name`].
pub(crate) fn tmp_owner(name: &OsStr) -> Option<Owner> {
    let rest = name.as_bytes().strip_prefix(TMP_PREFIX.as_bytes())?;
    Owner::parse(std::str::from_utf8(rest.split(|&b| b == b'.').next()?).ok()?)
}

/// This process as a tag for names of its own scratch files outside a
/// store: `<pid>~<pid namespace>` (hexadecimal namespace), as every
/// temporary name brain makes starts. [`owner_tag_gone`] tells whether a
/// tag's process ended, so whoever comes next can remove what a killed
/// process left.
pub fn owner_tag() -> String {
    format!("{}~{:x}", crate::sys::fork::process_id(), pid_namespace())
}

/// Whether the process an [`owner_tag`] names has ended. Never for a tag
/// that does not parse, that names this process, that names a process of
/// another PID namespace (which this one cannot see) or of an unknown one
/// (namespace 0: its maker could not read its own), or when this process
/// cannot see its own entry in `/proc` (then no process looks alive).
pub fn owner_tag_gone(tag: &str) -> bool {
    let Some(owner) = Owner::parse(tag) else {
        return false;
    };
    if owner.pid_ns == 0 || owner.pid == crate::sys::fork::process_id() {
        return false;
    }
    if process_start_time(crate::sys::fork::process_id()).is_none() {
        return false;
    }
    !owner.alive()
}

/// The PID namespace this process lives in: the low 32 bits of the inode
/// of `/proc/self/ns/pid` (0 when it cannot be read). Two containers
/// sharing a store each see only their own processes; pids are compared
/// only within one namespace.
pub(crate) fn pid_namespace() -> u32 {
    static NAMESPACE: OnceLock<u32> = OnceLock::new();
    *NAMESPACE.get_or_init(|| std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino() as u32))
}

/// Whether a process with this pid runs (in this PID namespace). A zombie
/// (killed, not yet reaped by its parent) has stopped: it holds nothing.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(raw) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    // EPERM means the process exists but belongs to someone else: alive.
    !matches!(rustix::process::test_kill_process(raw), Err(Errno::SRCH))
        && process_start_time(pid).is_some()
}

/// When the process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); `None` when there is no such process or it is a
/// zombie. Tells a live process from a later one that reuses a dead
/// one's pid.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = stat_after_name(pid)?;
    let mut fields = stat.split_whitespace();
    // Field 3, the state: Z (zombie) and X (dead) have exited.
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The fields of `/proc/<pid>/stat` from the third on (the state, the
/// parent's pid, ...); `None` when there is no such process. The command
/// name (field 2) is in parentheses and may hold spaces: the rest starts
/// after the last `)`.
pub(crate) fn stat_after_name(pid: u32) -> Option<String> {
    let mut stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rfind(')')? + 1;
    Some(stat.split_off(after_name))
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
    fn owner_tags_name_this_process_and_tell_when_theirs_ended() {
        let mine = owner_tag();
        assert_eq!(
            mine,
            format!("{}~{:x}", std::process::id(), pid_namespace())
        );
        assert!(!owner_tag_gone(&mine));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("run true");
        let pid = child.id();
        child.wait().expect("reap true");
        assert!(owner_tag_gone(&format!("{pid}~{:x}", pid_namespace())));
        // Another PID namespace cannot be seen into: never gone.
        assert!(!owner_tag_gone(&format!("{pid}~{:x}", pid_namespace() ^ 1)));
        // Its maker could not read its namespace: never gone.
        assert!(!owner_tag_gone(&format!("{pid}~0")));
        for odd in ["", "12", "x~1", "12~zz"] {
            assert!(!owner_tag_gone(odd), "{odd:?}");
        }
    }

    #[test]
    fn a_temporary_name_names_its_writer() {
        let name = unique_tmp_name("obj");
        assert_eq!(tmp_owner(OsStr::new(&name)), Some(Owner::me()));
        assert!(Owner::me().alive() && !Owner::me().foreign());
        // Names made before the namespace was recorded.
        let old = tmp_owner(OsStr::new(".tmp.12.obj3.ff")).expect("an owner");
        assert_eq!((old.pid, old.pid_ns), (12, 0));
        assert!(!old.foreign());
        let elsewhere = Owner {
            pid: u32::MAX,
            pid_ns: pid_namespace().wrapping_add(1),
        };
        assert!(elsewhere.foreign() && elsewhere.alive());
        assert_ne!(name, unique_tmp_name("obj"));
        assert_eq!(tmp_owner(OsStr::new("0123abcd")), None);
        assert!(process_alive(std::process::id()));
        let start = process_start_time(std::process::id()).expect("this process runs");
        assert!(start > 0);
        assert_eq!(process_start_time(std::process::id()), Some(start));
        assert_eq!(process_start_time(u32::MAX), None);
    }

    #[test]
    fn a_killed_process_is_dead_before_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        assert!(process_alive(child.id()));
        child.kill().expect("kill");
        // SIGKILL is delivered asynchronously; the zombie stays until `wait`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while process_alive(child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!process_alive(child.id()), "a zombie counts as running");
        assert_eq!(process_start_time(child.id()), None);
        child.wait().expect("reaped");
    }
}

//! Memory that processes still hold in files a store has let go of: the
//! mappings of deleted object files, as `/proc/<pid>/maps` lists them.
//!
//! A replaced or deleted object's file leaves the store's accounting at
//! once, but its pages stay allocated on the tmpfs for as long as any
//! process maps it (a notebook holding a frame, a worker holding an array).
//! Only the kernel knows who: each process's map lists the file with
//! ` (deleted)` after its last path.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes of deleted files under `root` that some process still maps, each
/// file counted once (by device and inode, at its longest mapping), and
/// the pids of those processes. Processes whose map this one may not read
/// (another user's, without privileges) are left out.
pub(crate) fn deleted_mappings_under(root: &Path) -> (u64, Vec<u32>) {
    let Some(prefix) = root.to_str() else {
        return (0, Vec::new());
    };
    let me = rustix::process::geteuid();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, Vec::new());
    };
    let mut files: HashMap<(String, u64), (u64, Vec<u32>)> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Another user's processes cannot map this user's store (0700).
        if !me.is_root() && entry.metadata().map_or(true, |m| m.uid() != me.as_raw()) {
            continue;
        }
        let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        if !maps.contains(prefix) {
            continue;
        }
        for line in maps.lines() {
            if let Some((file, len)) = deleted_mapping(line, prefix) {
                let (longest, holders) = files.entry(file).or_default();
                *longest = (*longest).max(len);
                if holders.last() != Some(&pid) {
                    holders.push(pid);
                }
            }
        }
    }
    if !files.is_empty() {
        // A file made unnamed (O_TMPFILE) and linked after it was mapped is
        // listed as deleted although it is an object, or in the pool: only
        // files no longer in the store count.
        let linked = inodes_under(root);
        files.retain(|(_, inode), _| !linked.contains(inode));
    }
    let mut pids: Vec<u32> = files
        .values()
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    (files.values().map(|(len, _)| len).sum(), pids)
}

/// The inodes of every file under `root`.
fn inodes_under(root: &Path) -> HashSet<u64> {
    let mut found = HashSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => todo.push(entry.path()),
                Ok(meta) => {
                    found.insert(meta.ino());
                }
                Err(_) => {}
            }
        }
    }
    found
}

/// The file (device, inode) and length of one line of a map, when it maps
/// a deleted file under `prefix`.
fn deleted_mapping(line: &str, prefix: &str) -> Option<((String, u64), u64)> {
    // address perms offset dev inode path
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let _perms = fields.next()?;
    let _offset = fields.next()?;
    let device = fields.next()?;
    let inode: u64 = fields.next()?.parse().ok()?;
    let path = fields.next()?.trim_start();
    let path = path.strip_suffix(" (deleted)")?;
    if inode == 0 || !path.starts_with(prefix) || path.as_bytes().get(prefix.len()) != Some(&b'/') {
        return None;
    }
    // A file made unnamed (O_TMPFILE), listed as `#<inode>`, is a write in
    // flight, counted by its writer's reservation: not memory held after
    // the store let it go.
    if path
        .rsplit('/')
        .next()
        .is_some_and(|file| file.starts_with('#'))
    {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let len = u64::from_str_radix(end, 16).ok()? - u64::from_str_radix(start, 16).ok()?;
    Some(((device.to_owned(), inode), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deleted_files_under_the_root_count() {
        let line = |path: &str| {
            format!(
                "7f0000000000-7f0000201000 r--s 00000000 00:1a 4242                       {path}"
            )
        };
        let root = "/dev/shm/brain-0/default";
        assert_eq!(
            deleted_mapping(&line("/dev/shm/brain-0/default/ns/ab/cd (deleted)"), root),
            Some((("00:1a".to_owned(), 4242), 0x201000))
        );
        assert_eq!(
            deleted_mapping(&line("/dev/shm/brain-0/default/ns/ab/cd"), root),
            None
        );
        assert_eq!(
            deleted_mapping(&line("/dev/shm/brain-0/default2/ns/ab/cd (deleted)"), root),
            None
        );
        assert_eq!(
            deleted_mapping(&line("/usr/lib/libc.so (deleted)"), root),
            None
        );
        // A write in flight, into a file that never had a name.
        assert_eq!(
            deleted_mapping(
                &line("/dev/shm/brain-0/default/ns/ab/#4242 (deleted)"),
                root
            ),
            None
        );
        assert_eq!(
            deleted_mapping("7f00-7f01 r--p 00000000 00:00 0 ", root),
            None
        );
    }

    #[test]
    fn a_mapping_of_a_deleted_file_is_found_in_this_process() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, vec![1u8; 3 * 4096]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let locked = crate::sys::SharedLocked::try_lock(std::os::fd::AsFd::as_fd(&file))
            .unwrap()
            .unwrap();
        let map = crate::sys::Mapping::map_readonly(&locked, 3 * 4096).unwrap();
        assert_eq!(deleted_mappings_under(dir.path()).0, 0);
        // Moved within the store, it is still there.
        let moved = dir.path().join("pool");
        std::fs::create_dir(&moved).unwrap();
        std::fs::rename(&path, moved.join("object")).unwrap();
        assert_eq!(deleted_mappings_under(dir.path()).0, 0);
        let path = moved.join("object");
        std::fs::remove_file(&path).unwrap();
        let (bytes, pids) = deleted_mappings_under(dir.path());
        assert_eq!(bytes, 3 * 4096);
        // Other tests of this binary fork and spawn meanwhile: a child
        // holds a copy of every mapping its parent had, and is listed too.
        let me = std::process::id();
        assert!(pids.contains(&me), "{pids:?} lacks this process, {me}");
        for pid in pids {
            assert!(
                descends_from(pid, me),
                "{pid}, not this process or a child of it, was listed"
            );
        }
        drop(map);
        // Children of other tests hold their copies until they exit (in
        // at most 10 s, when their alarm ends them).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while deleted_mappings_under(dir.path()).0 != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the mapping was still listed after it was dropped"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Whether `pid` is `ancestor` or a descendant of it (a process gone
    /// meanwhile counts as one: it was listed, so it held the mapping).
    fn descends_from(mut pid: u32, ancestor: u32) -> bool {
        while pid != ancestor {
            let Some(stat) = crate::sys::names::stat_after_name(pid) else {
                return true;
            };
            // Field 4, the parent's pid.
            match stat.split_whitespace().nth(1).map(str::parse::<u32>) {
                Some(Ok(parent)) if parent > 1 => pid = parent,
                _ => return false,
            }
        }
        true
    }
}

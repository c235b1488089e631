//! Maintenance: namespace statistics, garbage collection of what dead
//! writers left, and `fsck`, which checks every object and rebuilds usage.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use super::capacity::Exclusive;
use super::dirs::{object_files, read_dir};
use super::reader::{lock_shared, read_meta_at};
use super::small::SmallTable;
use super::Store;
use crate::api::error::{Error, Result};
use crate::api::store::{CorruptObject, FsckReport, GcReport, NamespaceStats, ObjectStore};
use crate::format::{accounted, Header, ObjectKey};
use crate::sys::io::replaced_under;
use crate::sys::names::tmp_owner;

/// How long `gc` waits for the writes in flight before it rebuilds counts
/// that a dead writer left too high (the next `gc` or write tries again).
const GC_WAIT: Duration = Duration::from_secs(5);
/// How long `fsck` waits for the writes in flight before it recounts.
const FSCK_WAIT: Duration = Duration::from_secs(60);

impl Store {
    /// Namespace statistics from the files' sizes, without reading headers.
    pub(crate) fn stat_namespaces(&self) -> Result<Vec<NamespaceStats>> {
        let mut out = Vec::new();
        let table = self.small_table()?;
        for namespace in self.namespaces()? {
            let dir = self.ns_dir(&namespace);
            let small = match &table {
                Some(table) => table.list(&namespace)?,
                None => Vec::new(),
            };
            let (mut objects, mut bytes) = (
                small.len() as u64,
                small.iter().map(|m| m.stored_size).sum(),
            );
            for (_, path) in object_files(&dir)? {
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    objects += 1;
                    bytes += accounted(meta.len());
                }
            }
            out.push(NamespaceStats {
                namespace,
                objects,
                bytes,
            });
        }
        Ok(out)
    }

    /// Removes what writers that died before sealing left behind: temporary
    /// object files and half-made namespace directories whose process is gone,
    /// and namespaces left in the trash by an interrupted removal; object
    /// files a small object of the same name replaced; reader slots and
    /// watcher registrations in the table of processes that died. Also
    /// gives back the pages that replaced objects hold in the recycling pool.
    pub(crate) fn collect_garbage(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        // Reader slots and watcher registrations of processes that died.
        let table = self.small_table()?;
        if let Some(table) = &table {
            table.clear_stale_readers()?;
            table.prune_watchers()?;
        }
        // A control file being created by an opener that died.
        for entry in read_dir(&self.inner.root)? {
            let dead = tmp_owner(&entry.file_name()).is_some_and(|owner| !owner.alive());
            if dead && entry.file_type().is_ok_and(|t| t.is_file()) {
                let len = entry.metadata().map_or(0, |m| m.len());
                if std::fs::remove_file(entry.path()).is_ok() {
                    report.stray_objects += 1;
                    report.bytes_freed += len;
                }
            }
        }
        for entry in read_dir(&self.inner.ns_root)? {
            let name = entry.file_name();
            let path = entry.path();
            if let Some(owner) = tmp_owner(&name) {
                if !owner.alive() && remove_tree(&path, &mut report).is_ok() {
                    report.stray_namespaces += 1;
                }
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            for entry in read_dir(&path)? {
                let name = entry.file_name();
                if tmp_owner(&name).is_some_and(|owner| !owner.alive()) {
                    let path = entry.path();
                    let len = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
                    if std::fs::remove_file(&path).is_ok() {
                        report.stray_objects += 1;
                        report.bytes_freed += len;
                    }
                }
            }
            if let Some(table) = &table {
                self.remove_shadowed_files(table, &path, &mut report)?;
                // Marks a writer killed mid-publish left out.
                if let Some(namespace_hash) = name.to_str().and_then(ObjectKey::from_hex) {
                    let files: Vec<ObjectKey> = object_files(&path)?
                        .into_iter()
                        .map(|(key, _)| key)
                        .collect();
                    table.mark_files(namespace_hash.0, &files, |key| {
                        path.join(key.to_hex()).exists()
                    })?;
                }
            }
        }
        for entry in read_dir(&self.inner.trash)? {
            let path = entry.path();
            if tmp_owner(&entry.file_name()).is_some_and(|owner| owner.alive()) {
                continue;
            }
            if remove_tree(&path, &mut report).is_ok() {
                report.stray_namespaces += 1;
            }
        }
        (report.recycled_objects, report.recycled_bytes) = self.drain_pool();
        report.reservations_reclaimed = self.heal(GC_WAIT)?.unwrap_or(0);
        Ok(report)
    }

    /// Removes the object files in namespace directory `dir` whose name
    /// also has an entry in the table (left by a writer killed between the
    /// two, or by racing writers): the entry is the object, the file only
    /// counts. Each goes under the table's writer lock, while the entry is
    /// still there.
    fn remove_shadowed_files(
        &self,
        table: &SmallTable,
        dir: &Path,
        report: &mut GcReport,
    ) -> Result<()> {
        for (key, path) in object_files(dir)? {
            let Ok(Some(meta)) = read_meta_at(&path) else {
                continue;
            };
            if ObjectKey::new(&meta.namespace, &meta.name) != key
                || !table.contains(&meta.namespace, &meta.name)?
            {
                continue;
            }
            let len = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
            let entered = self.inner.control.enter()?;
            let removed = table.while_entry(&meta.namespace, &meta.name, || {
                self.delete_file(&meta.namespace, &meta.name, &entered)
            })?;
            if removed == Some(true) {
                report.stray_objects += 1;
                report.bytes_freed += len;
            }
        }
        Ok(())
    }

    /// Gives back what writers that died had reserved: when a writer slot
    /// belongs to a process that is gone, rebuilds the counts once the
    /// writers in flight are done (waiting at most `wait`). Returns the
    /// bytes given back, or `None` when no writer died (or the writers in
    /// flight did not finish in time: the next call tries again).
    pub(crate) fn heal(&self, wait: Duration) -> Result<Option<u64>> {
        if self.inner.control.dead_writers() == 0 {
            return Ok(None);
        }
        let Some(exclusive) = self.inner.control.exclusive(wait)? else {
            return Ok(None);
        };
        let before = self.inner.control.used();
        let after = self.recount(&exclusive)?;
        Ok(Some(before.saturating_sub(after)))
    }

    /// Sets the counters to what the files say: the objects in every
    /// namespace (whole pages of each file), the pool's files, and no bytes
    /// in flight (the lock held exclusively means none are). Returns the
    /// objects' bytes.
    fn recount(&self, exclusive: &Exclusive) -> Result<u64> {
        let mut used = 0;
        for entry in read_dir(&self.inner.ns_root)? {
            let dir = entry.path();
            if tmp_owner(&entry.file_name()).is_some() || !dir.is_dir() {
                continue;
            }
            for (_, path) in object_files(&dir)? {
                used += std::fs::symlink_metadata(&path).map_or(0, |m| accounted(m.len()));
            }
        }
        if let Some(table) = self.small_table()? {
            for entry in table.check_all()? {
                used += accounted(entry.file_len);
            }
        }
        self.inner.control.recount(used, exclusive);
        self.recount_pool(exclusive)?;
        self.inner.control.reset_slots(exclusive);
        Ok(used)
    }

    /// Checks every object's header and rebuilds the usage count from the
    /// objects present. With `delete_corrupt`, removes objects that fail.
    ///
    /// Safe beside live writers: the objects are checked while they write,
    /// and the counts are rebuilt once the writes in flight are done (new
    /// ones wait for the recount, which only lists files).
    pub(crate) fn check_objects(&self, delete_corrupt: bool) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let table = self.small_table_for_writing()?;
        for entry in read_dir(&self.inner.ns_root)? {
            let dir = entry.path();
            if tmp_owner(&entry.file_name()).is_some() || !dir.is_dir() {
                continue;
            }
            for (key, path) in object_files(&dir)? {
                let checked_file = file_identity(&path);
                match check_object(&path, key) {
                    Ok(checked) => report.objects += u64::from(checked),
                    Err(err) => {
                        // Deleted under the accounting lock, so a recount
                        // cannot see it half gone, and under the table's
                        // writer lock, which every publish of a file holds:
                        // only if it is still the file found corrupt, not a
                        // good object a writer put at the name since.
                        let deleted = delete_corrupt && {
                            let _entered = self.inner.control.enter()?;
                            table.with_writer_lock(|| {
                                checked_file.is_some()
                                    && file_identity(&path) == checked_file
                                    && std::fs::remove_file(&path).is_ok()
                            })?
                        };
                        report.deleted += u64::from(deleted);
                        let reason = match &err {
                            // Without the error's advice, which is to run fsck:
                            // fsck's own report says what to do.
                            Error::Corrupt { location, reason } => {
                                format!("{location} is corrupt: {reason}")
                            }
                            other => other.to_string(),
                        };
                        report.corrupt.push(CorruptObject {
                            location: path.into(),
                            reason,
                        });
                    }
                }
            }
        }
        for entry in table.check_all()? {
            let (namespace, name) = (entry.namespace, entry.name);
            let Some(reason) = entry.problem else {
                report.objects += 1;
                continue;
            };
            let deleted = delete_corrupt && {
                let _entered = self.inner.control.enter()?;
                table.delete_damaged(&namespace, &name)?
            };
            report.deleted += u64::from(deleted);
            report.corrupt.push(CorruptObject {
                location: table.location(&namespace, &name),
                reason: format!("the small object {name:?} in namespace {namespace:?}: {reason}"),
            });
        }
        let exclusive = self
            .inner
            .control
            .exclusive(FSCK_WAIT)?
            .ok_or_else(|| Error::Busy {
                location: self.inner.root.clone().into(),
                operation: "rebuild the usage count",
                waited: FSCK_WAIT,
            })?;
        report.used_before = self.inner.control.used();
        report.used_after = self.recount(&exclusive)?;
        report.recycled = self.inner.control.pooled();
        Ok(report)
    }
}

/// Verifies the header (and checksum, when present) of one object file,
/// reading it under a shared lock so a recycling writer cannot change it
/// meanwhile. A file replaced while it was checked is checked again; one
/// deleted since it was listed is not an object any more (`Ok(false)`).
fn check_object(path: &Path, key: ObjectKey) -> Result<bool> {
    let mut attempts = 0;
    loop {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(Error::io("open", path, err)),
        };
        let checked = match lock_shared(&file, path)? {
            true => check_bytes(&mut file, path, key),
            // An exclusive lock on a file that has a name: a writer's process
            // forked while it wrote, and its child still holds the lock. The
            // file is whole (it was published after the write); it is only
            // not checked.
            false if !replaced_under(&file, path) => Ok(()),
            false => Err(Error::corrupt(path, "being rewritten")),
        };
        match checked {
            Err(_) if attempts < 3 && replaced_under(&file, path) => attempts += 1,
            other => return other.map(|()| true),
        }
    }
}

fn check_bytes(file: &mut File, path: &Path, key: ObjectKey) -> Result<()> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    let header = Header::decode(&bytes).map_err(|e| Error::from_format(e, path))?;
    if header.key != key || ObjectKey::new(&header.namespace, &header.name) != key {
        return Err(Error::corrupt(
            path,
            "the file's name does not match the key in its header",
        ));
    }
    if header.file_len() != bytes.len() as u64 {
        return Err(Error::corrupt(
            path,
            format!(
                "file is {} bytes, its header says {}",
                bytes.len(),
                header.file_len()
            ),
        ));
    }
    if let Some(checksum) = header.checksum() {
        if let Err(found) = checksum.check(&bytes[header.encoded_len()..]) {
            return Err(Error::corrupt(
                path,
                format!(
                    "payload checksum mismatch: stored {:016x}, the payload gives {found:016x}",
                    checksum.value()
                ),
            ));
        }
    }
    Ok(())
}

fn remove_tree(path: &Path, report: &mut GcReport) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        report.bytes_freed += entry.metadata().map_or(0, |m| m.len());
    }
    std::fs::remove_dir_all(path)
}

/// The device and inode of the file at `path`, without following a link.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

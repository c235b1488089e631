//! The store's directories: the private root, one directory per namespace
//! (named by a hash of the namespace), and the listings of both.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{RenameFlags, CWD};
use rustix::io::Errno;

use super::{Store, DIR_MODE};
use crate::api::error::{Error, Result, UnsafePathReason};
use crate::format::{namespace_dir_name, ObjectKey};
use crate::sys::io::os;
use crate::sys::names::unique_tmp_name;

/// The file in a namespace's directory that holds the namespace's name.
pub(crate) const NAMESPACE_FILE: &str = ".namespace";

/// The URL schemes brain's stores answer to (`brain::open`).
pub const STORE_SCHEMES: [&str; 9] = [
    "rediss+cluster",
    "redis+cluster",
    "rediss",
    "redis",
    "valkeys",
    "valkey",
    "memory",
    "mem",
    "shm",
];

/// Refuses a store path that cannot be meant as one: empty, or a store URL
/// (`memory://x`, which as a path would make a store in `./memory:/x`).
pub(crate) fn refuse_non_path(path: &Path) -> Result<()> {
    let refuse = |reason| {
        Err(Error::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    let text = path.to_string_lossy();
    if text.trim().is_empty() {
        return refuse(UnsafePathReason::Empty);
    }
    match store_url_scheme(&text) {
        Some(scheme) => refuse(UnsafePathReason::IsAUrl { scheme }),
        None => Ok(()),
    }
}

/// The scheme of [`STORE_SCHEMES`] that `text` starts with, followed by
/// `://` (any case): a store URL, not a path.
pub fn store_url_scheme(text: &str) -> Option<&'static str> {
    STORE_SCHEMES.into_iter().find(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
            && text[scheme.len()..].starts_with("://")
    })
}

/// Creates `path` as a directory with `mode` if it is missing, then checks
/// that it is a real directory, owned by this user, and not writable by others.
pub(crate) fn ensure_private_dir(path: &Path) -> Result<()> {
    let mode = DIR_MODE;
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            // The umask may have taken bits away; the mode is part of the contract.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions on", path, e))?;
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(Error::io("create the directory", path, err)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("inspect", path, e))?;
    let refuse = |reason| {
        Err(Error::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    if meta.file_type().is_symlink() {
        return refuse(UnsafePathReason::Symlink);
    }
    if !meta.is_dir() {
        return refuse(UnsafePathReason::NotADirectory);
    }
    let current = rustix::process::getuid().as_raw();
    if meta.uid() != current {
        return refuse(UnsafePathReason::OwnedByOtherUser {
            owner: meta.uid(),
            current,
        });
    }
    let forbidden = 0o022;
    if meta.mode() & forbidden != 0 {
        return refuse(UnsafePathReason::TooPermissive {
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// What a store's own directory holds, besides writers' `.tmp.*` files
/// (and `lost+found`, at the root of a filesystem made for the store).
const STORE_ENTRIES: [&str; 6] = [
    super::CONTROL_FILE,
    super::NAMESPACES_DIR,
    super::TRASH_DIR,
    super::POOL_DIR,
    super::SMALL_DIR,
    super::LOCKS_DIR,
];

/// Refuses a directory that holds files of its own and is not a store (it
/// has no control file): opening it would put a store's files among them
/// (`Brain(path=HOME)`, a mistyped `--store`).
pub(crate) fn refuse_other_files(root: &Path) -> Result<()> {
    if std::fs::symlink_metadata(root.join(super::CONTROL_FILE)).is_ok() {
        return Ok(());
    }
    let entries = std::fs::read_dir(root).map_err(|e| Error::io("list", root, e))?;
    for entry in entries {
        let name = entry.map_err(|e| Error::io("list", root, e))?.file_name();
        let name = name.to_string_lossy();
        // A damaged control file moved aside (`brain.ctl.damaged`) is the
        // store's too: its error says to move it.
        let store_own = STORE_ENTRIES.contains(&&*name)
            || name.starts_with(".tmp.")
            || name.starts_with(super::CONTROL_FILE)
            || name == "lost+found";
        if !store_own {
            return Err(Error::UnsafePath {
                path: root.to_owned(),
                reason: UnsafePathReason::HoldsOtherFiles,
            });
        }
    }
    Ok(())
}

impl Store {
    /// Creates the namespace's directory if it does not exist. The directory
    /// is made complete (with its name file) under a temporary name and
    /// renamed into place, so no one sees a namespace without a name.
    pub(crate) fn make_namespace_dir(&self, namespace: &str) -> Result<PathBuf> {
        let dir = self.ns_dir(namespace);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.inner.ns_root.join(unique_tmp_name("ns"));
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&tmp)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound if !self.inner.ns_root.exists() => {
                    self.removed_since_opened("write")
                }
                _ => Error::io("create a namespace directory", &tmp, e),
            })?;
        let cleanup = |tmp: &Path| {
            let _ = std::fs::remove_file(tmp.join(NAMESPACE_FILE));
            let _ = std::fs::remove_dir(tmp);
        };
        let write_name = || -> io::Result<()> {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(DIR_MODE))?;
            std::fs::write(tmp.join(NAMESPACE_FILE), namespace.as_bytes())
        };
        if let Err(err) = write_name() {
            cleanup(&tmp);
            return Err(Error::io("write the namespace name in", &tmp, err));
        }
        match rustix::fs::renameat_with(CWD, &tmp, CWD, &dir, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(dir),
            // Another process created it first: theirs is as good as ours.
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => {
                cleanup(&tmp);
                Ok(dir)
            }
            Err(err) => {
                cleanup(&tmp);
                Err(Error::io("create the namespace directory", &dir, os(err)))
            }
        }
    }

    /// Every namespace, by the name file in each namespace directory.
    pub(crate) fn list_namespaces(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in read_dir(&self.inner.ns_root)? {
            let Some(dir) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if dir.len() != 32 || !dir.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let name_file = entry.path().join(NAMESPACE_FILE);
            match std::fs::read(&name_file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(name) if namespace_dir_name(&name) == dir => out.push(name),
                    _ => return Err(Error::corrupt(name_file, "namespace name does not match")),
                },
                // Removed while we listed.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io("read", name_file, err)),
            }
        }
        out.sort();
        Ok(out)
    }
}

pub(crate) fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::io("list", dir, e)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Error::io("list", dir, err)),
    }
}

/// The sealed object files of a namespace directory, with their keys.
pub(crate) fn object_files(dir: &Path) -> Result<Vec<(ObjectKey, PathBuf)>> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter_map(|entry| {
            let key = ObjectKey::from_hex(entry.file_name().to_str()?)?;
            Some((key, entry.path()))
        })
        .collect())
}

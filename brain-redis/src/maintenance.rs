//! `gc` and `fsck` of a Redis store: what dead writers left, and a recount.

use std::time::{Duration, Instant};

use brain_core::{Error, FsckReport, GcReport, ObjectKey, ObjectStore, Result};

use crate::conn::keys_matching;
use crate::keys::new_version;
use crate::scripts;
use crate::store::{all_pointers, corrupt, RedisStore};

/// How long `fsck` counts again when writes or deletes changed the count
/// under its recount, before it gives up ([`Error::Busy`]).
const RECOUNT_WAIT: Duration = Duration::from_secs(10);

/// A recount's lease: an `fsck` that died stops holding the writers to
/// counting their changes after this.
const RECOUNT_LEASE_MS: u64 = 600_000;

/// Deletes `key` when it has no expiry (one with an expiry, pending or in
/// its grace period, goes by itself); the bytes `size` counts in it, if it
/// was deleted.
fn remove_if_lasting(
    conn: &mut redis::Connection,
    key: &str,
    size: &redis::Cmd,
) -> redis::RedisResult<Option<u64>> {
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(conn)?;
    if ttl != -1 {
        return Ok(None);
    }
    let len: u64 = size.query(conn)?;
    let gone: u64 = redis::cmd("DEL").arg(key).query(conn)?;
    Ok((gone > 0).then_some(len))
}

/// Chunk keys that no pointer references and that have no expiry (a
/// publish persisted them and the pointer moved on without expiring them,
/// or a script was cut short); staged pointers with no expiry (a writer
/// killed with its request sent up to the staged pointer's expiry);
/// catalog entries with no pointer; pointers missing from their catalog,
/// put back; the reservations of writes that died, given back.
pub(crate) fn gc(store: &RedisStore) -> Result<GcReport> {
    let keys = &store.inner.keys;
    let reclaimed = store
        .inner
        .pool
        .run(|c| {
            scripts::reap()
                .key(keys.held())
                .key(keys.leases())
                .key(keys.used())
                .key(keys.changing())
                .invoke::<u64>(c.like())
        })
        .map_err(|e| store.err("collect garbage in", &e))?;
    let pointers = all_pointers(store)?;
    let current: std::collections::HashMap<ObjectKey, String> = pointers
        .iter()
        .map(|(k, p)| (*k, p.version.clone()))
        .collect();
    let chunk_pattern = format!("{}:c:*", keys.prefix);
    let chunk_head = format!("{}:c:{{", keys.prefix);
    let staged_pattern = keys.staged_pattern();
    let mut report = GcReport {
        reservations_reclaimed: reclaimed,
        ..GcReport::default()
    };
    let removed = store
        .on_primaries(|conn| {
            let mut removed = (0u64, 0u64);
            let mut count = |freed: Option<u64>| {
                if let Some(len) = freed {
                    removed.0 += 1;
                    removed.1 += len;
                }
            };
            let chunks: Vec<String> = keys_matching(conn, &chunk_pattern)?;
            for chunk in chunks {
                let Some(rest) = chunk.strip_prefix(&chunk_head) else {
                    continue;
                };
                let Some((hex, rest)) = rest.split_once("}:") else {
                    continue;
                };
                let Some(key) = ObjectKey::from_hex(hex) else {
                    continue;
                };
                let Some((version, _)) = rest.rsplit_once(':') else {
                    continue;
                };
                if current.get(&key).is_some_and(|v| v == version) {
                    continue;
                }
                count(remove_if_lasting(
                    conn,
                    &chunk,
                    redis::cmd("STRLEN").arg(&chunk),
                )?);
            }
            let staged: Vec<String> = keys_matching(conn, &staged_pattern)?;
            for pointer in staged.iter().filter(|key| keys.is_staged(key)) {
                let kind: String = redis::cmd("TYPE").arg(pointer).query(conn)?;
                if kind != "hash" {
                    continue;
                }
                let size = redis::cmd("HSTRLEN").arg(pointer).arg("data").clone();
                count(remove_if_lasting(conn, pointer, &size)?);
            }
            Ok(removed)
        })
        .map_err(|e| store.err("collect garbage in", &e))?;
    for (stray, bytes) in removed {
        report.stray_objects += stray;
        report.bytes_freed += bytes;
    }
    // This host's copies of names the server has no more, or of versions it
    // no longer holds (deleted or replaced on another host, a server
    // flushed or restarted empty): no read would use them again.
    if let Some(cache) = &store.inner.cache {
        for namespace in store.namespaces()? {
            for (name, version) in cache.copies(&namespace)? {
                let key = ObjectKey::new(&namespace, &name);
                if current.get(&key) != Some(&version) {
                    let freed = cache.drop_copy(&namespace, &name);
                    if freed > 0 {
                        report.stray_objects += 1;
                        report.bytes_freed += freed;
                    }
                }
            }
        }
    }
    // Catalogs: entries whose pointer is gone (a writer that died before
    // publishing, a delete cut short), and pointers missing from them.
    for namespace in store.namespaces()? {
        for (name, key) in store.catalog_entries(&namespace)? {
            if !current.contains_key(&key) {
                let pointer_key = keys.pointer(key);
                let catalog = keys.catalog(&namespace);
                let dropped: bool = store
                    .inner
                    .pool
                    .run(|c| {
                        let exists: bool =
                            redis::cmd("EXISTS").arg(&pointer_key).query(c.like())?;
                        if exists {
                            return Ok(false);
                        }
                        redis::cmd("HDEL").arg(&catalog).arg(&name).query(c.like())
                    })
                    .map_err(|e| store.err("collect garbage in", &e))?;
                if dropped {
                    report.stray_objects += 1;
                }
            }
        }
    }
    for (key, pointer) in &pointers {
        let catalog = keys.catalog(&pointer.meta.namespace);
        store
            .inner
            .pool
            .run(|c| {
                redis::cmd("HSET")
                    .arg(&catalog)
                    .arg(&pointer.meta.name)
                    .arg(key.to_hex())
                    .exec(c.like())?;
                redis::cmd("SADD")
                    .arg(keys.namespaces())
                    .arg(&pointer.meta.namespace)
                    .exec(c.like())
            })
            .map_err(|e| store.err("collect garbage in", &e))?;
    }
    Ok(report)
}

/// Checks that every object's chunks are all there with the right total
/// length, and rebuilds the usage count: the objects' stored sizes plus
/// what the writes in progress hold (the reservations of writes that died
/// are given back).
///
/// Safe beside live writers: the recount counts the changes of the count
/// made while it runs (scripts.rs, `RECOUNT_BEGIN`), and a figure that a
/// write or delete made stale is not written; the count is recounted again
/// (from the pointers alone) for up to `RECOUNT_WAIT`, then [`Error::Busy`]
/// (the objects were checked, and corrupt ones deleted if asked).
pub(crate) fn fsck(store: &RedisStore, delete_corrupt: bool) -> Result<FsckReport> {
    let keys = &store.inner.keys;
    let used_before: Option<u64> = store
        .inner
        .pool
        .run(|c| redis::cmd("GET").arg(keys.used()).query(c.like()))
        .map_err(|e| store.err("check", &e))?;
    let mut report = FsckReport {
        used_before: used_before.unwrap_or(0),
        ..FsckReport::default()
    };
    let started = Instant::now();
    let mut token = new_version();
    let mut moves = recount_begin(store, &token)?;
    let mut objects = check_objects(store, delete_corrupt, &mut report);
    loop {
        let found = match objects {
            Ok(bytes) => bytes,
            Err(err) => {
                // Ends the recount, changing nothing.
                let _ = recount_end(store, &token, 0, u64::MAX);
                return Err(err);
            }
        };
        let (rebuilt, count) = recount_end(store, &token, found, moves)?;
        if rebuilt {
            report.used_after = count;
            return Ok(report);
        }
        if started.elapsed() > RECOUNT_WAIT {
            return Err(Error::Busy {
                location: store.location(),
                operation: "rebuild the usage count",
                waited: RECOUNT_WAIT,
            });
        }
        token = new_version();
        moves = recount_begin(store, &token)?;
        objects = all_pointers(store).map(|pointers| {
            pointers
                .iter()
                .map(|(_, pointer)| pointer.meta.stored_size)
                .sum()
        });
    }
}

/// Starts the recount `token`; the changes of the count so far.
fn recount_begin(store: &RedisStore, token: &str) -> Result<u64> {
    let keys = &store.inner.keys;
    store
        .inner
        .pool
        .run(|c| {
            scripts::recount_begin()
                .key(keys.cfg())
                .key(keys.recounts())
                .arg(token)
                .arg(RECOUNT_LEASE_MS)
                .invoke(c.like())
        })
        .map_err(|e| store.err("check", &e))
}

/// Ends the recount `token`, which found `objects` bytes of objects:
/// whether the count was rebuilt (nothing changed it meanwhile), and the
/// count now.
fn recount_end(store: &RedisStore, token: &str, objects: u64, moves: u64) -> Result<(bool, u64)> {
    let keys = &store.inner.keys;
    let mark = keys.counted(token);
    let (rebuilt, count): (u64, u64) = store
        .inner
        .pool
        .run(|c| {
            scripts::recount_end()
                .key(keys.used())
                .key(keys.cfg())
                .key(keys.held())
                .key(keys.leases())
                .key(keys.recounts())
                .key(&mark)
                .key(keys.changing())
                .arg(objects)
                .arg(moves)
                .arg(token)
                .invoke(c.like())
        })
        .map_err(|e| store.err("check", &e))?;
    Ok((rebuilt == 1, count))
}

/// Checks every object (`fsck`), reporting and, with `delete_corrupt`,
/// deleting the corrupt ones; the stored sizes of the objects the names
/// hold.
fn check_objects(store: &RedisStore, delete_corrupt: bool, report: &mut FsckReport) -> Result<u64> {
    let keys = &store.inner.keys;
    let pointers = all_pointers(store)?;
    let mut used = 0;
    for (key, pointer) in &pointers {
        report.objects += 1;
        let lengths: Vec<Option<u64>> = store
            .inner
            .pool
            .run(|c| {
                let mut commands = Vec::new();
                for i in 0..pointer.chunks {
                    let chunk = keys.chunk(*key, &pointer.version, i);
                    let mut strlen = redis::cmd("STRLEN");
                    strlen.arg(&chunk);
                    let mut exists = redis::cmd("EXISTS");
                    exists.arg(&chunk);
                    commands.push(strlen);
                    commands.push(exists);
                }
                if commands.is_empty() {
                    return Ok(Vec::new());
                }
                let replies: Vec<u64> = c.pipeline(commands)?;
                Ok(replies
                    .chunks(2)
                    .map(|r| (r[1] == 1).then_some(r[0]))
                    .collect())
            })
            .map_err(|e| store.err("check", &e))?;
        let reason = if let Some(i) = lengths.iter().position(Option::is_none) {
            Some(format!(
                "object lost: chunk {i} of {} is gone from the server",
                pointer.chunks
            ))
        } else {
            let total: u64 = lengths.iter().flatten().sum();
            (pointer.chunks > 0 && total != pointer.len).then(|| {
                format!(
                    "its chunks hold {total} bytes, but its pointer says {}",
                    pointer.len
                )
            })
        };
        if reason.is_some() {
            // Replaced or deleted since the pointers were listed: a replaced
            // version's chunks expire within a second (scripts.rs,
            // `retire!`). What the name holds now is another object, checked
            // by the next fsck, and counted here.
            let now = store.read_meta(&pointer.meta.namespace, &pointer.meta.name)?;
            if now.as_ref().map(|p| &p.version) != Some(&pointer.version) {
                used += now.map_or(0, |p| p.meta.stored_size);
                continue;
            }
        }
        match reason {
            Some(reason) => {
                let location = store.location().join(format!(
                    "{:?}/{:?}",
                    pointer.meta.namespace, pointer.meta.name
                ));
                report.corrupt.push(corrupt(location, reason));
                if delete_corrupt {
                    // Only the version found lost: a name replaced since
                    // holds a new object, which the delete then leaves.
                    let (namespace, name) = (&pointer.meta.namespace, &pointer.meta.name);
                    let only_this_version =
                        store.expect_version(namespace, name, Some(&pointer.version));
                    match store.delete(namespace, name) {
                        Ok(true) => {
                            report.deleted += 1;
                            continue;
                        }
                        Ok(false) => continue,
                        Err(_) if only_this_version.conflicted() => {
                            let now = store.read_meta(namespace, name)?;
                            used += now.map_or(0, |p| p.meta.stored_size);
                            continue;
                        }
                        Err(err) => return Err(err),
                    }
                }
                used += pointer.meta.stored_size;
            }
            None => used += pointer.meta.stored_size,
        }
    }
    Ok(used)
}

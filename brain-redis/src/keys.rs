//! Key names, and the pointer that says which version a name holds.
//!
//! ```text
//! P:{g}:used          bytes in use (stored sizes, and writes' reservations)
//! P:{g}:cfg           settings: capacity; the recounts in progress
//! P:{g}:held          writes' reservations: write id -> bytes
//! P:{g}:leases        when each reservation lapses: write id, server ms
//! P:{g}:recounts      the recounts in progress, and when each lapses
//! P:{g}:changing      a cluster's writes and deletes in flight, and when each lapses
//! P:{g}:ns            the set of namespaces
//! P:n:{H}             a namespace's catalog: name -> T (H: the namespace's hash)
//! P:p:{T}             an object's pointer (T: the object key, 32 hex digits)
//! P:c:{T}:<v>:<i>     chunk i of version v
//! P:f:{T}:<v>         the fetches of version v in progress (a set of tokens)
//! P:l:{T}             the name's lock
//! P:s:{T}:<v>         version v's pointer, staged before its publish
//! ```
//!
//! `P` is the prefix (`brain`). Every key of one object carries the hash
//! tag `{T}`, so they share a cluster slot and one script can see them all;
//! the store-wide keys share the tag `{g}`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brain_core::format::namespace_dir_name;
use brain_core::{stored_size, Codec, Error, Location, ObjectKey, ObjectMeta, Result};
use redis::Value;

use crate::conn::bytes_of;

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) prefix: String,
}

impl Keys {
    pub(crate) fn used(&self) -> String {
        format!("{}:{{g}}:used", self.prefix)
    }
    pub(crate) fn cfg(&self) -> String {
        format!("{}:{{g}}:cfg", self.prefix)
    }
    /// The bytes each write in progress holds of the count, by write id
    /// (its new version): a write that dies holds them until its lease
    /// lapses (scripts.rs, `reap` in `accounting!`).
    pub(crate) fn held(&self) -> String {
        format!("{}:{{g}}:held", self.prefix)
    }
    /// The reservations' leases: a sorted set of write ids, scored by the
    /// server's clock in ms at which each lapses.
    pub(crate) fn leases(&self) -> String {
        format!("{}:{{g}}:leases", self.prefix)
    }
    /// The recounts (`fsck`) in progress: a sorted set of tokens, scored
    /// by the server's clock in ms at which each lapses.
    pub(crate) fn recounts(&self) -> String {
        format!("{}:{{g}}:recounts", self.prefix)
    }
    /// A cluster's writes and deletes between their change of the count
    /// and their script (which runs on another slot): a sorted set of ids,
    /// scored by the server's clock in ms at which each lapses.
    pub(crate) fn changing(&self) -> String {
        format!("{}:{{g}}:changing", self.prefix)
    }
    pub(crate) fn namespaces(&self) -> String {
        format!("{}:{{g}}:ns", self.prefix)
    }
    pub(crate) fn catalog(&self, namespace: &str) -> String {
        format!("{}:n:{{{}}}", self.prefix, namespace_dir_name(namespace))
    }
    pub(crate) fn pointer(&self, key: ObjectKey) -> String {
        format!("{}:p:{{{}}}", self.prefix, key.to_hex())
    }
    /// The prefix of the pointer keys, which tracking watches.
    pub(crate) fn pointer_prefix(&self) -> String {
        format!("{}:p:", self.prefix)
    }
    /// The object key of a pointer key, if it is one.
    pub(crate) fn key_of_pointer(&self, pointer: &[u8]) -> Option<ObjectKey> {
        let text = std::str::from_utf8(pointer).ok()?;
        let hex = text
            .strip_prefix(&self.pointer_prefix())?
            .strip_prefix('{')?
            .strip_suffix('}')?;
        ObjectKey::from_hex(hex)
    }
    /// `P:c:{T}:`: a chunk's key is this, the version, `:` and its index.
    pub(crate) fn chunk_prefix(&self, key: ObjectKey) -> String {
        format!("{}:c:{{{}}}:", self.prefix, key.to_hex())
    }
    pub(crate) fn chunk(&self, key: ObjectKey, version: &str, index: u64) -> String {
        format!("{}{version}:{index}", self.chunk_prefix(key))
    }
    /// `P:f:{T}:`: the key of a version's fetches in progress is this and
    /// the version.
    pub(crate) fn readers_prefix(&self, key: ObjectKey) -> String {
        format!("{}:f:{{{}}}:", self.prefix, key.to_hex())
    }
    pub(crate) fn readers(&self, key: ObjectKey, version: &str) -> String {
        format!("{}{version}", self.readers_prefix(key))
    }
    /// A whole pointer of version `version` (with its inline payload),
    /// written before the publish that renames it onto the name's pointer
    /// (scripts.rs, `PUBLISH`).
    pub(crate) fn staged(&self, key: ObjectKey, version: &str) -> String {
        format!("{}:s:{{{}}}:{version}", self.prefix, key.to_hex())
    }
    /// The pattern of every staged pointer.
    pub(crate) fn staged_pattern(&self) -> String {
        format!("{}:s:*", self.prefix)
    }
    /// Whether `key` is the name of a staged pointer under this prefix (not
    /// one of another prefix that begins with this one and `:s`).
    pub(crate) fn is_staged(&self, key: &str) -> bool {
        key.strip_prefix(&format!("{}:s:{{", self.prefix))
            .and_then(|rest| rest.split_once("}:"))
            .is_some_and(|(hex, version)| {
                ObjectKey::from_hex(hex).is_some()
                    && !version.is_empty()
                    && version.bytes().all(|b| b.is_ascii_hexdigit())
            })
    }
    pub(crate) fn lock(&self, key: ObjectKey) -> String {
        format!("{}:l:{{{}}}", self.prefix, key.to_hex())
    }
    /// What the delete of `key` made with call token `token` found, and
    /// the version it deleted, for a minute: a run again of the same call
    /// answers the same, and a publish of that version run again after its
    /// reply was lost does not bring it back (scripts.rs).
    pub(crate) fn deleted(&self, key: ObjectKey) -> String {
        format!("{}:d:{{{}}}", self.prefix, key.to_hex())
    }
    /// The mark of a change of the usage count made by the call `token`,
    /// for a minute (beside the count, on its slot).
    pub(crate) fn counted(&self, token: &str) -> String {
        format!("{}:{{g}}:r:{token}", self.prefix)
    }
}

/// The pointer fields a metadata read asks for, in this order.
pub(crate) const META_FIELDS: [&str; 11] = [
    "ns", "name", "v", "seq", "len", "n", "cs", "x", "c", "desc", "t",
];

/// What a name points at: a version, its layout and its metadata.
#[derive(Debug, Clone)]
pub(crate) struct Pointer {
    pub(crate) version: String,
    pub(crate) len: u64,
    /// Chunks; 0 when the payload is inline.
    pub(crate) chunks: u64,
    pub(crate) checksum: u64,
    pub(crate) meta: ObjectMeta,
    /// The payload, for an inline object read whole.
    pub(crate) data: Option<Vec<u8>>,
}

fn field<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

impl Pointer {
    /// Parses a pointer from its fields (from HGETALL, or HMGET of
    /// [`META_FIELDS`]); `None` when it does not exist.
    pub(crate) fn parse(
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        location: &Location,
    ) -> Result<Option<Pointer>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let bad = |what: &str| Error::corrupt(location.clone(), format!("its pointer has {what}"));
        let text = |name: &str| -> Result<String> {
            let raw = field(&fields, name).ok_or_else(|| bad(&format!("no field {name:?}")))?;
            String::from_utf8(raw.to_vec())
                .map_err(|_| bad(&format!("a field {name:?} that is not UTF-8")))
        };
        let number = |name: &str| -> Result<u64> {
            text(name)?
                .parse::<u64>()
                .map_err(|_| bad(&format!("a field {name:?} that is not a number")))
        };
        let namespace = text("ns")?;
        let name = text("name")?;
        let description = text("desc")?;
        let len = number("len")?;
        let codec = Codec::from_tag(
            u16::try_from(number("c")?).map_err(|_| bad("a codec tag out of range"))?,
        );
        let created_nanos = number("t")?;
        let checksum =
            u64::from_str_radix(&text("x")?, 16).map_err(|_| bad("a checksum that is not hex"))?;
        let meta = ObjectMeta {
            stored_size: stored_size(&namespace, &name, &description, len),
            namespace,
            name,
            codec,
            size: len,
            created: UNIX_EPOCH + Duration::from_nanos(created_nanos),
            description,
        };
        let data = fields
            .iter()
            .position(|(k, _)| k == b"data")
            .map(|i| fields[i].1.clone());
        Ok(Some(Pointer {
            version: text("v")?,
            len,
            chunks: number("n")?,
            checksum,
            meta,
            data,
        }))
    }

    /// Parses the reply of HMGET [`META_FIELDS`].
    pub(crate) fn from_meta_reply(
        values: Vec<Value>,
        location: &Location,
    ) -> Result<Option<Pointer>> {
        if values.iter().all(|v| matches!(v, Value::Nil)) {
            return Ok(None);
        }
        let fields = META_FIELDS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| bytes_of(v).map(|v| (k.as_bytes().to_vec(), v)))
            .collect();
        Pointer::parse(fields, location)
    }
}

/// The pointer fields of a new version, for the publish script.
pub(crate) struct NewVersion<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) codec: Codec,
    pub(crate) description: &'a str,
    pub(crate) len: u64,
    pub(crate) chunks: u64,
    pub(crate) chunk_size: u64,
    pub(crate) checksum: u64,
    pub(crate) created: SystemTime,
}

/// The names of the fields [`NewVersion::field_values`] gives values of.
pub(crate) const VERSION_FIELDS: [&str; 8] = ["len", "n", "cs", "x", "c", "desc", "t", "ss"];

impl NewVersion<'_> {
    /// The values of the pointer's fields other than `ns`, `name` and `v`
    /// (which the publish script has as arguments of their own), in the
    /// order the script names them: [`VERSION_FIELDS`].
    pub(crate) fn field_values(&self) -> [String; 8] {
        let created = self
            .created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        [
            self.len.to_string(),
            self.chunks.to_string(),
            self.chunk_size.to_string(),
            format!("{:016x}", self.checksum),
            self.codec.tag().to_string(),
            self.description.to_owned(),
            created.to_string(),
            stored_size(self.namespace, self.name, self.description, self.len).to_string(),
        ]
    }
}

/// A fresh version id (also a lock's token): 128 bits, as 32 hex digits,
/// never a plain count: a server restarted empty would count again from
/// the start, and a host cache would take the new object for the old one.
///
/// Each thread draws 128 random bits from the kernel once (again in a
/// forked child, which would otherwise reuse its parent's: the bits are
/// kept with the process's [`brain_core::fork_mark`], which no descendant
/// shares even when it gets an exited ancestor's process id) and numbers
/// its versions; a version is the xxh3-128 of the bits and the number. So
/// a write makes no system call for its version (a `getrandom` was one of
/// the few a small write made). Two versions of one thread differ in their
/// number, those of different threads, processes and hosts in their bits;
/// a version is then the same as another only if xxh3-128 gives two
/// different inputs one hash (a chance of about 2^-128 per pair, as for
/// two random ids). Kept per thread, not behind a lock, so that no lock
/// can be held at a fork.
pub(crate) fn new_version() -> String {
    thread_local! {
        /// The process the bits were drawn in, the bits, and the versions
        /// numbered so far.
        static SOURCE: Cell<Option<(u64, u128, u64)>> = const { Cell::new(None) };
    }
    SOURCE.with(|source| next_version(source, brain_core::fork_mark()))
}

/// The next version of `source` in the process marked `process`, drawing
/// new bits when `source` has none or was drawn in another process (a
/// forked child's thread inherits its parent thread's).
fn next_version(source: &Cell<Option<(u64, u128, u64)>>, process: u64) -> String {
    let (bits, number) = match source.get() {
        Some((drawn_in, bits, number)) if drawn_in == process => (bits, number + 1),
        _ => (random_bits(), 1),
    };
    source.set(Some((process, bits, number)));
    let mut input = [0u8; 24];
    input[..16].copy_from_slice(&bits.to_le_bytes());
    input[16..].copy_from_slice(&number.to_le_bytes());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&input))
}

/// 128 random bits from the kernel.
fn random_bits() -> u128 {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // No getrandom (a sandbox may refuse it): what tells this
                // draw from every other one, hashed. The time and process id
                // tell processes apart, the thread and a count of the
                // process's draws its threads (which may draw at the same
                // clock reading), and a stack address the rest.
                static DRAWS: AtomicU64 = AtomicU64::new(0);
                let seed = format!(
                    "{:?} {} {:?} {} {:p}",
                    SystemTime::now(),
                    brain_core::process_id(),
                    std::thread::current().id(),
                    DRAWS.fetch_add(1, Ordering::Relaxed),
                    &filled,
                );
                return xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
            }
        }
    }
    u128::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_tag_per_object() {
        let keys = Keys {
            prefix: "brain".into(),
        };
        let key = ObjectKey::new("ns", "x");
        let tag = format!("{{{}}}", key.to_hex());
        for k in [keys.pointer(key), keys.chunk(key, "v1", 3), keys.lock(key)] {
            assert!(k.contains(&tag), "{k}");
        }
        assert_eq!(keys.key_of_pointer(keys.pointer(key).as_bytes()), Some(key));
        assert_eq!(keys.key_of_pointer(b"brain:p:{nothex}"), None);
        assert_ne!(new_version(), new_version());
        assert_eq!(new_version().len(), 32);
    }

    /// Versions never repeat: not within a thread, not across threads, not
    /// between a forked child and its parent (whose thread's source the
    /// child inherits).
    #[test]
    fn versions_are_unique_across_threads_and_forks() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let version = new_version();
            assert!(version.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
            assert!(seen.insert(version), "a version came twice");
        }
        let others: Vec<Vec<String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..1_000).map(|_| new_version()).collect()))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a thread"))
                .collect()
        });
        for version in others.into_iter().flatten() {
            assert!(seen.insert(version), "two threads made the same version");
        }
        // A forked child's thread starts with its parent thread's source:
        // in the child (another fork mark) it draws new bits, so the two go
        // on with different versions.
        let parent = Cell::new(None);
        for _ in 0..10 {
            next_version(&parent, 1);
        }
        let child = Cell::new(parent.get());
        for _ in 0..1_000 {
            let (in_parent, in_child) = (next_version(&parent, 1), next_version(&child, 2));
            assert!(seen.insert(in_parent), "a version came twice");
            assert!(
                seen.insert(in_child),
                "the child made one of its parent's versions"
            );
        }
    }
}

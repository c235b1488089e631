//! Values decoded from bytes, kept by those bytes for the next read: a
//! stored table's footer, a frame's manifest, pandas' metadata, a pick of
//! columns. Each is the same on every read of one object (and of objects
//! written alike), and decoding it costs more than the rest of a small read.
//! Keys are the bytes themselves, or their [`Fingerprint`].

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use xxhash_rust::xxh3::Xxh3Builder;

/// The longest key kept, in bytes.
pub const KEY_MOST: usize = 256 << 10;

/// A bounded map from keys (bytes, text, fingerprints) to decoded values,
/// shared by the threads of a process. Keys are compared whole, so a value
/// is only ever returned for the exact key it was decoded from. When full,
/// it is cleared: the next read of each key decodes it again. Keys longer
/// than [`KEY_MOST`] are decoded every time, so the map stays small.
#[derive(Debug)]
pub struct Kept<K, V> {
    map: Mutex<Option<HashMap<K, V, Xxh3Builder>>>,
    most: usize,
}

impl<K: Hash + Eq + AsRef<[u8]>, V: Clone> Kept<K, V> {
    /// An empty map keeping at most `most` values.
    pub const fn new(most: usize) -> Kept<K, V> {
        Kept {
            map: Mutex::new(None),
            most,
        }
    }

    /// The value kept for `key`, if any.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + AsRef<[u8]> + ?Sized,
    {
        self.lock().as_ref().and_then(|map| map.get(key)).cloned()
    }

    /// Keeps `value` for `key` (unless the key is longer than [`KEY_MOST`]).
    pub fn insert(&self, key: K, value: V) {
        if key.as_ref().len() > KEY_MOST {
            return;
        }
        let mut map = self.lock();
        let map = map.get_or_insert_with(|| HashMap::with_hasher(Xxh3Builder::new()));
        if map.len() >= self.most {
            map.clear();
        }
        map.insert(key, value);
    }

    fn lock(&self) -> crate::sys::fork::Locked<'_, Option<HashMap<K, V, Xxh3Builder>>> {
        crate::sys::fork::lock(&self.map)
    }

    /// The value kept for `key`, or the one `decode` makes (then kept).
    ///
    /// # Errors
    /// `decode`'s, and then nothing is kept.
    pub fn get_or_decode<Q, E>(
        &self,
        key: &Q,
        decode: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + AsRef<[u8]> + ?Sized,
    {
        if key.as_ref().len() > KEY_MOST {
            return decode();
        }
        if let Some(value) = self.get(key) {
            return Ok(value);
        }
        let value = decode()?;
        self.insert(key.to_owned(), value.clone());
        Ok(value)
    }
}

/// Some bytes named by their length and their xxh3-128 hash: a key that
/// costs one pass over the bytes (about a microsecond for a wide frame's
/// 20 KB footer), where parsing and checking them again costs tens, and
/// that is as long whatever their size. Values kept by it are only kept
/// for bytes of at most [`KEY_MOST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 24]);

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        key[8..].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes());
        Fingerprint(key)
    }

    /// The length of the bytes it names.
    pub fn len(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    /// Whether it names no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AsRef<[u8]> for Fingerprint {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A stored payload named by its length and the checksum its writer stored
/// with it (xxh3-64, over 1 MiB chunks or whole). Nothing checks the payload
/// against it on a plain read, so no decoded value is kept by it: a decoder
/// uses it only to skip checks it already made on a payload the same
/// writer's checksum describes, and still bounds-checks every offset. A
/// payload changed in memory since then can still fail, with a less precise
/// error (Arrow's decoder then stops on it, and its panic is caught).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentId([u8; 17]);

impl ContentId {
    /// The identity of a payload of `len` bytes whose stored checksum is
    /// `checksum`, computed over 1 MiB chunks (`chunked`) or the whole payload.
    pub fn new(len: u64, checksum: u64, chunked: bool) -> ContentId {
        let mut id = [0u8; 17];
        id[..8].copy_from_slice(&len.to_le_bytes());
        id[8..16].copy_from_slice(&checksum.to_le_bytes());
        id[16] = u8::from(chunked);
        ContentId(id)
    }
}

impl AsRef<[u8]> for ContentId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_by_their_exact_key_and_dropped_when_full() {
        let kept: Kept<Vec<u8>, usize> = Kept::new(2);
        let decodes = std::cell::Cell::new(0);
        let get = |key: &[u8]| {
            kept.get_or_decode(key, || -> Result<usize, ()> {
                decodes.set(decodes.get() + 1);
                Ok(key.len())
            })
        };
        assert_eq!(get(b"ab"), Ok(2));
        assert_eq!(get(b"ab"), Ok(2));
        assert_eq!(get(b"abc"), Ok(3));
        assert_eq!(decodes.get(), 2, "the second read of a key decodes nothing");
        assert_eq!(get(b"x"), Ok(1)); // a third key: the map was full
        assert_eq!(get(b"ab"), Ok(2));
        assert_eq!(decodes.get(), 4);
        let failing: Result<usize, &str> = kept.get_or_decode(&b"bad"[..], || Err("no"));
        assert_eq!(failing, Err("no"));
    }
}

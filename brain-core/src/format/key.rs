//! Keys: the 128-bit hashes that name namespace directories and object files.
//!
//! Names never reach a path. A namespace's directory is the hex of a hash of
//! its name, and an object's file is the hex of a hash of (namespace, name),
//! so `/`, `..`, NUL and control characters in names are harmless. The header
//! repeats both strings and every read checks them, so a collision is an
//! error, never a wrong answer.

use xxhash_rust::xxh3::xxh3_128;

/// The longest object name accepted, in bytes (and so the most a header holds).
pub const MAX_NAME_LEN: usize = 64 * 1024;
/// The longest namespace name accepted, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64 * 1024;
/// The longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;

/// Domain separators so a namespace hash can never equal an object key.
const NAMESPACE_DOMAIN: &[u8] = b"brain.namespace\0";
const OBJECT_DOMAIN: &[u8] = b"brain.object\0";

/// The 128-bit key of an object: a hash of its namespace and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(pub u128);

impl ObjectKey {
    /// The key of `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> Self {
        let mut bytes = Vec::with_capacity(OBJECT_DOMAIN.len() + 8 + namespace.len() + name.len());
        bytes.extend_from_slice(OBJECT_DOMAIN);
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        bytes.extend_from_slice(&(namespace.len() as u64).to_le_bytes());
        bytes.extend_from_slice(namespace.as_bytes());
        bytes.extend_from_slice(name.as_bytes());
        ObjectKey(xxh3_128(&bytes))
    }

    /// The key as 32 lowercase hex digits: the object's file name.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Parses a file name made by [`ObjectKey::to_hex`].
    pub fn from_hex(name: &str) -> Option<Self> {
        if name.len() != 32 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        u128::from_str_radix(name, 16).ok().map(ObjectKey)
    }
}

/// The 128-bit hash of a namespace's name: its directory's name, and the
/// prefix of its small objects' keys.
pub fn namespace_hash(namespace: &str) -> u128 {
    let mut bytes = Vec::with_capacity(NAMESPACE_DOMAIN.len() + namespace.len());
    bytes.extend_from_slice(NAMESPACE_DOMAIN);
    bytes.extend_from_slice(namespace.as_bytes());
    xxh3_128(&bytes)
}

/// The directory name of a namespace: 32 hex digits of its hash.
pub fn namespace_dir_name(namespace: &str) -> String {
    format!("{:032x}", namespace_hash(namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn length_prefix_separates_namespace_from_name() {
        assert_ne!(ObjectKey::new("ab", "c"), ObjectKey::new("a", "bc"));
    }

    #[test]
    fn namespace_dirs_never_look_like_paths() {
        for ns in ["..", "/", "a/b", "\0", "\u{1F9E0}"] {
            let dir = namespace_dir_name(ns);
            assert_eq!(dir.len(), 32);
            assert!(dir.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    proptest! {
        #[test]
        fn hex_round_trips(ns in ".{1,40}", name in ".{1,40}") {
            let key = ObjectKey::new(&ns, &name);
            prop_assert_eq!(ObjectKey::from_hex(&key.to_hex()), Some(key));
        }

        #[test]
        fn distinct_pairs_get_distinct_keys(a in ".{1,20}", b in ".{1,20}", c in ".{1,20}") {
            prop_assume!(a != b);
            prop_assert_ne!(ObjectKey::new(&c, &a), ObjectKey::new(&c, &b));
            prop_assert_ne!(ObjectKey::new(&a, &c), ObjectKey::new(&b, &c));
        }
    }
}

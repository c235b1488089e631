//! Names and URLs: store URLs, object names, namespaces and descriptions,
//! object file names (keys in hex) and codec names.

#![no_main]

use brain::StoreUrl;
use brain_core::{
    validate_description, validate_name, validate_namespace, Codec, ObjectKey, MAX_DESCRIPTION_LEN,
    MAX_NAMESPACE_LEN, MAX_NAME_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match StoreUrl::parse(text) {
        Ok(url @ (StoreUrl::Shm(Some(_)) | StoreUrl::Memory(_))) => {
            assert_eq!(StoreUrl::parse(&url.to_string()).ok(), Some(url))
        }
        // The default store's URL shows its path, and a Redis URL without
        // its password: neither parses back to itself.
        Ok(url) => drop(url.to_string()),
        Err(err) => drop(err.to_string()),
    }
    let fits = |max: usize| text.len() <= max;
    assert_eq!(
        validate_name(text).is_ok(),
        !text.is_empty() && fits(MAX_NAME_LEN)
    );
    assert_eq!(
        validate_namespace(text).is_ok(),
        !text.is_empty() && fits(MAX_NAMESPACE_LEN)
    );
    assert_eq!(
        validate_description(text).is_ok(),
        fits(MAX_DESCRIPTION_LEN)
    );
    if let Some(key) = ObjectKey::from_hex(text) {
        assert_eq!(key.to_hex(), text);
    }
    if let Some(codec) = Codec::from_name(text) {
        assert_eq!(codec.name(), text);
    }
});

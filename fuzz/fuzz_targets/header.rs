//! The object header, as a reader decodes it from the start of an object
//! file another process wrote.

#![no_main]

use brain_core::format::{accounted, stored_size, Header};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let needed = Header::needed_len(bytes);
    let Ok(header) = Header::decode(bytes) else {
        return;
    };
    let needed = needed.expect("decode succeeded, so needed_len did");
    assert!(needed <= bytes.len());
    // What a reader does with a header next: the file's length, and the
    // bytes the store accounts for it.
    accounted(header.file_len());
    stored_size(
        &header.namespace,
        &header.name,
        &header.description,
        header.payload_len,
    );
    let encoded = header.encode();
    assert_eq!(encoded.len(), header.encoded_len());
    assert!(encoded.len() <= needed);
    assert_eq!(Header::needed_len(&encoded), Ok(encoded.len()));
    assert_eq!(Header::decode(&encoded), Ok(header));
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = brain_fuzz::with_header_checksum(data) {
        check(&fixed);
    }
});

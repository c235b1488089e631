//! The parts layout (ndarray and pickle-5 payloads) and the typed decoders
//! over a view of a payload, as a get hands them one.

#![no_main]

use std::time::UNIX_EPOCH;

use brain_core::format::parts::split;
use brain_core::{decode_ndarray, decode_pickle, split_parts, Codec, ObjectMeta, ObjectView};
use libfuzzer_sys::fuzz_target;

fn view(codec: Codec, payload: &arrow_buffer::Buffer) -> ObjectView {
    let meta = ObjectMeta {
        namespace: "ns".into(),
        name: "name".into(),
        codec,
        size: payload.len() as u64,
        stored_size: 0,
        created: UNIX_EPOCH,
        description: String::new(),
    };
    ObjectView::new(meta, payload.clone())
}

/// True when `part` lies inside `whole`'s memory (zero-copy, in bounds).
fn inside(part: &[u8], whole: &[u8]) -> bool {
    let (start, end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    let at = part.as_ptr() as usize;
    part.is_empty() || (at >= start && at + part.len() <= end)
}

fuzz_target!(|data: &[u8]| {
    let payload = brain_fuzz::payload_buffer(data);
    if let Ok(parts) = split(&payload) {
        assert!(parts.iter().all(|p| inside(p, &payload)));
    }
    for codec in [Codec::NdArray, Codec::Pickle5, Codec::Raw] {
        let view = view(codec, &payload);
        match split_parts(&view) {
            Ok(parts) => assert!(parts.iter().all(|p| inside(p, &view))),
            Err(err) => drop(err.to_string()),
        }
        match decode_ndarray(&view) {
            Ok(array) => {
                assert!(inside(&array.data, &view));
                assert_eq!(array.meta.data_len(), Some(array.data.len() as u64));
                // What `brain info` shows of an array.
                drop(array.meta.dtype.to_string());
            }
            Err(err) => drop(err.to_string()),
        }
        match decode_pickle(&view) {
            Ok(pickle) => {
                assert!(inside(&pickle.pickle, &view));
                assert!(pickle.buffers.iter().all(|b| inside(b, &view)));
            }
            Err(err) => drop(err.to_string()),
        }
    }
});

//! brain (being written).
fn main() {}

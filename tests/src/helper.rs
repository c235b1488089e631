//! helper (being written).
fn main() {}

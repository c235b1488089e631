//! brain-bench (being written).

//! brain-mock (being written).
